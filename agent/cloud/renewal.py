"""Certificate renewal over MQTT: a router in the field never loses its identity to an expiry.

The exchange (docs/protocol.md section 7): the device publishes a CSR on
``pw/v1/<dev>/cert/request`` (from a new key by default, or the same key), the cloud
answers on ``pw/v1/<dev>/cert`` with a certificate. The order of the steps is what
makes it safe:

1. **stage**: a new key (0600 from the first byte) and its CSR become the ``pending``
   generation of the key store (agent.cloud.keystore); ``current`` is untouched, so the
   daemon keeps connecting with the old certificate throughout;
2. **request** the certificate; the request is re-sent (same request id, same CSR) until
   an answer comes, because the request or the answer can die with a broker restart;
3. **check** the answer exactly as provisioning checks a certificate (this key, this
   device, the pinned CA, valid now); it becomes a new pending generation *with* the
   certificate;
4. **prove** it: one MQTT connection with the new certificate and key (a separate client
   id, so the live session is not kicked). Only if the broker accepts it does
5. **switch**: ``current`` flips to the new generation in one rename; the old one stays
   as ``previous``. The cloud link picks the new files up at its next connection.

An interruption anywhere (power cut, daemon restart) resumes from the pending
generation: before step 3 the same CSR is asked for again; after it, the certificate
already received is proved and installed without asking the cloud a second time.

Explicit inputs, no link internals: ``publish(leaf, body, expiry)`` and the link's
``add_inbound(leaf, callback)`` (agent.cloud.link) carry the messages, and ``probe`` is
agent.cloud.connect_once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.clock import Clock
from agent.cloud import keystore as ks
from agent.cloud import protocol as proto
from agent.cloud.certpeek import leaf_facts
from agent.errors import CertificateMismatch, ProtocolError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.cloud.connect_once import ConnectResult

# The serving daemon imports this module at start and asks "is renewal due?" once a day;
# the steps that build a CSR and check a certificate import agent.cloud.certs
# (cryptography.x509) where they run, so the daemon carries x509 only while it renews, and
# for good only from its first renewal on (docs/footprint.md).

LOGGER = logging.getLogger(__name__)

RENEW_BEFORE_DAYS = 30
"""Start renewing 30 days before expiry (the same figure ``pocket-agent identity`` warns
at): a router offline for weeks still comes back in time to renew."""

RESEND_S = 60.0
"""Ask again after a minute without an answer: the cloud signs in milliseconds, so
silence means the request or its answer was lost (a broker restart)."""

ANSWER_TIMEOUT_S = 600.0
"""One renewal attempt waits at most 10 minutes; the daemon tries again the next day."""

CHECK_INTERVAL_S = 24 * 3600.0
"""How often the daemon asks "is renewal due?": expiry is counted in days."""

PUBLISH_RETRY_S = 1.0
"""While the link is down, how often to try publishing the request again."""

Publish = Callable[..., bool]
Probe = Callable[[Path, Path, Path, str], "ConnectResult"]


@dataclass(frozen=True)
class RenewalResult:
    outcome: str
    """"renewed", "not_due", "refused" (the cloud said no, or its certificate failed the
    checks), "timeout", "probe_failed" (the broker refused the new certificate) or "busy"."""
    detail: str = ""
    generation: int = 0


class CertRenewal:
    """One device's renewal. Register ``on_reply`` with the link, then ``await renew()``."""

    def __init__(self, key_dir: Path | str, *, publish: Publish, probe: Probe, clock: Clock | None = None,
                 renew_before_days: float = RENEW_BEFORE_DAYS, resend_s: float = RESEND_S):
        self.store = ks.KeyStore(key_dir)
        self.publish = publish
        self.probe = probe
        self.clock = clock or Clock()
        self.renew_before_days = renew_before_days
        self.resend_s = resend_s
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # --- inbound ------------------------------------------------------------------------

    def on_reply(self, body: dict[str, Any]) -> None:
        """Callback for pw/v1/<dev>/cert (validated here; a ProtocolError is the link's to report)."""
        reply = proto.validate_cert_reply(body, proto.CERT)
        fut = self._waiting.get(reply["request_id"])
        if fut is None or fut.done():
            LOGGER.info("certificate reply for request %s that nobody waits for: ignored", reply["request_id"])
            return
        fut.set_result(reply)

    # --- decisions ------------------------------------------------------------------------

    def days_left(self) -> float | None:
        gen = self.store.current()
        if gen is None or not gen.has(ks.CERT):
            return None
        not_after = leaf_facts(gen.read(ks.CERT)).not_after  # no x509 for the daily question
        return (not_after.timestamp() - self.clock.wall()) / 86400

    def due(self) -> bool:
        """Renewal is due within ``renew_before_days`` of expiry, or when one is already under way."""
        left = self.days_left()
        return self.store.pointer(ks.PENDING) is not None or (left is not None and left < self.renew_before_days)

    # --- the sequence -------------------------------------------------------------------------

    async def renew(self, *, new_key: bool = True, force: bool = False,
                    timeout: float = ANSWER_TIMEOUT_S) -> RenewalResult:
        """Steps 1-5 of the module docstring, resuming a pending renewal if there is one."""
        if not force and not self.due():
            return RenewalResult("not_due", f"{self.days_left():.0f} days left")
        try:
            with self.store.lock(blocking=False):
                return await self._renew(new_key, timeout)
        except BlockingIOError:
            return RenewalResult("busy", "the key store is locked (provisioning running?)")

    async def _renew(self, new_key: bool, timeout: float) -> RenewalResult:
        self.store.recover()
        cur = self.store.current()
        if cur is None or not cur.has(ks.CERT):
            return RenewalResult("refused", "no provisioned certificate to renew")
        pending = self.store.pointer(ks.PENDING)
        if pending is not None and pending.path == cur.path:  # switched, then interrupted
            self.store.point(ks.PENDING, None)
            return RenewalResult("renewed", "completed after an interruption", cur.number)
        if pending is None:
            pending = self._stage_request(cur, new_key)
        if not pending.has(ks.CERT):
            reply = await self._ask(pending, timeout)
            if reply is None:
                return RenewalResult("timeout", f"no answer within {timeout:g} s; the old certificate stays")
            if reply["status"] != "ok":
                return RenewalResult("refused", f"cloud refused: {reply.get('reason', '')}")
            try:
                pending = self._stage_certificate(cur, pending, reply["cert"].encode())
            except CertificateMismatch as exc:
                LOGGER.error("renewed certificate refused (%s): %s; the old certificate stays", exc.reason, exc)
                return RenewalResult("refused", f"certificate refused ({exc.reason}): {exc}")
        return await self._prove_and_switch(pending)

    def _stage_request(self, cur: ks.Generation, new_key: bool) -> ks.Generation:
        """Step 1: the pending generation with the key and CSR (and everything else linked)."""
        from agent.cloud import certs  # cryptography.x509: only while renewing (see the imports)

        staging = self.store.stage()
        now = dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC).isoformat()
        if new_key:
            key = certs.new_tls_key()
            staging.write_private(ks.TLS_KEY, certs.private_pem(key))
        else:
            staging.link_from(cur, ks.TLS_KEY)
            key = certs.load_tls_key(cur.read(ks.TLS_KEY))
        staging.write_public(ks.CSR, certs.make_csr(key, cur.record["device_id"], cur.record["imei"]))
        for name in (ks.SEALING_KEY, ks.SEALING_PUB, ks.CA, ks.PLATFORM_PUB, ks.AGENT_CONFIG):
            staging.link_from(cur, name)
        if cur.has(ks.RELEASE_PUB):  # the pinned release key moves with the identity (docs/update.md)
            staging.link_from(cur, ks.RELEASE_PUB)
        kept = ("device_id", "imei", "sealing_key_sha256", "broker")
        record: dict[str, Any] = {k: cur.record[k] for k in kept if k in cur.record}
        record.update(created_at=now, tls_key_sha256=certs.fingerprint(key.public_key()),
                      request_id=uuid.uuid4().hex, renewal_of=cur.number)
        gen = self.store.seal(staging, record)
        self.store.point(ks.PENDING, gen)
        LOGGER.info("certificate renewal staged as %s (%s key)", gen.path.name, "new" if new_key else "same")
        return gen

    async def _ask(self, pending: ks.Generation, timeout: float) -> dict[str, Any] | None:
        """Step 2: publish the CSR, re-sending it every ``resend_s``, until the answer comes."""
        loop = asyncio.get_running_loop()
        request_id = str(pending.record["request_id"])
        body = {"request_id": request_id, "csr": pending.read(ks.CSR).decode(), "reason": "expiry"}
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting[request_id] = fut
        deadline = loop.time() + timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                sent = self.publish(proto.CERT_REQUEST, body, expiry=proto.CERT_REQUEST_EXPIRY_S)
                wait = min(self.resend_s if sent else PUBLISH_RETRY_S, remaining)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
                    LOGGER.info("no certificate yet for request %s; asking again", request_id)
            return None
        finally:
            self._waiting.pop(request_id, None)

    def _stage_certificate(self, cur: ks.Generation, pending: ks.Generation, cert_pem: bytes) -> ks.Generation:
        """Step 3: check the certificate like provisioning does; pending + certificate = a new generation."""
        from agent.cloud import certs  # cryptography.x509: only while renewing (see the imports)
        from agent.cloud.crypto_compat import valid_until

        key: ec.EllipticCurvePrivateKey = certs.load_tls_key(pending.read(ks.TLS_KEY))
        now = dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)
        leaf = certs.check_certificate(cert_pem, key=key, ca_pem=cur.read(ks.CA), device_id=cur.record["device_id"],
                                       imei=cur.record.get("imei"), now=now)
        staging = self.store.stage()
        for name in pending.record["files"]:
            if name != ks.RECORD:
                staging.link_from(pending, name)
        staging.write_public(ks.CERT, cert_pem)
        record = {k: v for k, v in pending.record.items() if k not in ("files", "version")}
        gen = self.store.seal(staging, record)
        self.store.point(ks.PENDING, gen)
        LOGGER.info("renewed certificate %x received (valid to %s); proving it", leaf.serial_number,
                    valid_until(leaf).isoformat())
        return gen

    async def _prove_and_switch(self, pending: ks.Generation) -> RenewalResult:
        """Steps 4 and 5: connect once with the new certificate, then flip ``current``."""
        res = await asyncio.to_thread(self.probe, pending.file(ks.CA), pending.file(ks.CERT),
                                      pending.file(ks.TLS_KEY), str(pending.record["device_id"]))
        if not res.ok:
            LOGGER.error("broker refused the renewed certificate (%s); the old one stays in use", res.detail)
            return RenewalResult("probe_failed", res.detail, pending.number)
        self.store.commit(pending, keep_previous=True)
        self.store.point(ks.PENDING, None)
        LOGGER.info("certificate renewed: %s is current, the old identity kept as previous", pending.path.name)
        return RenewalResult("renewed", res.detail, pending.number)


def broker_probe(host: str, port: int) -> Probe:
    """The production ``probe``: agent.cloud.connect_once against the configured broker."""
    def probe(ca: Path, cert: Path, key: Path, device_id: str) -> ConnectResult:
        from agent.cloud.connect_once import tls_accepts  # only while renewing, as certs

        # TLS only: a whole MQTT session with our identity would take the daemon's over
        return tls_accepts(host, port, ca=ca, cert=cert, key=key)
    return probe


def key_dir_of(cert_file: Path) -> Path | None:
    """The key store behind a configured certificate path (<key_dir>/current/cert.pem), if any."""
    cert_file = Path(cert_file)
    return cert_file.parent.parent if cert_file.parent.name == ks.CURRENT else None


def attach(link: Any, cert_file: Path, host: str, port: int) -> CertRenewal | None:
    """Wire renewal to a running cloud link (agent.cloud.link.CloudLink); None when the
    certificate is not in a provisioned key store (e.g. the lab's hand-made identities)."""
    key_dir = key_dir_of(cert_file)
    if key_dir is None:
        return None
    renewal = CertRenewal(key_dir, publish=link.publish_leaf, probe=broker_probe(host, port))
    link.add_inbound(proto.CERT, renewal.on_reply)
    return renewal


async def run_periodically(renewal: CertRenewal, interval: float = CHECK_INTERVAL_S) -> None:
    """The daemon's task: once a day, renew if due. Never raises (a failure waits a day)."""
    while True:
        try:
            if renewal.due():
                result = await renewal.renew()
                LOGGER.info("certificate renewal: %s %s", result.outcome, result.detail)
        except (OSError, ProtocolError, CertificateMismatch, ValueError) as exc:
            LOGGER.error("certificate renewal failed: %s", exc)
        await asyncio.sleep(interval)

"""The provisioning sequence: modem, keys, CSR, certificate, pins, config, self-test.

The order is the line's (docs/provisioning.md): the modem first (its IMEI goes into the
CSR, and a unit without a modem must fail in seconds, before any key is made); then one
new identity generation is built and committed in one step (agent.cloud.keystore), so a
unit whose power is pulled at any moment keeps its old identity or has the new one,
complete; the self-test last, against what was committed.

Idempotence: a run that would produce the same files as the current generation commits
nothing and reports status "kept". Keys are made only when there is no identity or with
``force_rekey``; a different device id or IMEI on a provisioned unit is refused
(exit 6) rather than silently replacing an identity the platform already knows.

``STEP_HOOKS`` are called with each step's name once it is durable; the crash tests use
them to kill the process at every step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent import __version__, store
from agent.boardprofile import BoardProfile
from agent.clock import Clock
from agent.cloud import certs, sealing
from agent.cloud import keystore as ks
from agent.cloud.connect_once import ConnectResult, connect_once
from agent.cloud.crypto_compat import valid_from, valid_until
from agent.cloud.protocol import DEVICE_ID_RE
from agent.errors import AgentError, CertificateMismatch, ConfigError, ProvisionError, SealError
from agent.faces.provision import exitcodes, uplink
from agent.faces.provision import selftest as st
from agent.layout import Owner

LOGGER = logging.getLogger(__name__)

DEVICE_ID_PREFIX = "pw-"
"""Default device id: pw-<IMEI>. Unique by construction and readable on a label."""

STEP_HOOKS: list[Callable[[str], None]] = []
"""Called after each durable step (tests kill the process here)."""


@dataclass(frozen=True)
class Request:
    """Everything one run needs, from the command line (agent.faces.provision.command)."""

    port: str
    profile: BoardProfile
    profile_path: Path
    key_dir: Path
    config_path: Path
    state_dir: Path
    broker_host: str
    broker_port: int
    ca_file: Path
    platform_key_file: Path
    device_id: str | None = None
    release_key_file: Path | None = None
    """The release key to pin (docs/update.md); without it the device refuses every update."""
    cert_file: Path | None = None
    label_imei: str | None = None
    force_rekey: bool = False
    online: bool = True
    console_port: str = ""
    register_wait: float = st.REGISTER_WAIT_S
    modem_deadline: float = st.MODEM_DEADLINE_S
    owner: Owner | None = None
    """Who the key store and the state directory belong to: the service user (docs/layout.md);
    None keeps them with whoever runs provisioning (a checkout, the lab)."""
    status_file: Path | None = None


@dataclass
class Outcome:
    """The factory record (printed as one JSON line) and the exit code."""

    exit_code: int
    record: dict[str, Any] = field(default_factory=dict)


def _step(name: str) -> None:
    LOGGER.debug("provisioning step %s done", name)
    for hook in STEP_HOOKS:
        hook(name)


def _fail(code: int, reason: str, message: str) -> ProvisionError:
    return ProvisionError(message, exit_code=code, reason=reason)


def _read_inputs(req: Request) -> tuple[bytes, bytes]:
    """The CA and the platform key to pin: both must be what they claim to be."""
    try:
        ca_pem = req.ca_file.read_bytes()
        certs.load_chain(ca_pem)
        platform_pem = req.platform_key_file.read_bytes()
        sealing.load_public_ed25519(req.platform_key_file)
    except OSError as exc:
        raise _fail(exitcodes.USAGE, "input", f"cannot read {exc.filename}: {exc.strerror}") from None
    except (CertificateMismatch, SealError, ValueError) as exc:
        raise _fail(exitcodes.USAGE, "input", f"bad CA or platform key: {exc}") from None
    return ca_pem, platform_pem


def _read_release_key(req: Request) -> bytes | None:
    """The release key to pin, if the line gave one: an Ed25519 public key, and not the
    platform's (the two keys are kept apart on purpose: docs/update.md, "Two keys")."""
    if req.release_key_file is None:
        return None
    try:
        release_pem = req.release_key_file.read_bytes()
        release = sealing.load_public_ed25519(req.release_key_file)
        platform = sealing.load_public_ed25519(req.platform_key_file)
    except OSError as exc:
        raise _fail(exitcodes.USAGE, "input", f"cannot read {exc.filename}: {exc.strerror}") from None
    except (SealError, ValueError) as exc:
        raise _fail(exitcodes.USAGE, "input", f"bad release key: {exc}") from None
    if sealing.public_pem(release) == sealing.public_pem(platform):
        raise _fail(exitcodes.USAGE, "input", "the release key is the platform key: they must differ")
    return release_pem


def render_config(req: Request, device_id: str) -> bytes:
    """The agent's TOML (docs/configuration.md), pointing into <key_dir>/current/."""
    cur = req.key_dir.resolve() / ks.CURRENT
    q = json.dumps  # a JSON string is a valid TOML basic string for paths and names
    lines = [
        "# written by pocket-agent provision; re-run provisioning to change it",
        f"device_id = {q(device_id)}",
        f"state_dir = {q(str(req.state_dir))}",
        f"board_profile = {q(str(req.profile_path))}",
        *([f"status_file = {q(str(req.status_file))}"] if req.status_file else []),
        "",
    ]
    if req.port != req.profile.at_port:
        lines += ["[modem]", f"port = {q(req.port)}", ""]
    if req.console_port and req.console_port != req.profile.console_port:
        # The port the self-test checked is the one the service serves (docs/console.md).
        lines += ["[console]", f"ports = [{q(req.console_port)}]", ""]
    lines += [
        "[cloud]",
        f"host = {q(req.broker_host)}",
        f"port = {req.broker_port}",
        f"ca = {q(str(cur / ks.CA))}",
        f"cert = {q(str(cur / ks.CERT))}",
        f"key = {q(str(cur / ks.TLS_KEY))}",
        f"sealing_key = {q(str(cur / ks.SEALING_KEY))}",
        f"platform_key = {q(str(cur / ks.PLATFORM_PUB))}",
        "",
    ]
    if req.release_key_file is not None:
        lines += ["[update]", f"release_key = {q(str(cur / ks.RELEASE_PUB))}", ""]
    return "\n".join(lines).encode()


class Provisioner:
    """One run. ``run()`` returns an Outcome; it never raises for a line failure."""

    def __init__(self, req: Request, clock: Clock | None = None):
        self.req = req
        self.clock = clock or Clock()
        self.store = ks.KeyStore(req.key_dir, req.owner)
        self.record: dict[str, Any] = {"agent_version": __version__, "board_profile": req.profile.name}
        self.checks: list[st.Check] = []
        self._release_pem: bytes | None = None
        """The release key to pin (read with the other inputs, before anything is written)."""
        self.timings: dict[str, float] = {}
        """Seconds per phase, in the record: "modem" is the modem's own latency (AT answers,
        registration), what the line cannot speed up; the rest is ours."""

    def run(self) -> Outcome:
        started = time.monotonic()
        try:
            code = self._run()
        except ProvisionError as exc:
            LOGGER.error("provisioning failed (%s): %s", exc.reason, exc)
            self.record.update(error=str(exc), reason=exc.reason)
            code = exc.exit_code
        except OSError as exc:
            LOGGER.error("provisioning cannot write its state: %s", exc)
            self.record.update(error=f"{exc.__class__.__name__}: {exc}", reason="storage")
            code = exitcodes.STORAGE
        self.record["selftest"] = st.as_dicts(self.checks)
        self.record["ok"] = code == exitcodes.OK
        self.record["exit_code"] = code
        self.timings["total"] = time.monotonic() - started
        self.record["timings_s"] = {k: round(v, 4) for k, v in self.timings.items()}
        return Outcome(code, self.record)

    def _run(self) -> int:
        ca_pem, platform_pem = _read_inputs(self.req)
        self._release_pem = _read_release_key(self.req)
        try:
            self.store.ensure_dir()
        except ConfigError as exc:  # wrong mode or not creatable
            raise _fail(exitcodes.STORAGE, "key_dir", str(exc)) from None
        with self.store.lock():
            self.store.adopt()  # a store an older version left to root goes to the service user
            self.store.recover()
            _step("recovered")
            t0 = time.monotonic()
            facts = self._modem()
            t1 = time.monotonic()
            gen = self._identity(facts, ca_pem, platform_pem)
            self.timings.update(modem=t1 - t0, identity=time.monotonic() - t1)
            ks.link_config(self.req.config_path, self.req.key_dir)
            self._state_dir()
            _step("config_linked")
        self._report(gen)
        t0 = time.monotonic()
        self._selftest(gen)
        self.timings["selftest"] = time.monotonic() - t0
        _step("selftest")
        return exitcodes.OK if all(c.ok for c in self.checks) else exitcodes.SELFTEST_FAILED

    def _state_dir(self) -> None:
        """The daemon's state directory, 0700 and the service user's (systemd's StateDirectory=
        and the procd init script would hand it over too; provisioning does not rely on it)."""
        path = store.ensure_private_dir(self.req.state_dir)
        owner = self.req.owner
        if owner is not None and (owner.uid, owner.gid) != (os.geteuid(), os.getegid()):
            st_ = path.stat()
            if (st_.st_uid, st_.st_gid) != (owner.uid, owner.gid):
                os.chown(path, owner.uid, owner.gid)

    # --- modem ----------------------------------------------------------------------

    def _modem(self) -> st.ModemFacts:
        req = self.req
        try:
            facts = asyncio.run(st.probe_modem(req.port, req.profile, register_wait=req.register_wait,
                                               deadline=req.modem_deadline))
        except st.ModemNotFound as exc:
            self.checks.append(st.Check("modem_answers", False, str(exc)))
            raise _fail(exitcodes.MODEM_NOT_FOUND, "modem", str(exc)) from None
        self.record["modem"] = facts.public()
        self.record["imei"] = facts.imei
        label = st.check_label(facts.imei, req.label_imei)
        self.checks += [label, *facts.checks]
        if not label.ok:
            raise _fail(exitcodes.SELFTEST_FAILED, "imei_label", f"IMEI label mismatch: {label.detail}")
        _step("modem")
        return facts

    # --- identity ---------------------------------------------------------------------

    def _identity(self, facts: st.ModemFacts, ca_pem: bytes, platform_pem: bytes) -> ks.Generation:
        req = self.req
        device_id = req.device_id or f"{DEVICE_ID_PREFIX}{facts.imei}"
        if not DEVICE_ID_RE.match(device_id):
            raise _fail(exitcodes.USAGE, "device_id", f"device id {device_id!r} is not a valid topic level")
        self.record["device_id"] = device_id
        cur = self.store.current()
        if cur is not None and not req.force_rekey:
            had = (cur.record.get("device_id"), cur.record.get("imei"))
            if had != (device_id, facts.imei):
                raise _fail(exitcodes.ALREADY_PROVISIONED, "already_provisioned",
                            f"unit is provisioned as device {had[0]!r} with IMEI {had[1]!r}; asked for "
                            f"{device_id!r} with IMEI {facts.imei!r} (--force-rekey replaces the identity)")
        rekey = cur is None or req.force_rekey
        staging = self.store.stage()
        try:
            gen = self._build(staging, cur, rekey, device_id, facts, ca_pem, platform_pem)
        finally:
            if staging.path.exists():
                shutil.rmtree(staging.path, ignore_errors=True)
        return gen

    def _build(self, staging: ks.Staging, cur: ks.Generation | None, rekey: bool, device_id: str,
               facts: st.ModemFacts, ca_pem: bytes, platform_pem: bytes) -> ks.Generation:
        _step("staging")
        now = dt.datetime.fromtimestamp(self.clock.wall(), dt.UTC)
        if rekey:
            tls_key = certs.new_tls_key()
            staging.write_private(ks.TLS_KEY, certs.private_pem(tls_key))
            _step("tls_key")
            sealing_key = X25519PrivateKey.generate()
            staging.write_private(ks.SEALING_KEY, sealing.private_pem(sealing_key))
            staging.write_public(ks.SEALING_PUB, sealing.public_pem(sealing_key.public_key()))
            _step("sealing_key")
            staging.write_public(ks.CSR, certs.make_csr(tls_key, device_id, facts.imei))
            _step("csr")
            created = now.isoformat()
        else:
            assert cur is not None
            for name in (ks.TLS_KEY, ks.SEALING_KEY, ks.SEALING_PUB, ks.CSR):
                staging.link_from(cur, name)
            tls_key = certs.load_tls_key(cur.read(ks.TLS_KEY))
            created = str(cur.record.get("created_at", now.isoformat()))
        cert_pem = self._certificate(cur, rekey, tls_key, ca_pem, device_id, facts.imei, now)
        if cert_pem is not None:
            staging.write_public(ks.CERT, cert_pem)
            _step("cert")
        staging.write_public(ks.CA, ca_pem)
        staging.write_public(ks.PLATFORM_PUB, platform_pem)
        if self._release_pem is not None:
            staging.write_public(ks.RELEASE_PUB, self._release_pem)
        _step("pins")
        staging.write_public(ks.AGENT_CONFIG, render_config(self.req, device_id))
        _step("config")
        record = self._gen_record(staging, device_id, facts, created, tls_key)
        if cur is not None and not rekey and cur.record.get("files") == dict(sorted(staging.files.items())) \
                and cur.record.get("device_id") == device_id:
            self.record["status"] = "kept"
            return cur
        gen = self.store.seal(staging, record)
        _step("sealed")
        self.store.commit(gen, keep_previous=False)
        _step("committed")
        self.record["status"] = "provisioned" if cur is None else "rekeyed" if rekey else "updated"
        LOGGER.info("identity generation %s committed (%s)", gen.path.name, self.record["status"])
        return gen

    def _certificate(self, cur: ks.Generation | None, rekey: bool, tls_key: Any, ca_pem: bytes, device_id: str,
                     imei: str, now: dt.datetime) -> bytes | None:
        """The certificate to install: the one given (checked), else the current one if it still passes."""
        if self.req.cert_file is not None:
            try:
                pem = self.req.cert_file.read_bytes()
            except OSError as exc:
                raise _fail(exitcodes.USAGE, "input", f"cannot read {self.req.cert_file}: {exc.strerror}") from None
        elif cur is not None and not rekey and cur.has(ks.CERT):
            pem = cur.read(ks.CERT)
        else:
            return None
        try:
            certs.check_certificate(pem, key=tls_key, ca_pem=ca_pem, device_id=device_id, imei=imei, now=now)
        except CertificateMismatch as exc:
            raise _fail(exitcodes.CERT_MISMATCH, f"cert_{exc.reason}", f"certificate refused: {exc}") from None
        return pem

    def _gen_record(self, staging: ks.Staging, device_id: str, facts: st.ModemFacts, created: str,
                    tls_key: Any) -> dict[str, Any]:
        sealing_pub = sealing.load_public_x25519(staging.path / ks.SEALING_PUB)
        return {"device_id": device_id, "imei": facts.imei, "created_at": created,
                "tls_key_sha256": certs.fingerprint(tls_key.public_key()),
                "sealing_key_sha256": certs.fingerprint(sealing_pub),
                "broker": {"host": self.req.broker_host, "port": self.req.broker_port}}

    # --- report and self-test ----------------------------------------------------------

    def _report(self, gen: ks.Generation) -> None:
        r = gen.record
        self.record.update(generation=gen.number, tls_key_sha256=r["tls_key_sha256"],
                           sealing_key_sha256=r["sealing_key_sha256"],
                           sealing_public_key=gen.read(ks.SEALING_PUB).decode())
        if gen.has(ks.CERT):
            info = certs.CertInfo.of(certs.load_chain(gen.read(ks.CERT))[0])
            self.record["cert"] = {"serial": info.serial, "not_after": info.not_after,
                                   "sha256": info.fingerprint, "issuer": info.issuer}
            self.record["csr"] = None
        else:
            self.record["cert"] = None
            self.record["csr"] = gen.read(ks.CSR).decode()

    def _selftest(self, gen: ks.Generation) -> None:
        req = self.req
        self.checks.append(st.check_console(req.console_port or req.profile.console_port))
        window = None
        if gen.has(ks.CERT):
            leaf = certs.load_chain(gen.read(ks.CERT))[0]
            window = (valid_from(leaf).timestamp() - certs.CLOCK_SKEW_S, valid_until(leaf).timestamp())
        self.checks.append(st.check_clock(self.clock, *(window or (None, None))))
        if not req.online:
            self.checks.append(st.Check("broker_connect", True, "skipped: --offline"))
        elif not gen.has(ks.CERT):
            self.checks.append(st.Check("broker_connect", True, "skipped: no certificate yet (CSR issued)"))
        else:
            res = self._connect(lambda: connect_once(req.broker_host, req.broker_port, ca=gen.file(ks.CA),
                                                     cert=gen.file(ks.CERT), key=gen.file(ks.TLS_KEY),
                                                     client_id=self.record["device_id"]))
            self.checks.append(st.Check("broker_connect", res.ok,
                                        f"{req.broker_host}:{req.broker_port}: {res.detail}"))

    def _connect(self, attempt: Callable[[], ConnectResult]) -> ConnectResult:
        """The broker connection: directly when the unit has a route to the broker (a
        station network), else over the seed SIM's data path (uplink.py), as the agent
        itself reaches the cloud at start-up."""
        req = self.req
        if uplink.has_route(req.broker_host, req.broker_port):
            return attempt()
        try:
            return uplink.over_seed(req.port, req.profile, attempt, open_timeout=req.modem_deadline)
        except (AgentError, OSError, TimeoutError) as exc:
            return ConnectResult(False, f"no route to the broker, and the seed SIM's data path failed: "
                                        f"{exc.__class__.__name__}: {exc}")

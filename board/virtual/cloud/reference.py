"""The reference cloud: a SIM pool service good enough to test the agent against.

What it does, and which lesson of the 2020 incident (domain.md) each part answers:
- keeps per-SIM remaining data from the devices' usage records, and marks a SIM
  throttled when a device reports it so; it **never assigns a throttled or nearly
  empty SIM** (the incident kept handing out capped SIMs);
- **admission control**: at most ``max_concurrent_swaps`` assignments in progress
  (issued, result not yet reported); beyond that it answers "retry after T" instead
  of falling over (the incident's bulk switch took the assignment server down; the
  operator's fix was batches of at most 200);
- ingests reliable streams (usage, events) **idempotently** by (device, stream, epoch,
  seq), persists before it acks (pw/v1/<dev>/ack {"stream", "upto", "epoch"}), so totals
  equal what devices sent whatever the broker or the agents did, also after a device's
  journal began a new epoch at seq 1;
- seals each profile for the requesting device and signs it with the platform key, signs
  every policy it publishes and, when a device asks, the replay floor it needs after
  losing its replay state, with its own sealer and signer (board/virtual/cloud/sealer.py,
  signer.py: written from docs/protocol.md, sharing no code with the agent's sealing and
  platformsig, so the lab never checks the device against itself);
- checks every message it receives and every message it sends against the contract's
  JSON Schemas (docs/schemas/, through board/virtual/cloud/contract.py), not the agent's
  validators; a test that must send a message breaking the contract says so
  (``publish_unchecked``, ``publish_policy``);
- records every message it receives with its arrival time in ``events.jsonl``, and
  keeps ``totals.json`` (per ICCID) up to date atomically. Neither ever holds Ki/OPc:
  devices never send them, and the pool file is only read.

It uses paho's own reconnect (it is the lab's cloud, not a device in a fleet).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import store
from agent.clock import Clock
from agent.cloud import certs, paho_compat
from agent.cloud import protocol as proto
from agent.errors import CertificateMismatch, ProtocolError
from agent.sim import Plan, SimProfile
from board.virtual.cloud import allowance as cloud_allowance
from board.virtual.cloud import contract, sealer, signer
from board.virtual.cloud.carrierwatch import CarrierWatch
from board.virtual.cloud.contract import ContractError
from board.virtual.cloud.pool import load_pool
from board.virtual.cloud.releases import Shelf
from board.virtual.network import labclock, plancarrier

LOGGER = logging.getLogger(__name__)

MAX_CONCURRENT_SWAPS = 200
"""The operator's post-incident rule: switch SIMs in batches of at most 200."""

RETRY_AFTER_S = 5.0
"""What a device is told when admission control is full; devices add their own jitter."""

SWAP_HOLD_S = 120.0
"""An issued assignment counts against admission until its result arrives or this
passes (a device that died mid-swap must not hold a slot forever)."""

ASSIGNMENT_TTL_S = 600
"""Envelope expiry: a profile must be loaded within 10 minutes of issue."""

MIN_ROOM_BYTES = 100_000_000
"""Never assign a SIM with less than 100 MB left: it would be throttled within minutes."""

MIN_ROOM_FRACTION = 0.05
"""...or with less than 5 % of its cap left."""

CONNECT_TIMEOUT_S = 10.0
"""How long start() waits for the first CONNACK from the lab broker on loopback."""

RECONNECT_MAX_S = 1.0
"""paho reconnect ceiling for the cloud: the lab broker restarts in tens of milliseconds."""

RENEWED_CERT_DAYS = 90
"""Validity of a certificate renewed by the lab cloud: beyond the device's 30-day renewal
window (agent.cloud.renewal), so a renewed device is not due again at once. A lab CA
lives 30 days; a leaf outliving it is harmless in a lab."""


SPOOL_DIR = "spool"
"""Lab controls reach the running cloud as JSON files in <state>/spool (one writer each,
renamed into place): `pocket-lab swap` and friends need no second broker identity."""
SPOOL_POLL_S = 0.2
"""How often the cloud process looks at its spool: a lab operator's command is acted on
within a fifth of a second, at no measurable cost."""


def default_dir() -> Path:
    return Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab")) / "cloud"


@dataclass
class StreamState:
    upto: int = 0
    above: list[int] = field(default_factory=list)


class ReferenceCloud:
    """In-process or ``pocket-lab cloud``. Thread-safe: paho's thread does the work under a lock."""

    def __init__(self, *, state_dir: Path, host: str, port: int, ca_file: Path, cert_file: Path, key_file: Path,
                 pool: dict[str, Any], platform_key_file: Path, device_keys_dir: Path,
                 max_concurrent_swaps: int = MAX_CONCURRENT_SWAPS, retry_after: float = RETRY_AFTER_S,
                 swap_hold: float = SWAP_HOLD_S, clock: Clock | None = None, client_id: str = "cloud",
                 ca_cert_file: Path | None = None, ca_key_file: Path | None = None,
                 renewed_cert_days: int = RENEWED_CERT_DAYS):
        self.state_dir = store.ensure_private_dir(state_dir)
        self.host, self.port = host, port
        self.tls = (str(ca_file), str(cert_file), str(key_file))
        self.platform_key = sealer.load_platform_key(platform_key_file)
        self.device_keys_dir = Path(device_keys_dir)
        self.max_concurrent_swaps = max_concurrent_swaps
        self.retry_after = retry_after
        self.swap_hold = swap_hold
        self.clock = clock or Clock()
        self.client_id = client_id
        self.lock = threading.Condition()
        self.pool = {s["iccid"]: s for s in pool["sims"]}
        self._events_path = self.state_dir / "events.jsonl"
        self._events: list[dict[str, Any]] = []
        self._load_state()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self.busy_until = 0.0
        """Lab control: until then every assignment request is answered "retry after"."""
        self.busy_retry_after = retry_after
        self.retries_sent = 0
        self.corrupt_next = 0
        self.releases = Shelf()
        """Release artifacts served over update/get (issue 26; board/virtual/cloud/releases.py)."""
        self.prefer_plan: str | None = None
        """Lab control: assign only SIMs of this plan (domain.md's table names) from now on."""
        self.prefer_plmn: str | None = None
        """Lab control (``pocket-lab swap --carrier B``): the next SIM assigned is of this
        carrier (once: it puts a router on a carrier, it does not take the others away)."""
        self.misassign = 0
        """Lab control: this many next escape requests get a SIM of the carrier they avoid."""
        self.carriers = CarrierWatch()
        """Down reports per PLMN (issue 23, board/virtual/cloud/carrierwatch.py)."""
        self.plan_time: Callable[[], float] = self.clock.wall
        """The time plan windows are judged at: lab time in a running lab (``--lab-dir``)."""
        """Lab control: this many next assignments carry a Ki the carrier will refuse."""
        # certificate renewal (issue 13): signs device CSRs with the lab CA when given it
        self.ca_files = (ca_cert_file, ca_key_file) if ca_cert_file and ca_key_file else None
        self.renewed_cert_days = renewed_cert_days
        self.cert_replies: dict[str, dict[str, Any]] = {}
        """(device/request_id) -> the reply sent: a re-sent request gets the same certificate."""

    # --- state ----------------------------------------------------------------------

    def _load_state(self) -> None:
        st = store.read_json(self.state_dir / "state.json", default={}) or {}
        self.streams = {k: StreamState(v["upto"], list(v["above"])) for k, v in st.get("streams", {}).items()}
        self.sims: dict[str, dict[str, Any]] = st.get("sims") or {}
        for iccid, sim in self.pool.items():
            self.sims.setdefault(iccid, {"rx_bytes": 0, "tx_bytes": 0,
                                         "remaining_bytes": (sim.get("plan") or {}).get("cap_bytes"),
                                         "throttled": False, "device": None})
        self.device_seq: dict[str, int] = st.get("device_seq", {})
        self.sessions: dict[str, int] = st.get("sessions", {})
        self.online: dict[str, bool] = st.get("online", {})
        self.swaps: dict[str, dict[str, Any]] = st.get("swaps", {})
        self.rejected = int(st.get("rejected", 0))
        self.contracts_changed: dict[str, list[dict[str, Any]]] = st.get("contracts_changed", {})
        """Wholesaler contracts (carriers) a device saw throttle below every cap (3.3)."""
        self.gaps = int(st.get("gaps", 0))

    def _save(self) -> None:
        store.atomic_write_json(self.state_dir / "state.json", {
            "streams": {k: {"upto": v.upto, "above": v.above} for k, v in self.streams.items()},
            "sims": self.sims, "device_seq": self.device_seq, "sessions": self.sessions, "online": self.online,
            "swaps": self.swaps, "rejected": self.rejected, "gaps": self.gaps,
            "contracts_changed": self.contracts_changed})
        store.atomic_write_json(self.state_dir / "totals.json", self.totals(), mode=store.PUBLIC_MODE)

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per ICCID: rx_bytes, tx_bytes, remaining_bytes, throttled, device."""
        return {i: {k: v for k, v in s.items() if k != "usage"} for i, s in self.sims.items()}

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._events)

    def _record(self, topic: str, device: str, kind: str, body: Any) -> None:
        event = {"t": self.clock.wall(), "topic": topic, "device": device, "kind": kind, "body": body}
        self._events.append(event)
        with open(self._events_path, "a") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
        self.lock.notify_all()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Block until ``predicate()`` (called under the lock) is true; False on timeout."""
        with self.lock:
            return self.lock.wait_for(predicate, timeout)

    # --- MQTT -------------------------------------------------------------------------

    def start(self) -> None:
        client = paho_compat.make_client(self.client_id)  # paho 1.6.1 or 2.x, as the agent
        client.tls_set(ca_certs=self.tls[0], certfile=self.tls[1], keyfile=self.tls[2])
        client.reconnect_delay_set(0.05, RECONNECT_MAX_S)
        client.max_queued_messages_set(10_000)
        paho_compat.set_callbacks(client, on_connect=self._on_connect, on_message=self._on_message,
                                  on_disconnect=lambda *a: self._connected.clear())
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self._client = client
        client.connect_async(self.host, self.port, 30, clean_start=False, properties=props)
        paho_compat.loop_start(client)
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"reference cloud could not connect to {self.host}:{self.port}")

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            LOGGER.error("cloud refused by broker: %s", rc)
            return
        client.subscribe(f"{proto.TOPIC_ROOT}/+/#", qos=1)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            with self.lock:
                self._handle(msg)
        except Exception:
            LOGGER.exception("cloud failed on %s", msg.topic)

    def _publish(self, device: str, leaf: str, body: dict[str, Any], props: Properties | None = None,
                 topic: str | None = None) -> None:
        """Send ``body`` on ``leaf`` once it fits the contract: a ContractError here is the
        cloud's own bug, raised where it happens rather than found on the device."""
        self._check_outgoing(leaf, body)
        self.publish_unchecked(device, leaf, body, props, topic=topic)

    def _check_outgoing(self, leaf: str, body: dict[str, Any]) -> None:
        kind = contract.kind_of_leaf(leaf)
        if kind is None:
            raise ContractError(leaf, "topic", [f"no message of the contract goes to {leaf!r}"])
        contract.check(kind, {"v": proto.VERSION, **body})

    def publish_unchecked(self, device: str, leaf: str, body: dict[str, Any], props: Properties | None = None,
                          *, topic: str | None = None, retain: bool = False) -> None:
        """Send ``body`` as given, for tests of how a device meets a message that breaks the
        contract on purpose; the cloud's own messages go through ``_publish``."""
        if self._client is not None:
            self._client.publish(topic or proto.topic(device, leaf), proto.encode(body), qos=1, properties=props,
                                 retain=retain)

    # --- handlers -----------------------------------------------------------------------

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = proto.parse_topic(msg.topic)
        except ProtocolError:
            return
        device, leaf = parsed.device_id, parsed.leaf
        if leaf in (proto.ACK, proto.ASSIGNMENT, proto.COMMAND, proto.POLICY, proto.CERT, proto.UPDATE_CHUNK):
            return  # our own messages to devices
        try:
            body = contract.parse(msg.payload, contract.kind_of_leaf(leaf) or leaf)
        except ContractError as exc:
            self._refuse(msg.topic, device, exc)
            return
        kind = leaf.split("/")[-1] if leaf.startswith(proto.EVENT + "/") else leaf
        self._record(msg.topic, device, kind, body)
        if contract.kind_of_leaf(leaf) is None:
            self._refuse(msg.topic, device, ContractError(leaf, "topic", [f"no message goes to {leaf!r}"]))
            return
        if leaf == proto.STATE:
            self._on_state(device, body)
        elif leaf == proto.USAGE or leaf.startswith(proto.EVENT + "/"):
            self._on_record(device, msg.topic, body)
        elif leaf == proto.ASSIGN_REQUEST:
            self._on_request(device, msg, body)
        elif leaf == proto.CERT_REQUEST:
            self._on_cert_request(device, body)
        elif leaf == proto.UPDATE_GET:  # issue 26: a chunk of a shelved release
            chunk = self.releases.answer(body)
            if chunk is not None:
                self.publish_unchecked(device, proto.UPDATE_CHUNK, chunk)

    def _refuse(self, topic: str, device: str, exc: ContractError) -> None:
        """A received message that breaks the contract: counted and recorded with its reason."""
        self.rejected += 1
        LOGGER.warning("%s: refused a message on %s: %s", device, topic, exc)
        self._record(topic, device, "rejected", {"reason": exc.reason, "detail": str(exc)})

    def _on_cert_request(self, device: str, body: dict[str, Any]) -> None:
        """Sign a renewal CSR with the lab CA, if it names the device that sent it (the
        broker's ACL guarantees the topic's device is the sender's certificate CN)."""
        try:
            req = contract.check("cert_request", body)
        except ContractError as exc:
            self._refuse(proto.topic(device, proto.CERT_REQUEST), device, exc)
            return
        key = f"{device}/{req['request_id']}"
        reply = self.cert_replies.get(key) or self._sign(device, req)
        self.cert_replies[key] = reply
        self._publish(device, proto.CERT, reply)

    def _sign(self, device: str, req: dict[str, Any]) -> dict[str, Any]:
        refused = {"request_id": req["request_id"], "status": "refused"}
        if self.ca_files is None:
            return {**refused, "reason": "this cloud has no CA to sign with"}
        try:
            csr = certs.load_csr(req["csr"].encode())
        except CertificateMismatch as exc:
            return {**refused, "reason": str(exc)}
        if certs.subject_value(csr.subject, NameOID.COMMON_NAME) != device:
            return {**refused, "reason": "CSR names another device"}
        ca = x509.load_pem_x509_certificate(self.ca_files[0].read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_files[1].read_bytes(), password=None)
        # the host's time, not lab time: the broker checks a certificate's validity on the
        # host's clock, and a lab advanced 72 hours would get one not yet valid there
        now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
        pem = certs.sign_csr(req["csr"].encode(), ca_cert=ca, ca_key=ca_key,  # type: ignore[arg-type]
                             days=self.renewed_cert_days, now=now)
        LOGGER.info("renewed the certificate of %s", device)
        return {"request_id": req["request_id"], "status": "ok", "cert": pem.decode()}

    def _on_state(self, device: str, body: dict[str, Any]) -> None:
        try:
            contract.check("state", body)
        except ContractError as exc:
            self._refuse(proto.topic(device, proto.STATE), device, exc)
            return
        session = int(body["session"])
        if session < self.sessions.get(device, 0):
            LOGGER.info("%s: stale state from session %d ignored (now %d)", device, session, self.sessions[device])
            return
        self.sessions[device] = session
        self.online[device] = bool(body["online"])
        self._save()

    def _on_record(self, device: str, topic: str, msg: dict[str, Any]) -> None:
        try:
            stream = proto.require(msg, "stream", str, topic)
            seq = int(proto.require(msg, "seq", int, topic))
            base = int(proto.require(msg, "base", int, topic))
            epoch, start = proto.record_epoch(msg) if "epoch" in msg else ("", 1)
            if epoch:
                proto.ack_epoch(msg, topic)
        except (ProtocolError, TypeError, ValueError):
            self.rejected += 1
            return  # no sequence to acknowledge: the device will resend, and be rejected again
        # One high-water mark per epoch (agent/epochs.py): a device whose log began again
        # numbers from its epoch's start, and none of it is taken for what is already held.
        key = f"{device}/{stream}/{epoch}" if epoch else f"{device}/{stream}"
        st = self.streams.setdefault(key, StreamState(upto=max(0, start - 1)))
        if base - 1 > st.upto:
            self.gaps += base - 1 - st.upto
            LOGGER.warning("%s/%s: device dropped records %d..%d", device, stream, st.upto + 1, base - 1)
            st.upto = base - 1
            st.above = [s for s in st.above if s > st.upto]
        if seq > st.upto and seq not in st.above:
            self._ingest(device, stream, topic, msg)
            st.above.append(seq)
            st.above.sort()
            while st.above and st.above[0] == st.upto + 1:
                st.upto = st.above.pop(0)
            while st.above and st.above[0] <= st.upto:
                st.above.pop(0)
        self._save()
        self._publish(device, proto.ACK, {"stream": stream, "upto": st.upto, **({"epoch": epoch} if epoch else {})})

    def _ingest(self, device: str, stream: str, topic: str, msg: dict[str, Any]) -> None:
        """Apply one new record. An invalid body is counted as handled (and recorded), so
        one bad record cannot block the cumulative ack for everything after it."""
        try:
            if "rejected" in msg:
                raise ContractError(stream, "device", [f"device could not send record: {msg['rejected']}"])
            contract.check(contract.kind_of_topic(topic) or stream, msg)
        except ContractError as exc:
            self.rejected += 1
            LOGGER.warning("%s: refused record %s on %s: %s", device, msg.get("seq"), topic, exc)
            self._record(topic, device, "rejected", {"reason": exc.reason, "detail": str(exc), "seq": msg.get("seq")})
            return
        body = msg["body"]
        if stream == proto.USAGE:
            self._add_usage(device, body)
        elif stream == proto.EVENT:
            self._on_event(device, body)

    def _add_usage(self, device: str, body: dict[str, Any]) -> None:
        sim = self.sims.setdefault(body["iccid"], {"rx_bytes": 0, "tx_bytes": 0, "remaining_bytes": None,
                                                   "throttled": False, "device": device})
        sim["rx_bytes"] += body["rx_bytes"]
        sim["tx_bytes"] += body["tx_bytes"]
        cloud_allowance.add_usage(sim.setdefault("usage", {}), body)  # each plan rule's count
        if sim["remaining_bytes"] is not None:
            sim["remaining_bytes"] = max(0, sim["remaining_bytes"] - body["rx_bytes"] - body["tx_bytes"])

    def used_elsewhere(self, iccid: str, nbytes: int, at: float, device: str | None, version: int | None) -> None:
        """``nbytes`` the SIM carried in another router at ``at`` (lab time), as the
        wholesaler reports them: counted here like a device's usage, then, when ``device``
        holds the SIM, a signed plan update with what is left now (docs/protocol.md 4.3)."""
        sim = self.sims[iccid]
        plan = self.pool[iccid].get("plan") or {}
        _, _, tz = plancarrier.rules_of(plan)
        local = dt.datetime.fromtimestamp(at, tz)
        self._add_usage(str(sim.get("device") or "-"), {"iccid": iccid, "day": local.date().isoformat(),
                                                         "end": local.isoformat(), "rx_bytes": nbytes, "tx_bytes": 0})
        if device is None or version is None:
            return
        now = self.plan_time()
        if "rules" in plan:
            remaining = cloud_allowance.remaining(plan, sim.get("usage", {}), now)
        elif sim.get("remaining_bytes") is not None:
            remaining = {"cap": int(sim["remaining_bytes"])}
        else:
            return  # no cap to correct (the old flat-rate plan)
        update = {"iccid": iccid, "update_id": f"elsewhere-{iccid[-6:]}-{version}", "version": int(version),
                  "issued_at": int(now), "remaining": remaining, "as_of": round(now, 3)}
        self.send_command(device, {"command_id": f"plan-{iccid[-6:]}-{version}", "action": "plan_update",
                                   "plan_update": update})
        LOGGER.info("%s used %d bytes elsewhere: plan update %d sent to %s (%s left)", iccid, nbytes, version, device,
                    remaining)

    def _on_event(self, device: str, body: dict[str, Any]) -> None:
        data = body["data"]
        if body["kind"] == "health":
            self.carriers.on_health(device, data, self.clock.wall())
        if body["kind"] == "health" and data.get("state") == "throttled" and data.get("iccid") in self.sims:
            LOGGER.info("%s reports %s throttled: never assigned again", device, data["iccid"])
            self.sims[data["iccid"]]["throttled"] = True
            if data.get("no_rule_explains") is True:
                self._contract_changed(device, data)
        elif body["kind"] == "assignment_result":
            self._on_result(device, data)

    def _contract_changed(self, device: str, data: dict[str, Any]) -> None:
        """docs/protocol.md 3.3: a SIM throttled below every cap of its plan. The platform's
        most valuable signal (the 2020 case: a wholesaler changed the caps without telling
        anyone): the SIM's wholesaler contract (its carrier in this pool) is flagged as
        changed, on the SIM and in ``contracts_changed``, with the evidence."""
        iccid = data["iccid"]
        carrier = (self.pool.get(iccid) or {}).get("carrier")
        LOGGER.warning("%s: SIM %s throttled at %s kbps with no rule of its plan explaining it: contract %s "
                       "flagged as changed", device, iccid, data.get("kbps"), carrier)
        self.sims[iccid]["contract_changed"] = True
        if carrier is not None:
            self.contracts_changed.setdefault(str(carrier), []).append(
                {"iccid": iccid, "device": device, "kbps": data.get("kbps"), "since": data.get("since")})

    def _on_result(self, device: str, data: dict[str, Any]) -> None:
        swap = self.swaps.pop(str(data["assignment_id"]), None)
        if swap is None or swap["device"] != device:
            return
        if data["ok"]:
            for sim in self.sims.values():
                if sim.get("device") == device:
                    sim["device"] = None
            self.sims[swap["iccid"]]["device"] = device
        elif self.sims[swap["iccid"]].get("device") == f"reserved:{device}":
            self.sims[swap["iccid"]]["device"] = None

    # --- assignment -------------------------------------------------------------------------

    def active_swaps(self) -> int:
        now = self.clock.wall()
        for aid, swap in list(self.swaps.items()):
            if now - swap["at"] > self.swap_hold:
                self.swaps.pop(aid)
                sim = self.sims.get(swap["iccid"], {})
                if sim.get("device") == f"reserved:{swap['device']}":
                    sim["device"] = None
        return len(self.swaps)

    def _on_request(self, device: str, msg: mqtt.MQTTMessage, body: dict[str, Any]) -> None:
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) or proto.topic(device, proto.ASSIGNMENT)
        correlation = getattr(props, "CorrelationData", None)
        try:
            req = contract.check("request", body)
        except ContractError as exc:
            self._refuse(msg.topic, device, exc)
            return
        reply_props = Properties(PacketTypes.PUBLISH)
        reply_props.MessageExpiryInterval = proto.ASSIGNMENT_EXPIRY_S
        if correlation is not None:
            reply_props.CorrelationData = correlation
        reply = self._decide(device, req)
        self._save()
        self._publish(device, proto.ASSIGNMENT, reply, reply_props, topic=response_topic)

    def _decide(self, device: str, req: dict[str, Any]) -> dict[str, Any]:
        rid = req["request_id"]
        if self.clock.wall() < self.busy_until:
            self.retries_sent += 1
            return {"status": "retry", "request_id": rid, "retry_after": self.busy_retry_after}
        if self.active_swaps() >= self.max_concurrent_swaps:
            self.retries_sent += 1
            return {"status": "retry", "request_id": rid, "retry_after": self.retry_after}
        fault = self._injected_fault()  # pocket-lab fault cloud-busy (board/virtual/network/faults.py)
        if fault is not None:
            return fault | {"request_id": rid}
        avoid = [p for p in req.get("avoid_plmns") or [] if isinstance(p, str)]
        for plmn in avoid:  # the device's escape request is a down report too (issue 23)
            self.carriers.report_down(device, plmn, self.clock.wall())
        if avoid and self.misassign > 0:  # lab control: a platform that ignores the escape's request
            self.misassign -= 1
            self.prefer_plmn = avoid[0]
            iccid = self.pick_sim(device, req.get("current_iccid"))
            self.prefer_plmn = None
            LOGGER.warning("assigning %s to %s on the carrier it asked to avoid (lab control misassign)", iccid, device)
        else:
            iccid = self.pick_sim(device, req.get("current_iccid"), avoid)
        if iccid is None:
            return {"status": "refused", "request_id": rid,
                    "reason": "no SIM on another carrier" if avoid else "no SIM with room"}
        key_path = self.device_keys_dir / device / "sealing.pub"
        try:
            device_key = sealer.load_device_public(key_path)
        except (OSError, ValueError) as exc:
            return {"status": "refused", "request_id": rid, "reason": f"no sealing key for device: {exc.__class__.__name__}"}
        seq = self.device_seq.get(device, 0) + 1
        self.device_seq[device] = seq
        aid = f"a-{device}-{seq}"
        now = int(self.clock.wall())
        profile = self.profile_document(iccid)
        if self.corrupt_next > 0:
            # A profile whose Ki the carrier's HSS does not know: attach fails with EMM #3.
            self.corrupt_next -= 1
            profile["ki"] = bytes(b ^ 0xFF for b in bytes.fromhex(profile["ki"])).hex()
            LOGGER.info("assignment to %s carries a corrupted Ki (lab control)", device)
        env = sealer.seal(contract.check("profile", profile), device_id=device, device_public=device_key,
                          platform_key=self.platform_key, assignment_id=aid, seq=seq, issued_at=now,
                          expires_at=now + ASSIGNMENT_TTL_S)
        self.swaps[aid] = {"device": device, "iccid": iccid, "at": self.clock.wall()}
        self.prefer_plmn = None  # ``swap --carrier``: the one assignment it asked for is made
        self.sims[iccid]["device"] = f"reserved:{device}"
        LOGGER.info("assigned %s to %s as %s", iccid, device, aid)
        reply = {"status": "ok", "request_id": rid, "assignment_id": aid, "seq": seq, "envelope": env,
                 "window": {"not_before": now, "not_after": now + ASSIGNMENT_TTL_S}}
        if req.get("need_floor"):  # the device lost its replay state: every seq below this one is old
            reply["floor"] = signer.sign_floor(device_id=device, request_id=rid, seq=seq - 1,
                                               key=self.platform_key)
        return reply

    def _injected_fault(self) -> dict[str, Any] | None:
        """The lab's "no capacity" / "retry after" fault, while it lasts (cloud/fault.json)."""
        fault = store.read_json(self.state_dir / "fault.json")
        if not fault or float(fault.get("until", 0)) < self.clock.wall():
            return None
        if fault.get("mode") == "refuse":
            return {"status": "refused", "reason": "no capacity"}
        return {"status": "retry", "retry_after": float(fault.get("retry_after", self.retry_after))}

    def pick_sim(self, device: str, current_iccid: str | None, avoid_plmns: list[str] | None = None) -> str | None:
        """The SIM with the most room that is not throttled, nearly empty, current or taken,
        nor on a carrier the device asks to avoid or the fleet reports down (issue 23)."""
        best, best_room = None, -1
        excluded = self.carriers.excluded_for(device, avoid_plmns or [], self.clock.wall())
        for iccid, sim in self.sims.items():
            if iccid not in self.pool or iccid == current_iccid or sim["throttled"]:
                continue
            plmn = self.pool[iccid].get("plmn")
            if plmn in excluded or (self.prefer_plmn is not None and plmn != self.prefer_plmn):
                continue
            if sim.get("device") not in (None, device):
                continue
            plan = self.pool[iccid].get("plan") or {}
            if self.prefer_plan is not None:
                if plan.get("name") != self.prefer_plan:
                    continue
                if "rules" in plan and cloud_allowance.room_ok(plan, sim.get("usage", {}), self.plan_time(),
                                                               MIN_ROOM_FRACTION) is None:
                    return iccid  # a flat-rate or price-step plan asked for by name: no room to compare
            if "rules" in plan:  # docs/protocol.md 4.2: every throttle rule must have room
                ok = cloud_allowance.room_ok(plan, sim.get("usage", {}), self.plan_time(), MIN_ROOM_FRACTION)
                if not ok:
                    continue  # nearly used up, or an always-slow plan (not a swap target)
                room = cloud_allowance.min_room(plan, sim.get("usage", {}), self.plan_time())
            else:
                cap = plan.get("cap_bytes")
                room = sim["remaining_bytes"]
                if cap is None:
                    continue  # an always-slow plan (200 kbps) is not a swap target
                if room < max(MIN_ROOM_BYTES, cap * MIN_ROOM_FRACTION):
                    continue
            if room > best_room:
                best, best_room = iccid, room
        return best

    def profile_document(self, iccid: str) -> dict[str, Any]:
        """The plaintext the sealer seals (docs/protocol.md 4's table): the pool's SIM with the
        remaining allowance this cloud counts. Holds Ki and OPc: never logged or recorded."""
        sim = self.pool[iccid]
        plan = sim["plan"]
        if "rules" in plan:  # the rules form: what is left under each rule now (4.2)
            now = self.plan_time()
            plan = {**plan, "as_of": round(now, 3),
                    "remaining": cloud_allowance.remaining(plan, self.sims[iccid].get("usage", {}), now)}
        else:
            plan = {**plan, "remaining_bytes": self.sims[iccid]["remaining_bytes"]}
        return {"iccid": iccid, "imsi": sim["imsi"], "ki": sim["ki"].lower(), "opc": sim["opc"].lower(),
                "plmn": sim["plmn"], "apn": sim["apn"], "plan": plan}

    def profile(self, iccid: str) -> SimProfile:
        """The same profile as the agent's type, for tests that seal variants the agent's way."""
        sim = self.pool[iccid]
        plan = Plan.from_dict(self.profile_document(iccid)["plan"])
        return SimProfile(iccid=iccid, imsi=sim["imsi"], ki=bytes.fromhex(sim["ki"]), opc=bytes.fromhex(sim["opc"]),
                          plmn=sim["plmn"], apn=sim["apn"], plan=plan)

    # --- lab controls -----------------------------------------------------------------------

    def control(self, op: dict[str, Any]) -> None:
        """One lab control (``pocket-lab swap``, ``policy``, tests): see ``CONTROL_OPS``."""
        kind = op.get("op")
        with self.lock:
            if kind in ("command", "policy"):
                try:
                    send = self.send_command if kind == "command" else self.set_policy
                    send(str(op["device"]), dict(op["body"]))
                except ContractError as exc:  # an operator's typo must not stop the cloud
                    LOGGER.error("lab control %s refused: %s", kind, exc)
                    self._record("lab/control", str(op.get("device", "-")), "refused", {**op, "why": str(exc)})
                    return
            elif kind == "busy":
                self.busy_until = self.clock.wall() + float(op.get("for_s", 60))
                self.busy_retry_after = float(op.get("retry_after", self.retry_after))
            elif kind == "corrupt_next":
                self.corrupt_next = int(op.get("count", 1))
            elif kind == "release":  # pocket-lab update: an artifact on the shelf (board/virtual/cloud/releases.py)
                self.releases.add(Path(op["artifact"]), sha256=op.get("sha256"), fault=op.get("fault"))
            elif kind == "prefer_plan":  # pocket-lab swap --plan NAME: the next SIMs are of that plan
                self.prefer_plan = op.get("plan") or None
            elif kind == "misassign":  # a broken platform: the next escapes get the failing carrier
                self.misassign = int(op.get("count", 1))
            elif kind == "prefer_plmn":  # pocket-lab swap --carrier B: the next SIMs are that carrier's
                self.prefer_plmn = op.get("plmn") or None
            elif kind == "elsewhere":  # pocket-lab used-elsewhere: the SIM's bytes in other routers
                self.used_elsewhere(str(op["iccid"]), int(op["bytes"]), float(op["at"]), op.get("device"),
                                    op.get("version"))
            else:
                LOGGER.warning("unknown lab control %r ignored", kind)
                return
            LOGGER.info("lab control: %s", kind)
            self._record("lab/control", str(op.get("device", "-")), "control", op)

    def process_spool(self, spool: Path) -> int:
        """Apply and remove every control file in ``spool`` (oldest first)."""
        done = 0
        for path in sorted(spool.glob("*.json")):
            try:
                op = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                LOGGER.warning("unreadable lab control %s: %s", path.name, exc)
            else:
                self.control(op)
                done += 1
            path.unlink(missing_ok=True)
        return done

    def send_command(self, device: str, body: dict[str, Any], expiry: int = proto.COMMAND_EXPIRY_S) -> None:
        """A command; a ``set_policy`` command's policy is signed for ``device`` first."""
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = expiry
        if body.get("action") == "set_policy" and isinstance(body.get("policy"), dict):
            body = {**body, "policy": self.sign_policy(device, body["policy"])}
        if body.get("action") == "plan_update" and isinstance(body.get("plan_update"), dict):
            body = {**body, "plan_update": signer.sign_plan_update(body["plan_update"], device_id=device,
                                                                   key=self.platform_key)}
        self._publish(device, proto.COMMAND, body, props)

    def sign_policy(self, device: str, policy: dict[str, Any]) -> dict[str, Any]:
        """``policy`` bound to ``device`` and signed with the platform key (docs/protocol.md 3.8.2)."""
        return signer.sign_policy(policy, device_id=device, key=self.platform_key)

    def set_policy(self, device: str, body: dict[str, Any]) -> None:
        """Publish ``body`` as the device's retained policy, signed for it; it must fit the
        contract (a ContractError is the caller's mistake, found before a device sees it)."""
        signed = self.sign_policy(device, body)
        self._check_outgoing(proto.POLICY, signed)
        self.publish_policy(device, signed)

    def publish_policy(self, device: str, body: dict[str, Any]) -> None:
        """Publish ``body`` exactly as given, retained (tests publish unsigned ones with it)."""
        if self._client is not None:
            self._client.publish(proto.topic(device, proto.POLICY), proto.encode(body), qos=1, retain=True)


# --- pocket-lab cloud ------------------------------------------------------------------------

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None, help="default $POCKET_LAB_DIR/cloud")
    parser.add_argument("--broker", default="127.0.0.1:8883", help="HOST:PORT")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--platform-key", type=Path, required=True)
    parser.add_argument("--device-keys", type=Path, required=True, help="directory of <device>/sealing.pub")
    parser.add_argument("--max-concurrent-swaps", type=int, default=MAX_CONCURRENT_SWAPS)
    parser.add_argument("--retry-after", type=float, default=RETRY_AFTER_S)
    parser.add_argument("--ca-key", type=Path, default=None, help="sign certificate renewals with this CA key")
    parser.add_argument("--lab-dir", type=Path, default=None,
                        help="live on this lab's time (pocket-lab clock), not the host's: plan windows, "
                             "envelope times, swap holds")


def main(args: argparse.Namespace) -> int:
    host, _, port = args.broker.rpartition(":")
    # In a running lab the cloud lives on lab time like the device and the carrier: its
    # envelopes' issued/expires, its swap holds and its plan windows (pocket-lab clock).
    clock = labclock.LabClock(args.lab_dir) if args.lab_dir is not None else None
    cloud = ReferenceCloud(state_dir=args.state_dir or default_dir(), host=host, port=int(port), ca_file=args.ca,
                           cert_file=args.cert, key_file=args.key, pool=load_pool(args.pool),
                           platform_key_file=args.platform_key, device_keys_dir=args.device_keys,
                           max_concurrent_swaps=args.max_concurrent_swaps, retry_after=args.retry_after,
                           ca_cert_file=args.ca if args.ca_key else None, ca_key_file=args.ca_key, clock=clock)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cloud.start()
    spool = store.ensure_private_dir(cloud.state_dir / SPOOL_DIR)
    print(f"reference cloud on {args.broker}; state in {cloud.state_dir}", flush=True)
    while not stop.wait(SPOOL_POLL_S):
        cloud.process_spool(spool)
    cloud.stop()
    return 0


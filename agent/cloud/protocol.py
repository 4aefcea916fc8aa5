"""The cloud contract as code: topics, versioned bodies, their schemas and limits.

docs/protocol.md is the prose for the cloud team; this module is what both sides run.
Every inbound body goes through ``decode()`` and a per-message validator before any
other code sees it, so a malformed, oversized or wrong-version message becomes one
typed ``ProtocolError`` (with the topic, a reason and a short excerpt of what arrived),
never an exception in the middle of the link.

The validators are hand-written rather than JSON Schema: the device has no jsonschema
package, and each message has only a handful of fields. The contract's single source is
docs/schemas/ (JSON Schema, written from docs/protocol.md); tests/cloud/test_contract.py
holds these validators and those schemas to one corpus of good and bad messages.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from agent.cloud.schema import (
    DAY_RE,
    EVENT_SCHEMAS,
    ICCID_RE,
    IMSI_RE,
    ISO_OFFSET_RE,
    MONTH_RE,
    TZ_RE,
    validate_event_data,
)
from agent.core.policy import policy_from_dict
from agent.errors import ProtocolError

LOGGER = logging.getLogger(__name__)

VERSION = 1
"""Body version ("v"). A receiver rejects a version it does not know (reason "version")."""

TOPIC_ROOT = "pw/v1"
"""One tree per device: pw/v1/<device>/<leaf>. The broker's ACL confines a device to it."""

MAX_MESSAGE_BYTES = 16 * 1024
"""16 KiB: a sealed assignment is ~1 KiB and a usage record ~300 bytes; anything larger
is a bug or an attack, and the broker is told the same limit (max_packet_size)."""

MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 1024
"""The largest MQTT packet a device accepts, told to the broker in CONNECT's Maximum
Packet Size (MQTT 5, 3.1.2.11.4): the body limit plus 1 KiB for the fixed header, the
topic (~40 bytes) and properties (response topic, correlation data, expiry). A broker
must not send this client a larger packet (it drops the message for it), so a huge
retained message, from a broker with a larger limit of its own, is never buffered whole
on a router before the body limit could refuse it (issue 20)."""

EXCERPT_CHARS = 120
"""How much of a rejected payload an error carries: enough to recognise, small enough
for a log line. Inbound cloud messages never carry Ki/OPc in clear (profiles are sealed)."""

ASSIGNMENT_EXPIRY_S = 300
"""MQTT message expiry on an assignment: a reply older than 5 minutes answers a request
the device has long given up on (request timeouts are tens of seconds)."""

COMMAND_EXPIRY_S = 6 * 3600
"""Default message expiry on commands: a swap order from 6 hours ago describes a pool
that no longer exists; after days offline the device must not act on it."""

REQUEST_EXPIRY_S = 60
"""Expiry on the device's assignment request: the cloud must not serve a request the
device stopped waiting for."""

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
"""Device ids are certificate CNs and topic levels: no '/', '+', '#', spaces or a final
line break (``\\Z``: Python's ``$`` would take one)."""

MCC_RE = re.compile(r"^[0-9]{3}\Z")
EPOCH_RE = re.compile(r"^[0-9a-f]{16}\Z")
"""A reliable stream's epoch id: 64 random bits as 16 lowercase hex digits (agent/epochs.py,
docs/protocol.md 3); absent means the legacy epoch."""

# Topic leaves. Device -> cloud:
STATE = "state"  # retained; birth and last will
USAGE = "usage"  # reliable stream "usage"
EVENT = "event"  # reliable stream "event"; topic event/<kind>
ASSIGN_REQUEST = "assign/request"
# Cloud -> device:
ASSIGNMENT = "assignment"
COMMAND = "command"
POLICY = "policy"  # retained
ACK = "ack"

EVENT_KINDS = tuple(EVENT_SCHEMAS)
"""Kinds a device emits on the "event" stream (topic pw/v1/<dev>/event/<kind>); each
kind's data has one schema in agent/cloud/schema.py."""

COMMAND_ACTIONS = ("swap", "report", "set_policy", "plan_update", "update")
STREAMS = (USAGE, EVENT)
"""The reliable streams (docs/protocol.md 3): records and acks name one of these."""


def topic(device_id: str, leaf: str) -> str:
    """pw/v1/<device>/<leaf>."""
    return f"{TOPIC_ROOT}/{device_id}/{leaf}"


def stream_topic(device_id: str, stream: str, body: dict[str, Any]) -> str:
    """Where a reliable record goes: event records by kind, other streams by name."""
    if stream == EVENT:
        return topic(device_id, f"{EVENT}/{body.get('kind', 'health')}")
    return topic(device_id, stream)


@dataclass(frozen=True)
class ParsedTopic:
    device_id: str
    leaf: str


def parse_topic(name: str) -> ParsedTopic:
    """Split pw/v1/<device>/<leaf...>; raises ProtocolError for anything else."""
    parts = name.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT or not DEVICE_ID_RE.match(parts[2]):
        raise ProtocolError(f"topic outside the contract: {name[:EXCERPT_CHARS]!r}", topic=name, reason="topic")
    return ParsedTopic(parts[2], "/".join(parts[3:]))


def excerpt(payload: bytes | str) -> str:
    """A short printable prefix of a payload for error texts and error events."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def encode(body: dict[str, Any]) -> bytes:
    """Compact JSON with the version stamped in; refuses what the receiver would refuse."""
    data = json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"outgoing body of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}", reason="oversized")
    return data


def _not_json(name: str) -> Any:
    """Python's json reads NaN and Infinity, which JSON has not (docs/protocol.md 3.0)."""
    raise ValueError(f"{name} is not JSON")


def decode(payload: bytes, topic_name: str | None = None) -> dict[str, Any]:
    """Bytes -> JSON object of a version we speak, or ProtocolError saying why not."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}: {excerpt(payload)!r}",
            topic=topic_name, reason="oversized")
    try:
        body = json.loads(payload, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON ({exc.__class__.__name__}): {excerpt(payload)!r}",
                            topic=topic_name, reason="malformed") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"body is not an object: {excerpt(payload)!r}", topic=topic_name, reason="malformed")
    if body.get("v") != VERSION or isinstance(body.get("v"), bool):  # True == 1 in Python, not in JSON
        raise ProtocolError(f"unknown version {body.get('v')!r}: {excerpt(payload)!r}", topic=topic_name,
                            reason="version")
    return body


# --- field checks -------------------------------------------------------------------

def _fail(what: str, body: dict[str, Any], topic_name: str | None) -> ProtocolError:
    return ProtocolError(f"{what}: {excerpt(json.dumps(body, default=str))!r}", topic=topic_name, reason="schema")


def require(body: dict[str, Any], key: str, kind: type | tuple[type, ...], topic_name: str | None = None) -> Any:
    """body[key], which must exist and be of ``kind`` (bool is not accepted as int)."""
    if key not in body:
        raise _fail(f"missing field {key!r}", body, topic_name)
    value = body[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _fail(f"field {key!r} has type bool", body, topic_name)
    if not isinstance(value, kinds):
        raise _fail(f"field {key!r} has type {type(value).__name__}", body, topic_name)
    return value


def _nonneg_int(body: dict[str, Any], key: str, topic_name: str | None, minimum: int = 0) -> int:
    value = require(body, key, int, topic_name)
    if value < minimum:
        raise _fail(f"field {key!r} is below {minimum}", body, topic_name)
    return int(value)


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], topic_name: str | None) -> str:
    value = require(body, key, str, topic_name)
    if value not in choices:
        raise _fail(f"field {key!r} is not one of {list(choices)}", body, topic_name)
    return str(value)


def _window(body: dict[str, Any], topic_name: str | None) -> dict[str, Any]:
    """A swap window: ``not_before`` and ``not_after``, both UNIX seconds (numbers)."""
    window = require(body, "window", dict, topic_name)
    for key in ("not_before", "not_after"):
        require(window, key, (int, float), topic_name)
    return dict(window)


def _match(body: dict[str, Any], key: str, pattern: re.Pattern[str], topic_name: str | None) -> str:
    value = require(body, key, str, topic_name)
    if not pattern.match(value):
        raise _fail(f"field {key!r} is malformed", body, topic_name)
    return str(value)


USAGE_FIELDS = frozenset({"iccid", "imsi", "day", "month", "tz", "mcc", "rx_bytes", "tx_bytes", "start", "end"})


def validate_usage(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    """The usage journal's record shape, exactly (no missing, no extra fields)."""
    extra = set(body) - USAGE_FIELDS
    if extra:
        raise _fail(f"unexpected fields {sorted(extra)}", body, topic_name)
    _match(body, "iccid", ICCID_RE, topic_name)
    _match(body, "imsi", IMSI_RE, topic_name)
    day = _match(body, "day", DAY_RE, topic_name)
    month = _match(body, "month", MONTH_RE, topic_name)
    if not day.startswith(month):
        raise _fail("day is not inside month", body, topic_name)
    _match(body, "tz", TZ_RE, topic_name)
    mcc = require(body, "mcc", list, topic_name)
    if not mcc or not all(isinstance(m, str) and MCC_RE.match(m) for m in mcc):
        raise _fail("field 'mcc' must be a non-empty list of 3-digit codes", body, topic_name)
    _nonneg_int(body, "rx_bytes", topic_name)
    _nonneg_int(body, "tx_bytes", topic_name)
    _match(body, "start", ISO_OFFSET_RE, topic_name)
    _match(body, "end", ISO_OFFSET_RE, topic_name)
    return body


def validate_event(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    """An event record: {"kind", "at", "data"}, ``data`` exactly as its kind's schema says."""
    extra = set(body) - {"kind", "at", "data"}
    if extra:
        raise _fail(f"unexpected fields {sorted(extra)}", body, topic_name)
    kind = require(body, "kind", str, topic_name)
    if kind not in EVENT_KINDS:
        raise _fail(f"unknown event kind {kind!r}", body, topic_name)
    _match(body, "at", ISO_OFFSET_RE, topic_name)
    validate_event_data(kind, require(body, "data", dict, topic_name), topic_name)
    return body


def validate_record(msg: dict[str, Any], topic_name: str | None = None) -> tuple[str, int, int, dict[str, Any]]:
    """A reliable-stream envelope {"stream","seq","base","body"} -> (stream, seq, base, body).

    A record the device could not send carries ``rejected`` (why) and an empty body."""
    stream = _choice(msg, "stream", STREAMS, topic_name)
    seq = _nonneg_int(msg, "seq", topic_name, minimum=1)
    base = _nonneg_int(msg, "base", topic_name, minimum=1)
    body = require(msg, "body", dict, topic_name)
    if base > seq:
        raise _fail("base is after seq", msg, topic_name)
    if "epoch" in msg or "epoch_start" in msg:
        _match(msg, "epoch", EPOCH_RE, topic_name)
        start = _nonneg_int(msg, "epoch_start", topic_name)
        if not 1 <= start <= base:
            raise _fail("epoch_start is not in 1..base", msg, topic_name)
    if "rejected" in msg:
        require(msg, "rejected", str, topic_name)
        if body:
            raise _fail("a rejected record carries a body", msg, topic_name)
    elif stream == USAGE:
        validate_usage(body, topic_name)
    elif stream == EVENT:
        validate_event(body, topic_name)
    return stream, seq, base, body


def validate_ack(body: dict[str, Any], topic_name: str | None = None) -> tuple[str, int]:
    """{"stream": s, "upto": n}: the cloud has durably ingested every record <= n."""
    ack_epoch(body, topic_name)
    return _choice(body, "stream", STREAMS, topic_name), _nonneg_int(body, "upto", topic_name)


def record_epoch(msg: dict[str, Any]) -> tuple[str, int]:
    """(epoch, epoch_start) of a validated record; ("", 1) for a legacy one."""
    return str(msg.get("epoch", "")), int(msg.get("epoch_start", 1))


def ack_epoch(body: dict[str, Any], topic_name: str | None = None) -> str:
    """The epoch an ack covers ("" when absent: the legacy epoch)."""
    if "epoch" not in body:
        return ""
    return _match(body, "epoch", EPOCH_RE, topic_name)


@dataclass(frozen=True)
class AssignmentReply:
    """The cloud's answer to an assignment request."""

    status: str  # "ok", "retry" or "refused"
    request_id: str
    assignment_id: str = ""
    seq: int = 0
    window: dict[str, Any] | None = None
    envelope: dict[str, Any] | None = None
    retry_after: float = 0.0
    reason: str = ""
    floor: dict[str, Any] | None = None
    """The platform's signed replay floor, when the request asked for one (``need_floor``)."""


def validate_assignment(body: dict[str, Any], topic_name: str | None = None) -> AssignmentReply:
    status = require(body, "status", str, topic_name)
    request_id = require(body, "request_id", str, topic_name)
    if status == "ok":
        floor = body.get("floor")
        if floor is not None and not isinstance(floor, dict):
            raise _fail("field 'floor' must be an object", body, topic_name)
        return AssignmentReply(status, request_id, require(body, "assignment_id", str, topic_name),
                               _nonneg_int(body, "seq", topic_name, minimum=1), _window(body, topic_name),
                               require(body, "envelope", dict, topic_name), floor=floor)
    if status == "retry":
        after = require(body, "retry_after", (int, float), topic_name)
        if not 0 <= after <= 3600:
            raise _fail("retry_after out of range 0..3600", body, topic_name)
        return AssignmentReply(status, request_id, retry_after=float(after))
    if status == "refused":
        return AssignmentReply(status, request_id, reason=require(body, "reason", str, topic_name))
    raise _fail(f"unknown status {status!r}", body, topic_name)


@dataclass(frozen=True)
class Command:
    """A cloud order. ``window`` bounds when a swap may happen (unix seconds)."""

    command_id: str
    action: str
    not_before: float | None = None
    not_after: float | None = None
    policy: dict[str, Any] | None = None
    expires_at: float | None = None
    plan_update: Any = None
    """A ``plan_update`` command's update: the signed object as received, then (agent/cloud/inbox.py)
    the checked ``agent.plans.update.PlanUpdate``."""
    manifest: dict[str, Any] | None = None
    """An ``update`` command's signed release manifest (docs/protocol.md 8; checked by
    agent/update/manifest.py against the pinned release key, not here)."""


def validate_command(body: dict[str, Any], topic_name: str | None = None) -> Command:
    command_id = require(body, "command_id", str, topic_name)
    action = require(body, "action", str, topic_name)
    if action not in COMMAND_ACTIONS:
        raise _fail(f"unknown action {action!r}", body, topic_name)
    window = _window(body, topic_name) if "window" in body else {}
    policy = body.get("policy")
    if action == "set_policy" and not isinstance(policy, dict):
        raise _fail("set_policy without a 'policy' object", body, topic_name)
    update = body.get("plan_update")
    if action == "plan_update" and not isinstance(update, dict):
        raise _fail("plan_update without a 'plan_update' object", body, topic_name)
    manifest = body.get("manifest")
    if action == "update" and not isinstance(manifest, dict):
        raise _fail("update without a 'manifest' object", body, topic_name)
    expires = body.get("expires_at")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))):
        raise _fail("field 'expires_at' must be a number", body, topic_name)
    return Command(command_id, action, window.get("not_before"), window.get("not_after"), policy, expires,
                   update if action == "plan_update" else None, manifest if action == "update" else None)


def validate_policy(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    """{"version": n, ...}: a newer version replaces an older one; the same one is ignored.

    The swap policy's fields are checked here, against their bounds and types
    (agent/core/policy.py), so a policy with one out of bounds is refused whole before any
    part of it (its pacing, its version) is taken (docs/protocol.md 3.8). Called on a policy
    whose signature was checked first (3.8.2: nothing unsigned is read): the retained one
    and a ``set_policy`` command's alike (agent/cloud/inbox.py)."""
    _nonneg_int(body, "version", topic_name)
    try:
        policy_from_dict(body)
    except ProtocolError as exc:
        raise _fail(str(exc), body, topic_name) from None
    return body


def validate_state(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    require(body, "online", bool, topic_name)
    _nonneg_int(body, "session", topic_name)
    return body


def validate_request(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    require(body, "request_id", str, topic_name)
    require(body, "reason", str, topic_name)
    cur = body.get("current_iccid")
    if cur is not None and not (isinstance(cur, str) and ICCID_RE.match(cur)):
        raise _fail("field 'current_iccid' is malformed", body, topic_name)
    ev = body.get("evidence")
    if ev is not None and not isinstance(ev, dict):
        raise _fail("field 'evidence' must be an object", body, topic_name)
    if "need_floor" in body:
        require(body, "need_floor", bool, topic_name)
    return body


# --- certificate renewal (issue 13; docs/protocol.md section 7) ----------------------------

CERT_REQUEST = "cert/request"
"""Device -> cloud: a CSR for a new client certificate."""
CERT = "cert"
"""Cloud -> device: the signed certificate (or a refusal)."""

CERT_REQUEST_EXPIRY_S = 3600
"""A renewal request may wait an hour for a cloud that is restarting: renewal starts 30
days before expiry, so there is no hurry, and a stale request only costs one signature."""

MAX_PEM_CHARS = 8 * 1024
"""A P-256 CSR is ~400 characters, a certificate with one intermediate ~1,500."""


def validate_cert_request(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    require(body, "request_id", str, topic_name)
    csr = require(body, "csr", str, topic_name)
    if "BEGIN CERTIFICATE REQUEST" not in csr or len(csr) > MAX_PEM_CHARS:
        raise _fail("field 'csr' is not a PEM CSR", body, topic_name)
    return body


def validate_cert_reply(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    """{"request_id", "status": "ok", "cert": PEM} or {"request_id", "status": "refused", "reason"}."""
    require(body, "request_id", str, topic_name)
    status = require(body, "status", str, topic_name)
    if status == "ok":
        cert = require(body, "cert", str, topic_name)
        if "BEGIN CERTIFICATE" not in cert or len(cert) > MAX_PEM_CHARS:
            raise _fail("field 'cert' is not a PEM certificate", body, topic_name)
    elif status == "refused":
        require(body, "reason", str, topic_name)
    else:
        raise _fail(f"unknown status {status!r}", body, topic_name)
    return body


# --- over-the-air updates (issue 26; docs/protocol.md section 8) -----------------------------

UPDATE_GET = "update/get"
"""Device -> cloud: the next chunk of a release's artifact."""
UPDATE_CHUNK = "update/chunk"
"""Cloud -> device: one chunk (agent/update/chunks.py decodes and bounds it)."""
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
MAX_UPDATE_CHUNK = 11 * 1024
"""agent/update/chunks.py MAX_CHUNK_BYTES: the largest chunk either side may name."""


def _count(body: dict[str, Any], name: str, topic_name: str | None, low: int, high: int) -> int:
    value = require(body, name, int, topic_name)
    if isinstance(value, bool) or not low <= value <= high:
        raise _fail(f"field {name!r} outside {low}..{high}", body, topic_name)
    return value


def validate_update_get(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    if not SHA256_RE.match(require(body, "sha256", str, topic_name)):
        raise _fail("field 'sha256' is not 64 lowercase hex digits", body, topic_name)
    _count(body, "offset", topic_name, 0, 2**31)
    _count(body, "length", topic_name, 1, MAX_UPDATE_CHUNK)
    return body


def validate_update_chunk(body: dict[str, Any], topic_name: str | None = None) -> dict[str, Any]:
    if not SHA256_RE.match(require(body, "sha256", str, topic_name)):
        raise _fail("field 'sha256' is not 64 lowercase hex digits", body, topic_name)
    _count(body, "offset", topic_name, 0, 2**31)
    _count(body, "length", topic_name, 0, MAX_UPDATE_CHUNK)
    if len(require(body, "data", str, topic_name)) > (MAX_UPDATE_CHUNK + 2) // 3 * 4:
        raise _fail("field 'data' longer than a 64 KiB chunk", body, topic_name)
    if "last" in body:
        require(body, "last", bool, topic_name)
    return body

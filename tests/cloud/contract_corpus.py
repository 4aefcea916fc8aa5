"""A corpus of good and bad messages, each judged from docs/protocol.md alone.

Every good message is built as the doc describes it (most are the doc's own examples);
every bad one is a good one with exactly **one** violation of the doc's text: a missing
field, a wrong type, a value out of range, an extra field where the doc forbids one, a
wrong version. tests/cloud/test_contract.py holds both readings of the contract to it:
the JSON Schemas (docs/schemas/, through the reference cloud's validator) and the agent's
own validators must each accept every good message and refuse every bad one.

A case's name says the doc's rule it tests, so a failure reads as "the schema (or the
agent) disagrees with docs/protocol.md about <rule>". A policy is signed for the device
(3.8.2), so a bad policy is signed again after its one change: its signature is not the
violation under test.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from board.virtual.cloud import sealer, signer
from board.virtual.cloud.canonical import canonical
from board.virtual.cloud.plans import PLANS

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLE_RE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)
VECTOR_RE = re.compile(r"Expected envelope:\s*```json\n(.*?)```", re.DOTALL)
PLAINTEXT_RE = re.compile(r"Expected plaintext \(exact bytes\):\s*```\n(.*?)\n```", re.DOTALL)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One message and the doc's verdict on it."""

    name: str
    kind: str
    """The schema (docs/schemas/<kind>.json) and the agent validator that judge it."""
    body: Any
    good: bool


def doc_examples() -> dict[str, list[dict[str, Any]]]:
    """``<!-- example: NAME -->`` followed by a json code block, for every NAME in the doc."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, text in EXAMPLE_RE.findall(DOC.read_text()):
        out.setdefault(name, []).append(json.loads(text))
    return out


def doc_vector() -> dict[str, Any]:
    """The test vector's expected envelope, read from docs/protocol.md itself."""
    found = VECTOR_RE.search(DOC.read_text())
    assert found, "docs/protocol.md has no 'Expected envelope' block"
    return dict(json.loads(found.group(1)))


def doc_plaintext() -> bytes:
    """The test vector's expected plaintext (exact bytes), read from docs/protocol.md."""
    found = PLAINTEXT_RE.search(DOC.read_text())
    assert found, "docs/protocol.md has no 'Expected plaintext' block"
    return found.group(1).encode()


def changed(body: Any, path: Path_, value: Any) -> Any:
    """A deep copy of ``body`` with the value at ``path`` set (added if absent)."""
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def dropped(body: Any, path: Path_) -> Any:
    """A deep copy of ``body`` without the field at ``path``."""
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


PLATFORM_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("22" * 32))
"""The test vector's platform key (docs/protocol.md 4), which signs every policy example."""
DEVICE = "dev-a"


def signed(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` signed for the device as the platform signs it (3.8.2)."""
    return signer.sign_policy(policy, device_id=DEVICE, key=PLATFORM_KEY)


def signed_as_is(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` signed exactly as it stands (no ``device`` added): a platform's mistake."""
    doc = canonical({k: v for k, v in policy.items() if k not in ("sig", "v")})
    return {**policy, "sig": base64.b64encode(PLATFORM_KEY.sign(signer.POLICY_CONTEXT + doc)).decode()}


def pchanged(policy: Any, path: Path_, value: Any) -> Any:
    """A policy with one change, signed again."""
    return signed(changed(policy, path, value))


def pdropped(policy: Any, path: Path_) -> Any:
    """A policy without one field, signed again."""
    return signed(dropped(policy, path))


def cpolicy(command: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """A set_policy command carrying ``policy``, signed for the device."""
    return {**command, "policy": signed(policy)}


def cupdate(update: dict[str, Any], *, sign: bool = True) -> dict[str, Any]:
    """A plan_update command carrying ``update``, signed for the device (4.3)."""
    body = signer.sign_plan_update(update, device_id=DEVICE, key=PLATFORM_KEY) if sign else update
    return {"v": 1, "command_id": "c-plan-1", "action": "plan_update", "plan_update": body}


TOPUP = {"iccid": "8981100000001000019", "update_id": "u-1", "version": 1, "issued_at": 1_764_860_400,
         "credits": [{"id": "topup-1", "kind": "topup", "bytes": 500_000_000, "bought": 1_764_860_400}]}
"""A 500 MB top-up (domain.md) for the test vector's SIM."""


def resigned(envelope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The vector's envelope with header ``changes``, signed again by the platform, so that
    the change, not a broken signature, is what a receiver meets (section 4, step 5)."""
    env = {**envelope, **changes}
    ct = base64.b64decode(env["ct"])
    header = canonical({k: env[k] for k in sealer.HEADER})
    return {**env, "sig": base64.b64encode(PLATFORM_KEY.sign(sealer.SIGNATURE_CONTEXT + header + ct)).decode()}


EX = doc_examples()
VECTOR = doc_vector()
PROFILE = json.loads(doc_plaintext())

STATE_BIRTH, STATE_WILL = EX["state"]
USAGE = EX["usage"][0]
HEALTH, OUTAGE, RESULT, SWAP, SECURITY, ERROR, AUDIT, UPDATE_ROLLED_BACK = EX["event"]
REQUEST, REQUEST_FLOOR = EX["request"]
ASSIGNED, RETRY, REFUSED, ASSIGNED_FLOOR = EX["assignment"]
ACK = EX["ack"][0]
SWAP_ORDER, SET_POLICY, UPDATE_OFFER = EX["command"]
UPDATE_GET = EX["update_get"][0]
UPDATE_CHUNK = EX["update_chunk"][0]
POLICY, PACED = EX["policy"]
CERT_REQUEST = EX["cert_request"][0]
CERT_OK, CERT_REFUSED = EX["cert_reply"]

HEALTH_UNTRUSTED = changed(changed(changed(changed(HEALTH, ("body", "data", "state"), "ok"),
                                           ("body", "data", "mechanism"), None),
                                   ("body", "data", "since"), None), ("body", "data", "clock_trusted"), False)
OUTAGE_OPEN = changed(changed(OUTAGE, ("body", "data", "end"), None), ("body", "data", "duration_s"), None)
SWAP_ROLLED_BACK = changed(changed(changed(changed(SWAP, ("body", "data", "ok"), False),
                                           ("body", "data", "to_iccid"), None),
                                   ("body", "data", "break_ms"), None),
                           ("body", "data", "phases_ms"), {"request": 12.5, "rollback": 2010.0})
LOGIN_FAILED = changed(AUDIT, ("body", "data"), {"action": "login_failed", "reason": "bad signature", "failures": 3,
                                                  "terminal": "/dev/ttyGS0", "at": "2026-02-03T14:09:30+09:00",
                                                  "wall_trusted": True})
PACED_SLOW = pchanged(PACED, ("pacing", "backoff_base_s"), 60)
REJECTED_RECORD = {"v": 1, "stream": "usage", "seq": 1208, "base": 1201, "body": {}, "rejected": "oversized"}
TECHNICIANS = pchanged(POLICY, ("technician_keys",),
                       {"version": 2, "keys": [{"name": "alice", "ed25519": "A" * 43 + "="}]})
POLICY_EDGES = signed({"v": 1, "version": 2**31 - 1, "max_per_hour": 30, "max_per_day": 1,
                       "no_service_swap_s": 30, "swap_below_bytes": 10**10, "lull_kbps": 0, "lull_wait_s": 86400,
                       "backoff_base_s": 5, "backoff_cap_s": 30, "attach_timeout_s": 300,
                        "pacing": {"backoff_base_s": 0.5, "backoff_cap_s": 10, "request_window_s": 0}})

GOOD: list[tuple[str, str, Any]] = [
    ("state: a birth with extra fields", "state", STATE_BIRTH),
    ("state: a last will", "state", STATE_WILL),
    ("usage: the doc's record", "usage", USAGE),
    ("usage: a record the device could not send has rejected and an empty body", "usage", REJECTED_RECORD),
    ("usage: a record from before epochs", "usage", dropped(dropped(USAGE, ("epoch",)), ("epoch_start",))),
    ("event: health throttled", "event", HEALTH),
    ("event: health with an untrusted clock has since null", "event", HEALTH_UNTRUSTED),
    ("event: health without the optional previous", "event", dropped(HEALTH, ("body", "data", "previous"))),
    ("event: outage", "event", OUTAGE),
    ("event: an open outage has end and duration null", "event", OUTAGE_OPEN),
    ("event: assignment_result", "event", RESULT),
    ("event: swap", "event", SWAP),
    ("event: a rolled-back swap", "event", SWAP_ROLLED_BACK),
    ("event: security", "event", SECURITY),
    ("event: error", "event", ERROR),
    ("event: error with its reason only", "event", changed(ERROR, ("body", "data"), {"reason": "profile_field"})),
    ("event: error replay_state", "event", changed(ERROR, ("body", "data", "reason"), "replay_state")),
    ("event: audit", "event", AUDIT),
    ("event: audit login_failed", "event", LOGIN_FAILED),
    ("event: update rolled back with its log tail", "event", UPDATE_ROLLED_BACK),
    ("event: update deferred on the seed SIM", "event",
     changed(UPDATE_ROLLED_BACK, ("body", "data"), {"status": "deferred", "version": "0.2.0", "running": "0.1.0",
                                                    "reason": "seed_sim"})),
    ("event: error about an update", "event", changed(ERROR, ("body", "data"), {"reason": "update"})),
    ("command: update with its manifest", "command", UPDATE_OFFER),
    ("update_get: the doc's request", "update_get", UPDATE_GET),
    ("update_chunk: the doc's chunk", "update_chunk", UPDATE_CHUNK),
    ("update_chunk: the last chunk", "update_chunk", changed(UPDATE_CHUNK, ("last",), True)),
    ("request: the doc's request", "request", REQUEST),
    ("request: reason and id only", "request", {"v": 1, "request_id": "r1", "reason": "boot"}),
    ("request: current_iccid null", "request", changed(REQUEST, ("current_iccid",), None)),
    ("request: asking for a replay floor", "request", REQUEST_FLOOR),
    ("assignment: ok with the vector's envelope", "assignment", ASSIGNED),
    ("assignment: retry", "assignment", RETRY),
    ("assignment: refused", "assignment", REFUSED),
    ("assignment: ok with a signed replay floor", "assignment", ASSIGNED_FLOOR),
    ("ack", "ack", ACK),
    ("ack: of records from before epochs", "ack", dropped(ACK, ("epoch",))),
    ("command: swap in a window", "command", SWAP_ORDER),
    ("command: report", "command", {"v": 1, "command_id": "c-1", "action": "report"}),
    ("command: set_policy", "command", SET_POLICY),
    ("command: plan_update with a top-up", "command", cupdate(TOPUP)),
    ("command: plan_update with a corrected remaining and a new plan", "command",
     cupdate({**dropped(TOPUP, ("credits",)), "remaining": {"month": 1_000_000}, "as_of": 1_764_860_400,
              "plan": PLANS["5GB-month"]})),
    ("policy: the doc's policy", "policy", POLICY),
    ("policy: with pacing", "policy", PACED),
    ("policy: pacing with the slowest first back-off", "policy", PACED_SLOW),
    ("policy: with technician keys", "policy", TECHNICIANS),
    ("policy: every bound at its edge", "policy", POLICY_EDGES),
    ("cert_request", "cert_request", CERT_REQUEST),
    ("cert_reply: ok", "cert_reply", CERT_OK),
    ("cert_reply: refused", "cert_reply", CERT_REFUSED),
    ("envelope: the test vector", "envelope", VECTOR),
    ("profile: the test vector's plaintext", "profile", PROFILE),
    ("profile: no plan, default APN", "profile", changed(changed(PROFILE, ("plan",), None), ("apn",), "")),
    ("profile: a plan with its zone", "profile", changed(PROFILE, ("plan", "tz"), "+09:00")),
    *[(f"profile: the {name} plan of domain.md's table (rules form)", "profile", changed(PROFILE, ("plan",), body))
      for name, body in PLANS.items()],
    ("profile: a rules plan with the cloud's remaining", "profile",
     changed(PROFILE, ("plan",), {**PLANS["5GB-month"], "remaining": {"month": 4_000_000_000, "72h": 0},
                                   "as_of": 1_764_000_000})),
    ("profile: a rule counting the downlink only", "profile",
     changed(PROFILE, ("plan",), {"rules": [{"id": "dl", "window": "day", "cap_bytes": 1, "count": "rx"}]})),
]

RP = {"name": "5GB-month", "rules": [dict(r) for r in PLANS["5GB-month"]["rules"]]}
"""A rules-form plan that each bad plan case changes in one place."""

H, U, P = ("body", "data"), ("body",), ("plan",)
BAD: list[tuple[str, str, Any]] = [
    # --- version and envelope of every body (3)
    ("state: another version", "state", changed(STATE_BIRTH, ("v",), 2)),
    ("state: no version", "state", dropped(STATE_BIRTH, ("v",))),
    ("state: online missing", "state", dropped(STATE_WILL, ("online",))),
    ("state: online not a bool", "state", changed(STATE_WILL, ("online",), "no")),
    ("state: session negative", "state", changed(STATE_WILL, ("session",), -1)),
    ("state: session a bool", "state", changed(STATE_WILL, ("session",), True)),
    ("state: session with a fraction", "state", changed(STATE_WILL, ("session",), 42.5)),
    # --- reliable records (3)
    ("usage: seq 0 (seq >= 1)", "usage", changed(USAGE, ("seq",), 0)),
    ("usage: base 0 (base >= 1)", "usage", changed(USAGE, ("base",), 0)),
    ("usage: base above seq", "usage", changed(USAGE, ("base",), 1208)),
    ("usage: seq missing", "usage", dropped(USAGE, ("seq",))),
    ("usage: seq a string", "usage", changed(USAGE, ("seq",), "1207")),
    ("usage: body not an object", "usage", changed(USAGE, ("body",), [])),
    ("usage: a rejected record with a body", "usage", changed(REJECTED_RECORD, ("body",), {"iccid": "x"})),
    ("usage: rejected not a string", "usage", changed(REJECTED_RECORD, ("rejected",), 1)),
    ("usage: an unknown stream", "usage", changed(USAGE, ("stream",), "gossip")),
    ("usage: epoch without epoch_start", "usage", dropped(USAGE, ("epoch_start",))),
    ("usage: epoch_start without epoch", "usage", dropped(USAGE, ("epoch",))),
    ("usage: epoch_start above base", "usage", changed(USAGE, ("epoch_start",), 1202)),
    ("usage: epoch_start 0", "usage", changed(USAGE, ("epoch_start",), 0)),
    ("usage: epoch not 16 hex digits", "usage", changed(USAGE, ("epoch",), "9F2C4E1A7B3D5C60")),
    # --- usage body (3.2)
    ("usage: rx_bytes missing", "usage", dropped(USAGE, (*U, "rx_bytes"))),
    ("usage: rx_bytes negative", "usage", changed(USAGE, (*U, "rx_bytes"), -1)),
    ("usage: rx_bytes with a fraction", "usage", changed(USAGE, (*U, "rx_bytes"), 1.5)),
    ("usage: rx_bytes written 5.0 (integers have no fraction)", "usage", changed(USAGE, (*U, "rx_bytes"), 5.0)),
    ("usage: tx_bytes a bool", "usage", changed(USAGE, (*U, "tx_bytes"), True)),
    ("usage: tx_bytes a string", "usage", changed(USAGE, (*U, "tx_bytes"), "12")),
    ("usage: an extra field", "usage", changed(USAGE, (*U, "extra"), 1)),
    ("usage: iccid too short", "usage", changed(USAGE, (*U, "iccid"), "1234")),
    ("usage: iccid with another script's digit", "usage", changed(USAGE, (*U, "iccid"), "898110000000100001\u0663")),
    ("usage: iccid ending in a line break", "usage", changed(USAGE, (*U, "iccid"), "8981100000001000019\n")),
    ("usage: imsi not digits", "usage", changed(USAGE, (*U, "imsi"), "abc")),
    ("usage: day without padding", "usage", changed(USAGE, (*U, "day"), "2026-1-31")),
    ("usage: day in month 13", "usage", changed(changed(USAGE, (*U, "day"), "2026-13-01"), (*U, "month"), "2026-13")),
    ("usage: day outside month", "usage", changed(USAGE, (*U, "month"), "2026-02")),
    ("usage: tz a name", "usage", changed(USAGE, (*U, "tz"), "JST")),
    ("usage: tz beyond +14:00", "usage", changed(USAGE, (*U, "tz"), "+99:00")),
    ("usage: mcc empty", "usage", changed(USAGE, (*U, "mcc"), [])),
    ("usage: mcc of two digits", "usage", changed(USAGE, (*U, "mcc"), ["44"])),
    ("usage: start without an offset", "usage", changed(USAGE, (*U, "start"), "2026-01-31T23:00:00")),
    ("usage: end a number", "usage", changed(USAGE, (*U, "end"), 1769871599)),
    ("usage: start null", "usage", changed(USAGE, (*U, "start"), None)),
    # --- event body (3.3)
    ("event: an unknown kind", "event", changed(HEALTH, ("body", "kind"), "party")),
    ("event: at without an offset", "event", changed(HEALTH, ("body", "at"), "2026-02-03T14:05:11")),
    ("event: at missing", "event", dropped(HEALTH, ("body", "at"))),
    ("event: data not an object", "event", changed(HEALTH, ("body", "data"), [])),
    ("event: a version inside the body", "event", changed(HEALTH, ("body", "v"), 1)),
    ("event: an extra field in the body", "event", changed(HEALTH, ("body", "extra"), 1)),
    # --- health
    ("health: evidence missing", "event", dropped(HEALTH, (*H, "evidence"))),
    ("health: an extra field", "event", changed(HEALTH, (*H, "rate_kbps"), 128)),
    ("health: an unknown state", "event", changed(HEALTH, (*H, "state"), "sad")),
    ("health: throttled without iccid", "event", changed(HEALTH, (*H, "iccid"), None)),
    ("health: throttled without imsi", "event", changed(HEALTH, (*H, "imsi"), None)),
    ("health: throttled without kbps", "event", changed(HEALTH, (*H, "kbps"), None)),
    ("health: a mechanism when not throttled", "event", changed(HEALTH_UNTRUSTED, (*H, "mechanism"), "policer")),
    ("health: an unknown mechanism", "event", changed(HEALTH, (*H, "mechanism"), "magic")),
    ("health: since null with a trusted clock", "event", changed(HEALTH, (*H, "since"), None)),
    ("health: since set with an untrusted clock", "event",
     changed(HEALTH_UNTRUSTED, (*H, "since"), "2026-02-03T14:04:58+09:00")),
    ("health: since without an offset", "event", changed(HEALTH, (*H, "since"), "2026-02-03T14:04:58")),
    ("health: age_s negative", "event", changed(HEALTH, (*H, "age_s"), -1)),
    ("health: cell negative", "event", changed(HEALTH, (*H, "cell"), -1)),
    ("health: act a string", "event", changed(HEALTH, (*H, "act"), "7")),
    ("health: plmn a display name", "event", changed(HEALTH, (*H, "plmn"), "LAB MOBILE")),
    ("health: previous not a state", "event", changed(HEALTH, (*H, "previous"), "party")),
    ("health: clock_trusted a string", "event", changed(HEALTH, (*H, "clock_trusted"), "yes")),
    # --- outage
    ("outage: start null (it always has a start)", "event", changed(OUTAGE, (*H, "start"), None)),
    ("outage: id negative", "event", changed(OUTAGE, (*H, "id"), -1)),
    ("outage: wall_trusted missing", "event", dropped(OUTAGE, (*H, "wall_trusted"))),
    ("outage: duration negative", "event", changed(OUTAGE, (*H, "duration_s"), -5.0)),
    ("outage: detail a string", "event", changed(OUTAGE, (*H, "detail"), "radio")),
    ("outage: an extra field", "event", changed(OUTAGE, (*H, "iccid"), "8981100000001000019")),
    # --- assignment_result, swap, security, error, audit
    ("assignment_result: ok a string", "event", changed(RESULT, (*H, "ok"), "true")),
    ("assignment_result: detail missing", "event", dropped(RESULT, (*H, "detail"))),
    ("swap: an unknown reason", "event", changed(SWAP, (*H, "reason"), "bored")),
    ("swap: an unknown phase", "event", changed(SWAP, (*H, "phases_ms", "teleport"), 5)),
    ("swap: a negative phase", "event", changed(SWAP, (*H, "phases_ms", "switch"), -1)),
    ("swap: phase durations a string", "event", changed(SWAP, (*H, "phases_ms", "switch"), "3 s")),
    ("swap: break_ms negative", "event", changed(SWAP, (*H, "break_ms"), -1)),
    ("swap: from_iccid malformed", "event", changed(SWAP, (*H, "from_iccid"), "x")),
    ("swap: started without an offset", "event", changed(SWAP, (*H, "started"), "2026-02-03T14:05:12")),
    ("security: count 0", "event", changed(SECURITY, (*H, "count"), 0)),
    ("security: an unknown reason", "event", changed(SECURITY, (*H, "reason"), "bad_vibes")),
    ("error: a reason not in the list", "event", changed(ERROR, (*H, "reason"), "whatever")),
    ("error: suppressed_before negative", "event", changed(ERROR, (*H, "suppressed_before"), -1)),
    ("error: topic a number", "event", changed(ERROR, (*H, "topic"), 5)),
    ("error: an extra field", "event", changed(ERROR, (*H, "value"), "secret")),
    ("audit: an action not in the list", "event", changed(AUDIT, (*H, "action"), "dance")),
    ("audit: failures negative", "event", changed(LOGIN_FAILED, (*H, "failures"), -1)),
    ("audit: at not a time", "event", changed(AUDIT, (*H, "at"), "yesterday")),
    ("audit: an extra field", "event", changed(AUDIT, (*H, "password"), "hunter2")),
    # --- request (3.4)
    ("request: request_id missing", "request", dropped(REQUEST, ("request_id",))),
    ("request: reason a number", "request", changed(REQUEST, ("reason",), 5)),
    ("request: current_iccid malformed", "request", changed(REQUEST, ("current_iccid",), "123")),
    ("request: evidence a string", "request", changed(REQUEST, ("evidence",), "slow")),
    ("request: another version", "request", changed(REQUEST, ("v",), 2)),
    ("request: need_floor a string", "request", changed(REQUEST_FLOOR, ("need_floor",), "yes")),
    # --- assignment (3.5)
    ("assignment: an unknown status", "assignment", changed(RETRY, ("status",), "maybe")),
    ("assignment: request_id missing", "assignment", dropped(RETRY, ("request_id",))),
    ("assignment: ok without window", "assignment", dropped(ASSIGNED, ("window",))),
    ("assignment: ok with half a window", "assignment", dropped(ASSIGNED, ("window", "not_after"))),
    ("assignment: ok with a window bound a string", "assignment", changed(ASSIGNED, ("window", "not_before"), "now")),
    ("assignment: ok without envelope", "assignment", dropped(ASSIGNED, ("envelope",))),
    ("assignment: ok with seq 0", "assignment", changed(ASSIGNED, ("seq",), 0)),
    ("assignment: ok with an envelope field too many", "assignment", changed(ASSIGNED, ("envelope", "note"), "x")),
    ("assignment: retry_after above an hour", "assignment", changed(RETRY, ("retry_after",), 3601)),
    ("assignment: a floor without its signature", "assignment", dropped(ASSIGNED_FLOOR, ("floor", "sig"))),
    ("assignment: a floor seq negative", "assignment", changed(ASSIGNED_FLOOR, ("floor", "seq"), -1)),
    ("assignment: a floor not an object", "assignment", changed(ASSIGNED_FLOOR, ("floor",), 8)),
    ("assignment: retry_after a string", "assignment", changed(RETRY, ("retry_after",), "5")),
    ("assignment: refused without reason", "assignment", dropped(REFUSED, ("reason",))),
    ("assignment: refused with reason a number", "assignment", changed(REFUSED, ("reason",), 1)),
    # --- ack (3.6)
    ("ack: an unknown stream", "ack", changed(ACK, ("stream",), "gossip")),
    ("ack: upto negative", "ack", changed(ACK, ("upto",), -1)),
    ("ack: upto a string", "ack", changed(ACK, ("upto",), "1207")),
    ("ack: epoch a number", "ack", changed(ACK, ("epoch",), 7)),
    # --- command (3.7)
    ("command: an unknown action", "command", changed(SWAP_ORDER, ("action",), "selfdestruct")),
    ("command: command_id missing", "command", dropped(SWAP_ORDER, ("command_id",))),
    ("command: set_policy without a policy", "command", dropped(SET_POLICY, ("policy",))),
    ("command: plan_update without its update", "command", dropped(cupdate(TOPUP), ("plan_update",))),
    ("command: plan_update unsigned", "command", cupdate(TOPUP, sign=False)),
    ("command: plan_update with nothing in it", "command", cupdate(dropped(TOPUP, ("credits",)))),
    ("command: plan_update credit of 0 bytes", "command", cupdate(changed(TOPUP, ("credits", 0, "bytes"), 0))),
    ("command: plan_update credit of an unknown kind", "command", cupdate(changed(TOPUP, ("credits", 0, "kind"), "gift"))),
    ("command: plan_update with 17 credits", "command",
     cupdate(changed(TOPUP, ("credits",), [dict(TOPUP["credits"][0], id=f"t{i}") for i in range(17)]))),
    ("command: plan_update remaining without as_of", "command", cupdate(changed(TOPUP, ("remaining",), {"cap": 1}))),
    ("command: plan_update iccid not an iccid", "command", cupdate(changed(TOPUP, ("iccid",), "123"))),
    ("command: plan_update with a bad plan", "command",
     cupdate(changed(TOPUP, ("plan",), changed(PLANS["5GB-month"], ("rules", 0, "window"), "week")))),
    ("command: plan_update field unknown", "command", cupdate(changed(TOPUP, ("price",), 1))),
    ("command: set_policy whose policy has no version", "command",
     cpolicy(SET_POLICY, dropped(SET_POLICY["policy"], ("version",)))),
    ("command: set_policy whose policy is unsigned", "command", dropped(SET_POLICY, ("policy", "sig"))),
    ("command: set_policy whose policy is out of bounds", "command",
     cpolicy(SET_POLICY, changed(SET_POLICY["policy"], ("max_per_hour",), 31))),
    ("command: a window bound a string", "command", changed(SWAP_ORDER, ("window", "not_before"), "soon")),
    ("command: half a window", "command", dropped(SWAP_ORDER, ("window", "not_after"))),
    ("command: expires_at a string", "command", changed(SWAP_ORDER, ("expires_at",), "tomorrow")),
    # --- policy (3.8, 3.8.1)
    ("policy: version missing", "policy", pdropped(POLICY, ("version",))),
    ("policy: version above 2^31 - 1", "policy", pchanged(POLICY, ("version",), 2**31)),
    ("policy: unsigned", "policy", dropped(POLICY, ("sig",))),
    ("policy: its signature not base64", "policy", changed(POLICY, ("sig",), "!" * 86 + "==")),
    ("policy: no device", "policy", signed_as_is(dropped(POLICY, ("device",)))),
    ("policy: version negative", "policy", pchanged(POLICY, ("version",), -1)),
    ("policy: max_per_hour above 30", "policy", pchanged(POLICY, ("max_per_hour",), 31)),
    ("policy: max_per_hour with a fraction", "policy", pchanged(POLICY, ("max_per_hour",), 6.5)),
    ("policy: swap_below_bytes with a fraction", "policy", pchanged(POLICY, ("swap_below_bytes",), 200000000.5)),
    ("policy: swap_below_bytes above 10^10", "policy", pchanged(POLICY, ("swap_below_bytes",), 10**10 + 1)),
    ("policy: lull_wait_s negative", "policy", pchanged(POLICY, ("lull_wait_s",), -1)),
    ("policy: attach_timeout_s a string", "policy", pchanged(POLICY, ("attach_timeout_s",), "30")),
    ("policy: backoff cap below base", "policy", pchanged(POLICY, ("backoff_base_s",), 3600)),
    ("policy: pacing not an object", "policy", pchanged(PACED, ("pacing",), 5)),
    ("policy: a pacing knob out of bounds", "policy", pchanged(PACED, ("pacing", "backoff_cap_s"), 1)),
    ("policy: a pacing knob a string", "policy", pchanged(PACED, ("pacing", "swap_window_s"), "600")),
    ("policy: pacing cap below base", "policy", pchanged(PACED_SLOW, ("pacing", "backoff_cap_s"), 30)),
    ("policy: technician keys without keys", "policy", pdropped(TECHNICIANS, ("technician_keys", "keys"))),
    ("policy: a technician name with a space", "policy",
     pchanged(TECHNICIANS, ("technician_keys", "keys", 0, "name"), "al ice")),
    ("policy: a technician key of 31 bytes", "policy",
     pchanged(TECHNICIANS, ("technician_keys", "keys", 0, "ed25519"), "A" * 40 + "AA==")),
    ("policy: technician keys version negative", "policy",
     pchanged(TECHNICIANS, ("technician_keys", "version"), -1)),
    ("policy: technician keys version above 2^31 - 1", "policy",
     pchanged(TECHNICIANS, ("technician_keys", "version"), 2**31)),
    # --- certificate renewal (7)
    ("cert_request: csr missing", "cert_request", dropped(CERT_REQUEST, ("csr",))),
    ("event: update with an unknown status", "event", changed(UPDATE_ROLLED_BACK, ("body", "data", "status"), "maybe")),
    ("event: update without running", "event", dropped(UPDATE_ROLLED_BACK, ("body", "data", "running"))),
    ("event: update with a field unknown", "event", changed(UPDATE_ROLLED_BACK, ("body", "data", "url"), "x")),
    ("command: update without its manifest", "command", dropped(UPDATE_OFFER, ("manifest",))),
    ("update_get: sha256 not hex", "update_get", changed(UPDATE_GET, ("sha256",), "Z" * 64)),
    ("update_get: length 0", "update_get", changed(UPDATE_GET, ("length",), 0)),
    ("update_get: length over 11 KiB", "update_get", changed(UPDATE_GET, ("length",), 11265)),
    ("update_get: offset missing", "update_get", dropped(UPDATE_GET, ("offset",))),
    ("update_chunk: data missing", "update_chunk", dropped(UPDATE_CHUNK, ("data",))),
    ("update_chunk: negative offset", "update_chunk", changed(UPDATE_CHUNK, ("offset",), -1)),
    ("update_chunk: last not a boolean", "update_chunk", changed(UPDATE_CHUNK, ("last",), "yes")),
    ("cert_request: csr not PEM", "cert_request", changed(CERT_REQUEST, ("csr",), "junk")),
    ("cert_request: csr a certificate", "cert_request", changed(CERT_REQUEST, ("csr",), CERT_OK["cert"])),
    ("cert_request: csr of more than 8192 characters", "cert_request",
     changed(CERT_REQUEST, ("csr",), CERT_REQUEST["csr"].replace("\n-----END", "\n" + "A" * 8192 + "\n-----END"))),
    ("cert_reply: ok without cert", "cert_reply", dropped(CERT_OK, ("cert",))),
    ("cert_reply: cert not PEM", "cert_reply", changed(CERT_OK, ("cert",), "junk")),
    ("cert_reply: refused without reason", "cert_reply", dropped(CERT_REFUSED, ("reason",))),
    ("cert_reply: an unknown status", "cert_reply", changed(CERT_OK, ("status",), "later")),
    # --- sealed envelope (4)
    ("envelope: a field too many", "envelope", changed(VECTOR, ("note",), "x")),
    ("envelope: sig missing", "envelope", dropped(VECTOR, ("sig",))),
    ("envelope: an unknown alg", "envelope", resigned(VECTOR, alg="none")),
    ("envelope: seq a string", "envelope", resigned(VECTOR, seq="7")),
    ("envelope: seq 0", "envelope", resigned(VECTOR, seq=0)),
    ("envelope: expires_at a bool", "envelope", resigned(VECTOR, expires_at=True)),
    ("envelope: issued_at a string", "envelope", resigned(VECTOR, issued_at="1767225600")),
    ("envelope: nonce of 9 bytes", "envelope", resigned(VECTOR, nonce="RERERERERERE")),
    ("envelope: epk not base64", "envelope", resigned(VECTOR, epk="!" * 43 + "=")),
    ("envelope: assignment_id a number", "envelope", resigned(VECTOR, assignment_id=7)),
    # --- sealed profile plaintext (4)
    ("profile: iccid fails Luhn", "profile", changed(PROFILE, ("iccid",), "8981100000001000018")),
    ("profile: iccid with another script's digit", "profile", changed(PROFILE, ("iccid",), "898110000000100001\u0669")),
    ("profile: ki in upper case", "profile", changed(PROFILE, ("ki",), PROFILE["ki"].upper())),
    ("profile: ki of 31 digits", "profile", changed(PROFILE, ("ki",), PROFILE["ki"][:31])),
    ("profile: opc missing", "profile", dropped(PROFILE, ("opc",))),
    ("profile: plmn missing", "profile", dropped(PROFILE, ("plmn",))),
    ("profile: an extra field", "profile", changed(PROFILE, ("note",), "x")),
    ("profile: apn with a space", "profile", changed(PROFILE, ("apn",), "inter net")),
    ("profile: apn ending in .gprs", "profile", changed(PROFILE, ("apn",), "internet.mnc010.mcc440.gprs")),
    ("profile: apn starting with rac", "profile", changed(PROFILE, ("apn",), "rac1.example")),
    ("profile: apn longer than 62", "profile", changed(PROFILE, ("apn",), "a" * 40 + "." + "b" * 22)),
    ("profile: a plan field unknown", "profile", changed(PROFILE, (*P, "speed"), 1)),
    ("profile: plan window unknown", "profile", changed(PROFILE, (*P, "window"), "year")),
    ("profile: plan cap negative", "profile", changed(PROFILE, (*P, "cap_bytes"), -1)),
    ("profile: plan cap above 10^15", "profile", changed(PROFILE, (*P, "cap_bytes"), 10**15 + 1)),
    ("profile: plan throttle 0", "profile", changed(PROFILE, (*P, "throttle_kbps"), 0)),
    ("profile: plan name not printable", "profile", changed(PROFILE, (*P, "name"), "5GB\tmonth")),
    ("profile: plan tz a name", "profile", changed(PROFILE, (*P, "tz"), "JST")),
    ("profile: plan rule window unknown", "profile", changed(PROFILE, P, changed(RP, ("rules", 0, "window"), "week"))),
    ("profile: plan rule cap negative", "profile", changed(PROFILE, P, changed(RP, ("rules", 1, "cap_bytes"), -1))),
    ("profile: plan rolling rule without hours", "profile", changed(PROFILE, P, dropped(RP, ("rules", 1, "hours")))),
    ("profile: plan month rule with hours", "profile", changed(PROFILE, P, changed(RP, ("rules", 0, "hours"), 72))),
    ("profile: plan rules overlap", "profile", changed(PROFILE, P, changed(RP, ("rules", 1), {**RP["rules"][0], "id": "month-2", "cap_bytes": 6_000_000_000}))),
    ("profile: plan rule ids repeat", "profile", changed(PROFILE, P, changed(RP, ("rules", 1, "id"), "month"))),
    ("profile: plan rule cap in a none window", "profile", changed(PROFILE, P, changed(RP, ("rules", 0, "window"), "none"))),
    ("profile: plan rule lifts at the wrong moment", "profile",
     changed(PROFILE, P, changed(RP, ("rules", 1, "until"), "window_end"))),
    ("profile: plan price step with a rate", "profile",
     changed(PROFILE, P, changed(changed(RP, ("rules", 0, "action"), "price_step"), ("rules", 0, "throttle_kbps"), 128))),
    ("profile: plan throttle not below its nominal rate", "profile",
     changed(PROFILE, P, changed(changed(RP, ("nominal_kbps",), 200), ("rules", 0, "throttle_kbps"), 200))),
    ("profile: plan rules beside the single-rule fields", "profile", changed(PROFILE, P, changed(RP, ("window",), "month"))),
    ("profile: plan remaining for a rule it does not have", "profile",
     changed(PROFILE, P, changed(RP, ("remaining",), {"day": 5}))),
    ("profile: plan rule field unknown", "profile", changed(PROFILE, P, changed(RP, ("rules", 0, "speed"), 1))),
    ("profile: plan single rule with a cap that never resets", "profile", changed(PROFILE, (*P, "window"), "none")),
]

CASES = [Case(name, kind, body, True) for name, kind, body in GOOD] + \
        [Case(name, kind, body, False) for name, kind, body in BAD]

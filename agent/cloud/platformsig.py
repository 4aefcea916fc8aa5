"""Documents the platform signs besides sealed profiles: policies and replay floors.

Same scheme as sealed profiles (agent/cloud/sealing.py, docs/protocol.md section 4): an
Ed25519 signature by the platform key the device pinned at provisioning, over a context
string that names what is signed (domain separation: a signature made for one kind of
document never verifies as another) followed by the document's canonical JSON (sorted
keys, no spaces, ASCII with \\u escapes, ``sig`` itself left out). Each signed document
also names the device it is for, so one device's policy or floor cannot be replayed on
another's topic.

- **Policy** (docs/protocol.md 3.8, issue 20 finding 5): the retained policy and a
  ``set_policy`` command's policy carry ``device`` and ``sig``. Whoever can publish on a
  device's topics (a broker operator, a leaked cloud credential) can no longer change its
  swap limits, its pacing, or pin their own technician key. ``version`` is bounded
  (``MAX_POLICY_VERSION``, ``MAX_VERSION_STEP``) so that not even a signed mistake can
  freeze a device's policy for good.
- **Plan update** (docs/protocol.md 4.3, issue 22): a top-up, an add-on or a corrected
  allowance for one SIM, carrying ``device`` and ``sig`` like a policy; its own context,
  so a signed policy never verifies as a plan update.
- **Replay floor** (docs/protocol.md 4.1, finding 6): when the device cannot read its
  replay state it asks for a floor with its assignment request; the platform answers with
  the highest envelope ``seq`` it issued to the device before this reply, signed together
  with the request's random ``request_id``. The id makes the floor fresh: an old floor
  answers no request the device has pending.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import ProtocolError

POLICY_CONTEXT = b"pw/v1 policy signature\n"
FLOOR_CONTEXT = b"pw/v1 replay-floor signature\n"
PLAN_UPDATE_CONTEXT = b"pw/v1 plan-update signature\n"
"""Domain separation, as sealing.SIG_CONTEXT: each kind of signed document has its own."""

SIG_FIELD = "sig"
SIG_BYTES = 64  # an Ed25519 signature (RFC 8032)

MAX_POLICY_VERSION = 2**31 - 1
"""Policy versions are a per-device counter the platform increments on every change: a
change a second would take 68 years to reach this. It fits a signed 32-bit column in any
cloud database and is exact in every JSON reader (JavaScript's integers stop at 2^53). A
version above it is refused (``policy_bounds``), so no policy can set the device's
high-water mark near 2^62 and freeze every later policy."""

MAX_VERSION_STEP = 1 << 16
"""A policy may be at most this many versions ahead of the one the device holds
(65,536: a fleet-wide change every ten minutes for over a year of a device being
offline). A signed mistake (a timestamp typed as a version) is refused and reported
instead of becoming a version nothing can follow."""


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes signed: ``doc`` without ``sig`` (and without the envelope's ``v``) as
    sorted, compact, ASCII JSON. Non-finite numbers are refused (they are not JSON)."""
    body = {k: v for k, v in doc.items() if k not in (SIG_FIELD, "v")}
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except ValueError:
        raise ProtocolError("signed document holds a number that is not finite", reason="schema") from None


def _sign(key: Ed25519PrivateKey, context: bytes, doc: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(context + canonical(doc))).decode()


def _verify(public: Ed25519PublicKey, context: bytes, doc: dict[str, Any], what: str, topic: str | None) -> None:
    sig = doc.get(SIG_FIELD)
    if not isinstance(sig, str):
        raise ProtocolError(f"{what} is not signed", topic=topic, reason="signature")
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIG_BYTES:
        raise ProtocolError(f"{what} signature is not a base64 Ed25519 signature", topic=topic, reason="signature")
    try:
        public.verify(raw, context + canonical(doc))
    except InvalidSignature:
        raise ProtocolError(f"bad platform signature on {what}", topic=topic, reason="signature") from None


# --- policies ------------------------------------------------------------------------

def sign_policy(policy: dict[str, Any], *, device_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Cloud side: ``policy`` bound to ``device_id`` and signed (any old ``sig`` replaced)."""
    return _sign_for(key, POLICY_CONTEXT, policy, device_id)


def verify_policy(policy: dict[str, Any], *, device_id: str, public: Ed25519PublicKey,
                  topic: str | None = None) -> dict[str, Any]:
    """Device side: the policy if the platform signed it for this device; else
    ProtocolError ``signature`` (unsigned, badly signed) or ``wrong_device``.

    The signature is checked first: nothing unsigned is trusted, not even its version."""
    return _verify_for(public, POLICY_CONTEXT, policy, device_id, f"policy version {policy.get('version')!r}"[:60],
                       topic)


def _sign_for(key: Ed25519PrivateKey, context: bytes, doc: dict[str, Any], device_id: str) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if k != SIG_FIELD}
    body["device"] = device_id
    return {**body, SIG_FIELD: _sign(key, context, body)}


def _verify_for(public: Ed25519PublicKey, context: bytes, doc: dict[str, Any], device_id: str, what: str,
                topic: str | None) -> dict[str, Any]:
    """``doc`` without its signature if the platform signed it under ``context`` for ``device_id``."""
    _verify(public, context, doc, what, topic)
    if doc.get("device") != device_id:
        raise ProtocolError(f"{what} is signed for device {str(doc.get('device'))[:64]!r}", topic=topic,
                            reason="wrong_device")
    return {k: v for k, v in doc.items() if k != SIG_FIELD}


def check_version(version: Any, held: int, *, topic: str | None = None, what: str = "policy") -> int:
    """``version`` if it is an integer in 0..MAX_POLICY_VERSION and at most
    MAX_VERSION_STEP past ``held`` (the version the device holds, -1 for none); else
    ProtocolError ``policy_bounds``. Not newer is the caller's business (ignored, not refused)."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_POLICY_VERSION:
        raise ProtocolError(f"{what} version {str(version)[:24]} outside 0..{MAX_POLICY_VERSION}", topic=topic,
                            reason="policy_bounds")
    if version > max(held, 0) + MAX_VERSION_STEP:
        raise ProtocolError(f"{what} version {version} is more than {MAX_VERSION_STEP} past {held}", topic=topic,
                            reason="policy_bounds")
    return version


# --- plan updates ----------------------------------------------------------------------

def sign_plan_update(update: dict[str, Any], *, device_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Cloud side: a plan update (docs/protocol.md 4.3) bound to ``device_id`` and signed."""
    return _sign_for(key, PLAN_UPDATE_CONTEXT, update, device_id)


def verify_plan_update(update: dict[str, Any], *, device_id: str, public: Ed25519PublicKey,
                       topic: str | None = None) -> dict[str, Any]:
    """Device side: the update if the platform signed it for this device; else
    ProtocolError ``signature`` (unsigned, badly signed) or ``wrong_device``. A top-up
    signed for one device cannot be replayed on another's topic."""
    return _verify_for(public, PLAN_UPDATE_CONTEXT, update, device_id,
                       f"plan update {str(update.get('update_id'))[:40]!r}", topic)


# --- replay floors -------------------------------------------------------------------

def _floor_doc(device_id: str, request_id: str, seq: int) -> dict[str, Any]:
    return {"device": device_id, "request_id": request_id, "seq": seq}


def sign_floor(*, device_id: str, request_id: str, seq: int, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Cloud side: the ``floor`` object of an assignment reply: ``{"seq", "sig"}``."""
    return {"seq": int(seq), SIG_FIELD: _sign(key, FLOOR_CONTEXT, _floor_doc(device_id, request_id, int(seq)))}


def verify_floor(floor: Any, *, device_id: str, request_id: str, public: Ed25519PublicKey,
                 topic: str | None = None) -> int:
    """Device side: the floor's ``seq`` if the platform signed it for this device and this
    request; ProtocolError ``signature`` (or ``schema``) otherwise."""
    if not isinstance(floor, dict):
        raise ProtocolError("replay floor is not an object", topic=topic, reason="schema")
    seq = floor.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProtocolError("replay floor seq is not a non-negative integer", topic=topic, reason="schema")
    _verify(public, FLOOR_CONTEXT, {**_floor_doc(device_id, request_id, seq), SIG_FIELD: floor.get(SIG_FIELD)},
            "replay floor", topic)
    return seq

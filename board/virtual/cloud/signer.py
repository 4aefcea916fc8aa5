"""What the platform signs besides sealed profiles, written from docs/protocol.md alone.

Why here and not agent/cloud/platformsig.py: the reference cloud must not sign with the
device's own code, or the lab would only show the agent agreeing with itself (issue 21).
Like sealer.py, this module imports nothing of the agent (tests/test_imports.py): it
follows the doc's text on ``cryptography``'s Ed25519 and canonical.py, and
tests/cloud/test_signer.py holds it to the doc's policy vector and to the agent's checks.

- **Policy** (3.8.2): add ``device``; ``canonical`` = the object without ``sig`` (top
  level) and without the message's ``v``, as canonical JSON (3.0); ``sig`` =
  base64(Ed25519(platform, POLICY_CONTEXT || canonical)).
- **Plan update** (4.3): as a policy, under PLAN_UPDATE_CONTEXT.
- **Replay floor** (4.1): ``{"seq", "sig"}`` with ``sig`` = base64(Ed25519(platform,
  FLOOR_CONTEXT || canonical({"device", "request_id", "seq"}))).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from board.virtual.cloud.canonical import canonical

POLICY_CONTEXT = b"pw/v1 policy signature\n"
"""3.8.2 step 3: 23 ASCII bytes ending in one line feed, signed before the canonical policy."""

FLOOR_CONTEXT = b"pw/v1 replay-floor signature\n"
"""4.1 step 3: 29 ASCII bytes ending in one line feed, signed before the canonical floor."""

PLAN_UPDATE_CONTEXT = b"pw/v1 plan-update signature\n"
"""4.3: 28 ASCII bytes ending in one line feed, signed before the canonical plan update."""
SIGNATURE_BYTES = 64
"""An Ed25519 signature (RFC 8032 section 5.1.6)."""


class SignatureRefused(ValueError):
    """A signed document that does not verify: reason ``signature`` or ``wrong_device``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _policy_bytes(policy: dict[str, Any]) -> bytes:
    return POLICY_CONTEXT + canonical({k: v for k, v in policy.items() if k not in ("sig", "v")})


def _floor_bytes(device_id: str, request_id: str, seq: int) -> bytes:
    return FLOOR_CONTEXT + canonical({"device": device_id, "request_id": request_id, "seq": seq})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _verify(public: Ed25519PublicKey, sig: Any, message: bytes, what: str) -> None:
    try:
        raw = base64.b64decode(str(sig).encode("ascii"), validate=True) if isinstance(sig, str) else b""
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != SIGNATURE_BYTES:
        raise SignatureRefused(f"{what} carries no base64 Ed25519 signature", "signature")
    try:
        public.verify(raw, message)
    except InvalidSignature:
        raise SignatureRefused(f"{what}: the platform's signature does not verify", "signature") from None


def sign_policy(policy: dict[str, Any], *, device_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """``policy`` bound to ``device_id`` and signed (3.8.2); a ``sig`` it had is replaced."""
    doc = {**{k: v for k, v in policy.items() if k != "sig"}, "device": device_id}
    return {**doc, "sig": _b64(key.sign(_policy_bytes(doc)))}


def verify_policy(policy: dict[str, Any], *, device_id: str, public: Ed25519PublicKey) -> None:
    """SignatureRefused unless the platform signed ``policy`` for ``device_id`` (the
    signature first: nothing unsigned is trusted, not even the device it names)."""
    _verify(public, policy.get("sig"), _policy_bytes(policy), "policy")
    if policy.get("device") != device_id:
        raise SignatureRefused(f"policy is signed for {str(policy.get('device'))[:64]!r}", "wrong_device")


def sign_plan_update(update: dict[str, Any], *, device_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """A plan update (4.3) bound to ``device_id`` and signed as a policy is, under its own context."""
    doc = {**{k: v for k, v in update.items() if k != "sig"}, "device": device_id}
    return {**doc, "sig": _b64(key.sign(PLAN_UPDATE_CONTEXT + canonical({k: v for k, v in doc.items() if k != "v"})))}


def sign_floor(*, device_id: str, request_id: str, seq: int, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ``floor`` of an ok reply to a request that asked for one (4.1)."""
    return {"seq": seq, "sig": _b64(key.sign(_floor_bytes(device_id, request_id, seq)))}


def verify_floor(floor: dict[str, Any], *, device_id: str, request_id: str, public: Ed25519PublicKey) -> int:
    """The floor's ``seq`` if the platform signed it for this device and this request."""
    seq = floor.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise SignatureRefused("floor seq is not an integer >= 0", "signature")
    _verify(public, floor.get("sig"), _floor_bytes(device_id, request_id, seq), "floor")
    return seq

"""Sealed SIM profiles: encrypted to one device, signed by the platform, never replayed.

Why this shape (docs/protocol.md, "Sealed profiles"):
- **Encrypted to the device's own key** (ephemeral X25519 ECDH, HKDF-SHA256, AES-256-GCM):
  a broker, a log or a stolen envelope shows no Ki/OPc; only the device's sealing key
  opens it.
- **Signed by the platform** (Ed25519, key pinned on the device at provisioning): the
  device loads no profile the platform did not issue, even one encrypted correctly to it
  (its public key is public).
- **Bound** to device id, assignment id, a per-device sequence number and an expiry,
  all inside the signed header and the AEAD's associated data: another device's
  envelope, an edited header, an old envelope replayed, or one delivered after days
  offline are each refused with a reason.

The replay guard's "highest sequence seen" lives on disk (agent.store.atomic_write_json)
so a restart does not reopen the window. Plaintext profiles exist in memory only: no
function here logs, writes or puts into an exception anything derived from the plaintext.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent import store
from agent.cloud.profilecheck import check_profile
from agent.errors import SealError
from agent.sim import Plan, SimProfile

LOGGER = logging.getLogger(__name__)

ALG = "X25519-HKDF-SHA256-A256GCM+Ed25519"
"""Algorithm label inside every envelope; an unknown label is refused (no downgrade)."""

SIG_CONTEXT = b"pw/v1 sealed-profile signature\n"
"""Domain separation: a platform signature over anything else can never verify as an envelope."""

HKDF_INFO = b"pw/v1 sealed-profile key"
NONCE_BYTES = 12  # AES-GCM's standard nonce size (NIST SP 800-38D)

CLOCK_SKEW_S = 300
"""An envelope counts as expired only 5 minutes past ``expires_at``: device clocks set
from NITZ/NTP drift by seconds to minutes, and a false "expired" would strand a swap."""

HEADER_FIELDS = ("alg", "device", "assignment_id", "seq", "issued_at", "expires_at", "epk", "nonce")
ENVELOPE_FIELDS = (*HEADER_FIELDS, "ct", "sig")
"""The envelope is the header plus ct and sig, and nothing else (docs/protocol.md 4, step 6)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise SealError(f"envelope field {what} is not a string", reason="malformed")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SealError(f"envelope field {what} is not base64", reason="malformed") from None


def canonical(header: dict[str, Any]) -> bytes:
    """The exact bytes signed and used as AEAD associated data: sorted, compact JSON."""
    return json.dumps({k: header[k] for k in HEADER_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive_key(shared: bytes, epk: bytes, device_pub: bytes) -> bytes:
    """HKDF-SHA256 over the ECDH secret, salted with both public keys (binds the key to them)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + device_pub, info=HKDF_INFO).derive(shared)


def profile_to_dict(profile: SimProfile) -> dict[str, Any]:
    """The sealed plaintext form. Only ever passed to ``seal``; never logged."""
    return {**profile.public(), "ki": profile.ki.hex(), "opc": profile.opc.hex()}


def profile_from_dict(d: dict[str, Any]) -> SimProfile:
    """The opened plaintext as a ``SimProfile``, every field checked first (profilecheck.py):
    nothing of a profile with a bad field goes further, not even into an exception."""
    check_profile(d)
    try:
        return SimProfile(iccid=str(d["iccid"]), imsi=str(d["imsi"]), ki=bytes.fromhex(d["ki"]),
                          opc=bytes.fromhex(d["opc"]), plmn=str(d.get("plmn", "")), apn=str(d.get("apn", "")),
                          plan=Plan.from_dict(d.get("plan") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        # Name the problem, never the values: they are key material.
        raise SealError(f"sealed profile has a bad field ({exc.__class__.__name__})", reason="malformed") from None


def seal(profile: SimProfile, *, device_id: str, device_public: X25519PublicKey, platform_key: Ed25519PrivateKey,
         assignment_id: str, seq: int, issued_at: int, expires_at: int,
         ephemeral: X25519PrivateKey | None = None, nonce: bytes | None = None) -> dict[str, Any]:
    """Cloud side: encrypt ``profile`` to one device and sign the binding.

    ``ephemeral`` and ``nonce`` exist for the fixed test vectors only; production calls
    leave them None so every envelope uses fresh randomness.
    """
    eph = ephemeral or X25519PrivateKey.generate()
    nonce = nonce or os.urandom(NONCE_BYTES)
    epk = _raw_public(eph.public_key())
    key = _derive_key(eph.exchange(device_public), epk, _raw_public(device_public))
    header = {"alg": ALG, "device": device_id, "assignment_id": assignment_id, "seq": int(seq),
              "issued_at": int(issued_at), "expires_at": int(expires_at), "epk": _b64(epk), "nonce": _b64(nonce)}
    aad = canonical(header)
    plaintext = json.dumps(profile_to_dict(profile), sort_keys=True, separators=(",", ":")).encode()
    ct = AESGCM(key).encrypt(nonce, plaintext, aad)
    sig = platform_key.sign(SIG_CONTEXT + aad + ct)
    return {**header, "ct": _b64(ct), "sig": _b64(sig)}


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted envelope. ``profile`` holds Ki/OPc: hand it on, do not keep it."""

    assignment_id: str
    seq: int
    expires_at: int
    profile: SimProfile


def verify_header(env: Any, *, device_id: str, platform_public: Ed25519PublicKey, now: float | None,
                  skew: float = CLOCK_SKEW_S) -> tuple[dict[str, Any], bytes]:
    """Signature, algorithm, device binding and expiry; returns (header, ciphertext).

    Order matters: the signature first, so nothing unsigned is trusted, not even the
    device id used to explain a refusal. ``now`` None means the wall clock is not yet
    trusted: expiry cannot be judged, the sequence number still stops replays.
    """
    if not isinstance(env, dict):
        raise SealError("envelope is not an object", reason="malformed")
    missing = [k for k in ENVELOPE_FIELDS if k not in env]
    if missing:
        raise SealError(f"envelope lacks {missing}", reason="malformed")
    extra = len(set(env) - set(ENVELOPE_FIELDS))
    if extra:  # unsigned, so never read; refused so that no one can think they count
        raise SealError(f"envelope has {extra} field(s) beyond the contract's", reason="malformed")
    if env["alg"] != ALG:
        raise SealError(f"unsupported algorithm {str(env['alg'])[:40]!r}", reason="algorithm")
    if not isinstance(env["seq"], int) or not isinstance(env["expires_at"], int) or isinstance(env["seq"], bool):
        raise SealError("envelope seq/expires_at are not integers", reason="malformed")
    ct, sig = _unb64(env["ct"], "ct"), _unb64(env["sig"], "sig")
    aad = canonical(env)
    try:
        platform_public.verify(sig, SIG_CONTEXT + aad + ct)
    except InvalidSignature:
        raise SealError(f"bad platform signature on assignment {str(env['assignment_id'])[:40]!r}",
                        reason="signature") from None
    if env["device"] != device_id:
        raise SealError(f"envelope is for device {env['device']!r}, not {device_id!r}", reason="wrong_device")
    if now is not None and now > env["expires_at"] + skew:
        raise SealError(f"envelope {env['assignment_id']!r} expired at {env['expires_at']} (now {int(now)})",
                        reason="expired")
    return env, ct


def open_envelope(env: dict[str, Any], *, device_id: str, device_key: X25519PrivateKey,
                  platform_public: Ed25519PublicKey, now: float | None) -> Opened:
    """Device side: verify then decrypt. Raises SealError with a reason; never leaks plaintext."""
    header, ct = verify_header(env, device_id=device_id, platform_public=platform_public, now=now)
    epk = _unb64(header["epk"], "epk")
    nonce = _unb64(header["nonce"], "nonce")
    if len(epk) != 32 or len(nonce) != NONCE_BYTES:
        raise SealError("envelope epk/nonce have the wrong length", reason="malformed")
    key = _derive_key(device_key.exchange(X25519PublicKey.from_public_bytes(epk)), epk,
                      _raw_public(device_key.public_key()))
    try:
        plaintext = AESGCM(key).decrypt(nonce, ct, canonical(header))
    except InvalidTag:
        raise SealError(f"envelope {header['assignment_id']!r} does not decrypt with this device's key",
                        reason="decrypt") from None
    try:
        body = json.loads(plaintext)
    except ValueError:
        raise SealError("sealed profile is not JSON", reason="malformed") from None
    finally:
        del plaintext
    return Opened(str(header["assignment_id"]), int(header["seq"]), int(header["expires_at"]), profile_from_dict(body))


class ReplayGuard:
    """Durable per-device anti-replay state: the highest envelope sequence accepted.

    ``check`` answers "new", "duplicate" (the assignment already accepted, redelivered:
    acknowledge again, do not re-apply) or raises SealError("replay") for anything at or
    below the high-water mark that is not that same assignment.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        state = store.read_json(self.path, default={}) or {}
        self.last_seq: int = int(state.get("last_seq", 0))
        self.last_assignment_id: str = str(state.get("last_assignment_id", ""))
        self.last_result: dict[str, Any] | None = state.get("last_result")

    def check(self, assignment_id: str, seq: int) -> str:
        if seq > self.last_seq:
            return "new"
        if seq == self.last_seq and assignment_id == self.last_assignment_id:
            return "duplicate"
        raise SealError(f"replayed envelope {assignment_id!r}: seq {seq} <= last accepted {self.last_seq}",
                        reason="replay")

    def accept(self, assignment_id: str, seq: int) -> None:
        """Record ``seq`` durably *before* the profile is used, so a crash cannot reopen it."""
        self.last_seq, self.last_assignment_id, self.last_result = seq, assignment_id, None
        self._save()

    def record_result(self, assignment_id: str, result: dict[str, Any]) -> None:
        """Keep the result of the last assignment so a redelivery is answered identically."""
        if assignment_id == self.last_assignment_id:
            self.last_result = result
            self._save()

    def _save(self) -> None:
        store.atomic_write_json(self.path, {"last_seq": self.last_seq, "last_assignment_id": self.last_assignment_id,
                                            "last_result": self.last_result})


# --- key files ---------------------------------------------------------------------

def _load_key(path: Path | str, kind: type[Any], private: bool) -> Any:
    """A PEM key of exactly ``kind``; anything else is a SealError naming the file."""
    data = Path(path).read_bytes()
    key = (serialization.load_pem_private_key(data, password=None) if private
           else serialization.load_pem_public_key(data))
    if not isinstance(key, kind):
        raise SealError(f"{path} is not an {kind.__name__.removesuffix('Key')} key", reason="key")
    return key


def load_private_x25519(path: Path | str) -> X25519PrivateKey:
    return _load_key(path, X25519PrivateKey, private=True)


def load_public_x25519(path: Path | str) -> X25519PublicKey:
    return _load_key(path, X25519PublicKey, private=False)


def load_private_ed25519(path: Path | str) -> Ed25519PrivateKey:
    return _load_key(path, Ed25519PrivateKey, private=True)


def load_public_ed25519(path: Path | str) -> Ed25519PublicKey:
    return _load_key(path, Ed25519PublicKey, private=False)


def private_pem(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

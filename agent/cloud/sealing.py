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

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
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
INTEGER_FIELDS = ("seq", "issued_at", "expires_at")
"""Integers in the header (docs/protocol.md 4, step 3); ``true`` is not one, though Python says so."""


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
    if any(isinstance(env[k], bool) or not isinstance(env[k], int) for k in INTEGER_FIELDS):
        raise SealError("envelope seq/issued_at/expires_at are not integers", reason="malformed")
    if not all(isinstance(env[k], str) for k in ENVELOPE_FIELDS if k not in INTEGER_FIELDS):
        raise SealError("envelope text fields are not strings", reason="malformed")
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


REPLAY_STATE_REASON = "replay_state"
"""The error reason while the replay state cannot be read (docs/protocol.md 4.1)."""


class ReplayGuard:
    """Durable per-device anti-replay state: the highest envelope sequence accepted.

    ``check`` answers "new", "duplicate" (the assignment already accepted, redelivered:
    acknowledge again, do not re-apply) or raises SealError("replay") for anything at or
    below the high-water mark that is not that same assignment.

    It fails closed (issue 20, finding 6): a state file that exists but cannot be read
    (EACCES, EIO, not JSON, wrong shape) does not mean "nothing accepted yet", or every
    older signed envelope for this device would open again. The guard is then *closed*:
    every envelope is refused (``replay_state``) until the platform re-establishes a floor
    (``reestablish``, from the signed floor of an assignment reply; docs/protocol.md 4.1).
    Only a missing file is a fresh device: provisioning leaves none, and only the agent's
    own user (which holds the sealing key anyway) can delete it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.last_seq = 0
        self.last_assignment_id = ""
        self.last_result: dict[str, Any] | None = None
        self.closed_because: str | None = None
        """Why the state could not be read (None: the guard is open)."""
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._close(f"unreadable ({exc.strerror or exc.__class__.__name__})")
            return
        try:
            state = json.loads(raw)
            last_seq, last_id = state["last_seq"], state.get("last_assignment_id", "")
            result = state.get("last_result")
            if (isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0
                    or not isinstance(last_id, str) or not (result is None or isinstance(result, dict))):
                raise TypeError("wrong field types")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._close(f"corrupt ({exc.__class__.__name__})")
            return
        self.last_seq, self.last_assignment_id, self.last_result = last_seq, last_id, result

    def _close(self, why: str) -> None:
        self.closed_because = why
        LOGGER.error("replay state %s is %s: refusing every envelope until the cloud sends a signed floor",
                     self.path, why)

    @property
    def closed(self) -> bool:
        return self.closed_because is not None

    def check(self, assignment_id: str, seq: int) -> str:
        if self.closed_because is not None:
            raise SealError(f"replay state {self.closed_because}: envelope {assignment_id!r} refused until the "
                            "cloud re-establishes a floor", reason=REPLAY_STATE_REASON)
        if seq > self.last_seq:
            return "new"
        if seq == self.last_seq and assignment_id == self.last_assignment_id:
            return "duplicate"
        raise SealError(f"replayed envelope {assignment_id!r}: seq {seq} <= last accepted {self.last_seq}",
                        reason="replay")

    def reestablish(self, floor: int) -> None:
        """The platform's signed floor (every seq <= ``floor`` was issued before): written
        durably, then the guard opens with it. A floor never lowers an open guard's mark."""
        floor = floor if self.closed else max(floor, self.last_seq)
        same = floor == self.last_seq and not self.closed
        self._save(floor, "" if not same else self.last_assignment_id, None if not same else self.last_result)
        if self.closed:
            LOGGER.warning("replay state re-established from the cloud's signed floor: seq %d", floor)
        self.closed_because = None

    def accept(self, assignment_id: str, seq: int) -> None:
        """Record ``seq`` durably *before* the profile is used, so a crash cannot reopen it."""
        self.check(assignment_id, seq)
        self._save(seq, assignment_id, None)

    def record_result(self, assignment_id: str, result: dict[str, Any]) -> None:
        """Keep the result of the last assignment so a redelivery is answered identically."""
        if assignment_id == self.last_assignment_id and not self.closed:
            try:
                self._save(self.last_seq, assignment_id, result)
            except SealError as exc:
                LOGGER.error("%s", exc)  # only the redelivery's answer is lost

    def _save(self, seq: int, assignment_id: str, result: dict[str, Any] | None) -> None:
        """Write first, then believe: a state that did not reach flash is not in force."""
        try:
            store.atomic_write_json(self.path, {"last_seq": seq, "last_assignment_id": assignment_id,
                                                "last_result": result})
        except OSError as exc:
            raise SealError(f"cannot record the replay state: {exc.strerror or exc}",
                            reason=REPLAY_STATE_REASON) from None
        self.last_seq, self.last_assignment_id, self.last_result = seq, assignment_id, result


# --- key files ---------------------------------------------------------------------

def _load_key(path: Path | str, kind: type[Any], private: bool) -> Any:
    """A PEM key of exactly ``kind``; anything else is a SealError naming the file."""
    data = Path(path).read_bytes()
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's own text names neither the file nor what was expected (a daemon
        # starting with a wrong file must say which); its cause is dropped, as key bytes
        # have no place in an exception.
        raise SealError(f"{path} is not a PEM {'private' if private else 'public'} "
                        f"{kind.__name__.removesuffix('Key')} key", reason="key") from None
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

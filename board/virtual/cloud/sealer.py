"""Sealed profiles, the platform's side, written from docs/protocol.md section 4 alone.

Why a second implementation: the agent's agent/cloud/sealing.py is the device's; if the
reference cloud sealed with it, the published test vector and every lab assignment would
only show that the agent agrees with itself, and a misreading of section 4 would be
copied into the cloud. This module shares no code with the agent (tests/test_imports.py
checks that it imports nothing of ``agent``): it is built on ``cryptography``'s primitives
and canonical.py, following the doc step by step, and tests/cloud/test_sealer.py shows
that it reproduces the doc's vector and that each side opens the other's envelopes.

Sealing (section 4, steps 1-6): an ephemeral X25519 key ``e``; ``Z = X25519(e, device)``;
``K = HKDF-SHA256(Z, salt = epk || device public, info = KEY_INFO, 32)``; header ``H`` =
canonical JSON of the eight header fields; ``ct = AES-256-GCM(K, nonce, plaintext, H)``
(ciphertext then tag); ``sig = Ed25519(platform, SIGNATURE_CONTEXT || H || ct)``; the
envelope is the header plus ``ct`` and ``sig`` in base64. Opening is here for the tests
(the device's order of checks, section 4, is the agent's business): it refuses what a
device must refuse before decrypting, with the doc's reasons.

The plaintext holds Ki and OPc: nothing here logs it or puts it in an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from board.virtual.cloud.canonical import canonical

ALG = "X25519-HKDF-SHA256-A256GCM+Ed25519"
"""Section 4 step 3: the only algorithm label of pw/v1."""

KEY_INFO = b"pw/v1 sealed-profile key"
"""Section 4 step 2: HKDF's info, 24 ASCII bytes."""

SIGNATURE_CONTEXT = b"pw/v1 sealed-profile signature\n"
"""Section 4 step 5: 31 ASCII bytes ending in one line feed, signed before H and ct."""

KEY_BYTES = 32
"""X25519 and Ed25519 public keys, raw (RFC 7748, RFC 8032); also the AES-256 key length."""

NONCE_BYTES = 12
"""AES-GCM's nonce (NIST SP 800-38D's recommended 96 bits); section 4 step 3."""

HEADER = ("alg", "device", "assignment_id", "seq", "issued_at", "expires_at", "epk", "nonce")
"""Section 4 step 3: the fields of H, which the signature and the AEAD both bind."""

ENVELOPE = (*HEADER, "ct", "sig")
"""Section 4 step 6: the header plus ct and sig, and no other field."""


class SealingError(ValueError):
    """An envelope refused, with section 4's reason (malformed, algorithm, signature,
    wrong_device, decrypt); the text never holds plaintext."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key(shared: bytes, epk: bytes, device_public: bytes) -> bytes:
    """Section 4 step 2."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=epk + device_public, info=KEY_INFO).derive(shared)


def seal(profile: dict[str, Any], *, device_id: str, device_public: X25519PublicKey,
         platform_key: Ed25519PrivateKey, assignment_id: str, seq: int, issued_at: int, expires_at: int,
         ephemeral: X25519PrivateKey | None = None, nonce: bytes | None = None) -> dict[str, Any]:
    """``profile`` (the plaintext document of section 4's table) sealed to one device and
    signed. ``ephemeral`` and ``nonce`` are for the published test vector only: left None,
    each envelope draws fresh ones, as step 1 and step 3 require."""
    e = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
    iv = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    epk, device_raw = _raw(e.public_key()), _raw(device_public)
    header = {"alg": ALG, "device": device_id, "assignment_id": assignment_id, "seq": seq,
              "issued_at": issued_at, "expires_at": expires_at, "epk": _b64(epk), "nonce": _b64(iv)}
    h = canonical(header)
    ct = AESGCM(_key(e.exchange(device_public), epk, device_raw)).encrypt(iv, canonical(profile), h)
    sig = platform_key.sign(SIGNATURE_CONTEXT + h + ct)
    return {**header, "ct": _b64(ct), "sig": _b64(sig)}


def _unb64(envelope: dict[str, Any], field: str, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(str(envelope[field]).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SealingError(f"envelope field {field} is not base64", "malformed") from None
    if size is not None and len(data) != size:
        raise SealingError(f"envelope field {field} is {len(data)} bytes, not {size}", "malformed")
    return data


def _well_formed(envelope: Any) -> None:
    if not isinstance(envelope, dict) or set(envelope) != set(ENVELOPE):
        raise SealingError("envelope is not an object of exactly section 4's fields", "malformed")
    for field in ("seq", "issued_at", "expires_at"):
        if isinstance(envelope[field], bool) or not isinstance(envelope[field], int):
            raise SealingError(f"envelope field {field} is not an integer", "malformed")
    if not all(isinstance(envelope[f], str) for f in ENVELOPE if f not in ("seq", "issued_at", "expires_at")):
        raise SealingError("envelope text fields are not strings", "malformed")
    if envelope["alg"] != ALG:
        raise SealingError(f"algorithm {envelope['alg'][:40]!r} is not {ALG}", "algorithm")


def open_envelope(envelope: Any, *, device_key: X25519PrivateKey, platform_public: Ed25519PublicKey,
                  device_id: str | None = None) -> dict[str, Any]:
    """The profile inside ``envelope``: well-formed, signed by the platform, for ``device_id``
    (when given), and decrypting with ``device_key``; SealingError with the reason otherwise."""
    _well_formed(envelope)
    h = canonical({f: envelope[f] for f in HEADER})
    ct, sig = _unb64(envelope, "ct"), _unb64(envelope, "sig", 64)
    try:
        platform_public.verify(sig, SIGNATURE_CONTEXT + h + ct)
    except InvalidSignature:
        raise SealingError("the platform's signature does not verify", "signature") from None
    if device_id is not None and envelope["device"] != device_id:
        raise SealingError(f"envelope is for {envelope['device']!r}, not {device_id!r}", "wrong_device")
    epk, iv = _unb64(envelope, "epk", KEY_BYTES), _unb64(envelope, "nonce", NONCE_BYTES)
    shared = device_key.exchange(X25519PublicKey.from_public_bytes(epk))
    try:
        plaintext = AESGCM(_key(shared, epk, _raw(device_key.public_key()))).decrypt(iv, ct, h)
    except InvalidTag:
        raise SealingError("envelope does not decrypt with this key", "decrypt") from None
    try:
        profile = json.loads(plaintext)
    except ValueError:
        raise SealingError("sealed profile is not JSON", "malformed") from None
    if not isinstance(profile, dict):
        raise SealingError("sealed profile is not an object", "malformed")
    return profile


def load_platform_key(path: Path | str) -> Ed25519PrivateKey:
    """The platform's Ed25519 signing key (PKCS#8 PEM, as the lab PKI writes it)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")  # noqa: TRY004 - bad file, not bad arg
    return key


def load_device_public(path: Path | str) -> X25519PublicKey:
    """A device's X25519 sealing public key (SubjectPublicKeyInfo PEM)."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, X25519PublicKey):
        raise ValueError(f"{path} is not an X25519 public key")  # noqa: TRY004 - bad file, not bad arg
    return key

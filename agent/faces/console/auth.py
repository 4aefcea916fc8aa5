"""Technician login for privileged console commands: Ed25519 challenge-response.

Why not a password: several router families shipped one service password for every unit,
and a password typed on a serial line is a password that ends up on a sticky note. Here
nothing secret is on the device at all. The device prints a challenge bound to its own
id and the time::

    pwc1 rtr-000001 1795689600 8f2c61d09a3b47e5

the technician's support tool signs exactly that text with the technician's Ed25519
private key (``pocket-agent console sign``), and the technician pastes the signature
back. The device checks it against the technicians' *public* keys pinned in its state
directory (``agent/core/technicians.py``), which the cloud's policy replaces when a
technician joins or leaves. A challenge is single-use and expires after ``CHALLENGE_TTL``, and it names
the device, so a signature cannot be replayed later or on another router.

Failed attempts slow down exponentially (``BACKOFF_BASE`` doubling up to ``BACKOFF_CAP``)
for the whole device, not per terminal, so opening a second terminal does not reset the
clock; the session reports every failure upstream through the audit op. A technician
who stops typing is logged out after ``IDLE_LOGOUT``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import store
from agent.core.technicians import Technician
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

SCHEME = "pwc1"
"""Version tag of the challenge format; a new format gets a new tag."""
CHALLENGE_TTL = 120.0
"""Seconds a challenge stays valid: enough to copy it to the laptop, sign, paste back."""
NONCE_BYTES = 8
"""64 random bits: with one live challenge per terminal, guessing is hopeless, and 16 hex
digits stay short enough to read aloud over a phone to a colleague with the key."""
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
"""After n failures the next attempt waits BASE * 2**(n-1) s, at most 5 minutes: 10
wrong signatures cost over 8 minutes, a brute force of a 64-byte signature is hopeless
anyway, and a technician who mistyped twice waits 2 s."""
IDLE_LOGOUT = 300.0
"""Seconds without a keystroke before a logged-in technician is logged out: long enough
to read a log, short enough that a laptop left plugged in does not stay privileged."""
SIGNATURE_BYTES = 64


class AuthFailed(Exception):
    """A login attempt failed; ``reason`` is safe to show and to report."""

    def __init__(self, reason: str, *, wait_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class Authenticator:
    """Issues challenges and checks signatures; one per console server (all terminals)."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 random: Callable[[int], bytes] = os.urandom):
        self._monotonic, self._wall, self._random = monotonic, wall, random
        self._issued: dict[str, float] = {}
        self.failures = 0
        self._next_try = 0.0

    def challenge(self, device_id: str) -> str:
        now = self._monotonic()
        self._issued = {c: t for c, t in self._issued.items() if now - t < CHALLENGE_TTL}
        text = f"{SCHEME} {device_id} {int(self._wall())} {self._random(NONCE_BYTES).hex()}"
        self._issued[text] = now
        return text

    def wait_s(self) -> float:
        """Seconds before the next attempt will be looked at (0 when it may go ahead)."""
        return max(0.0, self._next_try - self._monotonic())

    def verify(self, challenge: str, signature: str, technicians: list[Technician]) -> str:
        """The technician's name, or AuthFailed. The challenge is used up either way."""
        wait = self.wait_s()
        if wait > 0:
            raise AuthFailed(f"too many failed logins: wait {wait:.0f} s", wait_s=wait)
        issued = self._issued.pop(challenge, None)
        if issued is None or self._monotonic() - issued >= CHALLENGE_TTL:
            raise self._fail("challenge expired or unknown: type login again")
        sig = _decode_signature(signature)
        for tech in technicians:
            try:
                Ed25519PublicKey.from_public_bytes(tech.key).verify(sig, challenge.encode())
            except InvalidSignature:
                continue
            self.failures = 0
            self._next_try = 0.0
            return tech.name
        raise self._fail("signature does not match any pinned technician key")

    def _fail(self, reason: str) -> AuthFailed:
        self.failures += 1
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (self.failures - 1))
        self._next_try = self._monotonic() + delay
        return AuthFailed(reason, wait_s=delay)


def _decode_signature(text: str) -> bytes:
    try:
        sig = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        sig = b""
    return sig if len(sig) == SIGNATURE_BYTES else b"\0" * SIGNATURE_BYTES  # fails verification


# ---- the technician's side (pocket-agent console keygen|sign) -----------------------
def generate_key(path: Path) -> str:
    """A new private key at ``path`` (0600 from the first byte); returns the public key
    in the base64 form the device pins."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, store.PRIVATE_MODE)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    return public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable Ed25519 private key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, challenge: str) -> str:
    """What the technician pastes back: base64 of the signature over the challenge text."""
    challenge = challenge.strip()
    if not challenge.startswith(SCHEME + " "):
        raise ConfigError(f"not a console challenge (it starts with {SCHEME!r})")
    return base64.b64encode(key.sign(challenge.encode())).decode()

"""The technician's side of the console login: keys and signatures (``pocket-agent console
keygen|sign``). The device's side, which issues challenges and checks signatures, is in
the daemon: ``agent/core/logins.py``.

Why not a password: several router families shipped one service password for every unit,
and a password typed on a serial line is a password that ends up on a sticky note. Here
nothing secret is on the device at all. The device prints a challenge bound to its own
id, the time and a nonce::

    pwc1 rtr-000001 1795689600 8f2c61d09a3b47e5

the technician's support tool signs exactly that text with the technician's Ed25519
private key and the technician pastes the signature back.

The private key is what a lost laptop gives away, and its public half is pinned on every
router of the fleet (issue 20, finding 12). So it is written 0600 from the first byte and,
unless the technician says otherwise, encrypted with a passphrase (PKCS#8 with the best
encryption the ``cryptography`` library offers); ``--no-passphrase`` is for keys kept in
an encrypted home directory or a lab. And since one key opens every router, ``sign``
refuses a text that names no device and shows which device a challenge is for: a
challenge relayed from another router ("just sign this for me") names that router, and
its signature is good there only, once, within two minutes.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import store
from agent.core.logins import Challenge, parse_challenge
from agent.errors import ConfigError

ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
MIN_PASSPHRASE = 8
"""Characters: the passphrase guards a key valid fleet-wide; shorter ones fall to a
dictionary attack on a stolen key file in hours."""


class PassphraseNeeded(ConfigError):
    """The key file is encrypted and no passphrase was given."""


def generate_key(path: Path, passphrase: bytes | None = None) -> str:
    """A new private key at ``path`` (0600 from the first byte, encrypted with
    ``passphrase`` when one is given); returns the public key in the base64 form the device pins."""
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise ConfigError(f"a passphrase needs at least {MIN_PASSPHRASE} characters")
    key = Ed25519PrivateKey.generate()
    protection: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protection)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, store.PRIVATE_MODE)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    return public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def is_encrypted(path: Path) -> bool:
    try:
        return Path(path).read_bytes().lstrip().startswith(ENCRYPTED_PEM)
    except OSError:
        return False


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The technician's key; PassphraseNeeded if it is encrypted and none was given,
    ConfigError for anything else wrong (never the key's bytes)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: not readable ({type(exc).__name__})") from None
    if passphrase is None and data.lstrip().startswith(ENCRYPTED_PEM):
        raise PassphraseNeeded(f"{path} is encrypted: its passphrase is needed")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if passphrase else None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an Ed25519 private key, or a wrong passphrase ({type(exc).__name__})") \
            from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


def describe(challenge: Challenge) -> str:
    """What the technician should check before signing: which router, issued when."""
    issued = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(challenge.issued))
    return f"login challenge for device {challenge.device}, issued {issued}"


def sign(key: Ed25519PrivateKey, challenge: str, *, device: str | None = None) -> str:
    """What the technician pastes back: base64 of the signature over the challenge text.
    ConfigError for a text that is not a challenge naming a device, or names another
    device than ``device`` (when the technician said which router is in front of them)."""
    parsed = parse_challenge(challenge)
    if device is not None and parsed.device != device:
        raise ConfigError(f"this challenge is for device {parsed.device}, not {device}: not signed")
    return base64.b64encode(key.sign(challenge.strip().encode())).decode()

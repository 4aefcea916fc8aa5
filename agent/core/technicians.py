"""The technicians' public keys pinned on the device, and their rotation by cloud policy.

The daemon's login desk (agent/core/logins.py) checks signatures against these keys;
nothing secret is stored. The file (``<state_dir>/console/technicians.json``, written
atomically) holds ``{"version": n, "keys": [{"name": ..., "ed25519": base64}]}``. The
platform rotates it through the retained policy (docs/protocol.md 3.8): a policy with a
``technician_keys`` document of a higher version replaces the pinned set whole; an older
or equal version is ignored (retained redelivery is harmless), and an invalid one is
refused whole and logged, keeping the keys that were pinned.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import store
from agent.cloud.platformsig import MAX_POLICY_VERSION, MAX_VERSION_STEP
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

KEY_BYTES = 32
MAX_TECHNICIANS = 256
"""More than any support organisation has; bounds what a policy can make us parse."""
NAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
POLICY_FIELD = "technician_keys"


@dataclass(frozen=True)
class Technician:
    name: str
    key: bytes
    """The raw 32-byte Ed25519 public key."""


def parse_technicians(doc: Any) -> tuple[int, list[Technician]]:
    """``{"version": n, "keys": [{"name": ..., "ed25519": base64}]}`` -> (version, list).

    ConfigError names the first bad entry; a policy with a bad key is refused whole."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ConfigError("technician keys: expected {\"version\": n, \"keys\": [...]}")
    version = doc.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_POLICY_VERSION:
        raise ConfigError(f"technician keys: bad version {str(version)[:24]}")
    if len(doc["keys"]) > MAX_TECHNICIANS:
        raise ConfigError(f"technician keys: more than {MAX_TECHNICIANS}")
    out = []
    for i, entry in enumerate(doc["keys"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"technician keys: entry {i} has a bad name")
        try:
            key = base64.b64decode(str(entry.get("ed25519", "")), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"technician keys: {name}: not a base64 32-byte Ed25519 public key")
        out.append(Technician(name, key))
    return version, out


def load_technicians(path: Path) -> tuple[int, list[Technician]]:
    """The pinned keys; none pinned (no file) means nobody can log in, which is safe."""
    doc = store.read_json(path)
    if doc is None:
        return 0, []
    return parse_technicians(doc)


def apply_policy(path: Path, doc: Any) -> bool:
    """Replace the pinned keys with the cloud policy's ``technician_keys`` document if it is
    valid and newer than what is pinned; returns whether it replaced them."""
    version, techs = parse_technicians(doc)
    current, _ = load_technicians(path)
    if version > current + MAX_VERSION_STEP:
        raise ConfigError(f"technician keys: version {version} is more than {MAX_VERSION_STEP} past {current}")
    if version <= current:
        LOGGER.info("technician keys: policy version %d is not newer than %d: kept", version, current)
        return False
    store.atomic_write_json(path, {"version": version, "keys": [
        {"name": t.name, "ed25519": base64.b64encode(t.key).decode()} for t in techs]})
    LOGGER.info("technician keys: version %d pinned (%d technicians)", version, len(techs))
    return True


def on_policy(path: Path, policy: dict[str, Any]) -> None:
    """The cloud link's policy callback: pin ``policy["technician_keys"]`` if present."""
    doc = policy.get(POLICY_FIELD)
    if doc is None:
        return
    try:
        apply_policy(path, doc)
    except ConfigError as exc:
        LOGGER.error("policy %s: technician keys refused, the pinned ones stay: %s", policy.get("version"), exc)

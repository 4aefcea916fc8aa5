"""The factory's step for a remote-SIM board, played by the lab: the seed SIM sealed to the device.

A vSIM board's seed SIM is in the modem (the virtual modem's slot 0). A remote-SIM module
has no card of its own, so the factory writes the seed SIM's profile for the agent as the
platform seals an assignment (agent/cloud/sealing.py): encrypted to the device's sealing
key, signed with the platform's key, 0600 from the first byte. The agent opens it at every
start (agent/core/rsimboot.py); the Ki and OPc are never on disk in clear. ``seq`` 0 with
the assignment id ``seed`` can never pass the device's replay guard as an assignment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from agent import store
from agent.cloud import sealing
from agent.sim import Plan, SimProfile

SEED_ASSIGNMENT_ID = "seed"
SEED_SEQ = 0
SEED_VALID_S = 10 * 365 * 86400
"""The envelope's ``expires_at``, for readers that check it; the agent opens a seed with
the clock untrusted, so a router on a shelf for years still boots."""


def seal_seed(seed: dict[str, Any], *, device_id: str, sealing_pub: Path, platform_key: Path, path: Path) -> Path:
    """Write the pool's seed SIM ``seed`` (hex keys) to ``path``, sealed to the device."""
    profile = SimProfile(iccid=seed["iccid"], imsi=seed["imsi"], ki=bytes.fromhex(seed["ki"]),
                         opc=bytes.fromhex(seed["opc"]), plmn=seed.get("plmn", ""), apn=seed.get("apn", ""),
                         plan=Plan(name="seed", window="none"))
    now = int(time.time())
    envelope = sealing.seal(profile, device_id=device_id, device_public=sealing.load_public_x25519(sealing_pub),
                            platform_key=sealing.load_private_ed25519(platform_key),
                            assignment_id=SEED_ASSIGNMENT_ID, seq=SEED_SEQ, issued_at=now,
                            expires_at=now + SEED_VALID_S)
    store.atomic_write(path, json.dumps(envelope).encode())  # 0600 from the first byte
    return path

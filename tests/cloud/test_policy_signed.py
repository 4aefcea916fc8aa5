"""Signed policies through the real broker (issue 20, finding 5).

The attack: whoever can publish on a device's retained policy topic (the broker
operator, anyone holding the cloud's broker credential) pins their own technician key,
lifts the swap limits, or publishes version 2^62 so no later policy is ever applied.
Here the policy is published exactly as such a publisher would, through mosquitto with
TLS, to the real CloudLink: an unsigned or badly signed one is refused, reported upstream
as an ``error`` event, and changes nothing; the reference cloud's signed one is applied.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud import platformsig
from agent.cloud.link import CloudLink
from agent.core import technicians
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until

INTRUDER_KEY = base64.b64encode(b"\x66" * 32).decode()
TECHNICIAN_KEY = base64.b64encode(b"\x07" * 32).decode()


def keys_policy(version: int, name: str, key: str) -> dict[str, Any]:
    return {"version": version, "max_per_hour": 30,
            "technician_keys": {"version": version, "keys": [{"name": name, "ed25519": key}]}}


def test_an_unsigned_policy_published_through_the_broker_is_refused(broker: Broker, pki: LabPki,
                                                                    cloud: ReferenceCloud, tmp_path: Path) -> None:
    pinned = tmp_path / "console" / "technicians.json"
    applied: list[dict[str, Any]] = []
    forged = platformsig.sign_policy(keys_policy(9, "mallory", INTRUDER_KEY), device_id="dev-a",
                                     key=Ed25519PrivateKey.generate())

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_policy(applied.append)
        link.on_policy(lambda policy: technicians.on_policy(pinned, policy))
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.publish_policy("dev-a", keys_policy(8, "mallory", INTRUDER_KEY))  # unsigned
            await until(lambda: [e["reason"] for e in errors(cloud)] == ["signature"])
            cloud.publish_policy("dev-a", forged)  # signed, by a key that is not the platform's
            await until(lambda: [e["reason"] for e in errors(cloud)] == ["signature"] * 2)
            frozen = cloud.sign_policy("dev-a", {"version": 2**62})  # signed, but would freeze every later one
            cloud.publish_policy("dev-a", frozen)  # unchecked: it breaks the contract (version <= 2^31 - 1)
            await until(lambda: [e["reason"] for e in errors(cloud)][-1:] == ["policy_bounds"])
            assert applied == [] and not pinned.exists()
            cloud.set_policy("dev-a", keys_policy(3, "alice", TECHNICIAN_KEY))  # the platform's own
            await until(lambda: len(applied) == 1 and pinned.exists())
        finally:
            await link.stop()

    run(body())
    assert applied[0]["version"] == 3 and applied[0]["max_per_hour"] == 30
    version, techs = technicians.load_technicians(pinned)
    assert version == 3 and [t.name for t in techs] == ["alice"]
    error = errors(cloud)[0]
    assert error["topic"] == "pw/v1/dev-a/policy" and "not signed" in error["detail"]

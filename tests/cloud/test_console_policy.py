"""Technician keys and console audit entries over the real broker and reference cloud.

The console's login trusts the keys the platform pins through its retained policy, and
every technician action goes upstream as an ``audit`` event: both checked here with the
real CloudLink, mosquitto with TLS, and the reference cloud.
"""

from __future__ import annotations

import base64
from pathlib import Path

from agent.cloud.link import CloudLink
from agent.core import technicians
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import until


def test_policy_pins_technician_keys_and_audit_goes_upstream(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                            tmp_path: Path) -> None:
    pinned = tmp_path / "console" / "technicians.json"
    key = base64.b64encode(b"\7" * 32).decode()

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_policy(lambda policy: technicians.on_policy(pinned, policy))
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.set_policy("dev-a", {"version": 7, "technician_keys": {"version": 2, "keys": [
                {"name": "alice", "ed25519": key}]}})
            await until(pinned.exists)
            await link.emit("audit", {"action": "login_failed", "failures": 3, "terminal": "/dev/ttyGS0"})
            await until(lambda: any(e["kind"] == "audit" for e in cloud.events() if e["device"] == "dev-a"))
        finally:
            await link.stop()

    run(body())
    version, techs = technicians.load_technicians(pinned)
    assert version == 2 and [t.name for t in techs] == ["alice"]
    audit = [e for e in cloud.events() if e["kind"] == "audit"]
    body = audit[0]["body"]
    assert body["body"]["kind"] == "audit" and body["body"]["data"]["action"] == "login_failed"

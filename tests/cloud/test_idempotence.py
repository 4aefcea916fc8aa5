"""Redelivery is harmless: identity checks, and commands, policies and assignments seen twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.cloud import protocol as proto
from agent.cloud.identity import SessionCounter, check_device_id
from agent.cloud.link import CloudLink
from agent.errors import ConfigError
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import until


def test_device_id_must_equal_certificate_cn(pki: LabPki) -> None:
    assert check_device_id("dev-a", pki.devices["dev-a"].cert) == "dev-a"
    with pytest.raises(ConfigError, match="differs from certificate CN 'dev-b'"):
        check_device_id("dev-a", pki.devices["dev-b"].cert)
    with pytest.raises(ConfigError, match="not a valid topic level"):
        check_device_id("dev/a", pki.devices["dev-a"].cert)


def test_session_counter_survives_restart(tmp_path: Path) -> None:
    assert [SessionCounter(tmp_path).next() for _ in range(3)] == [1, 2, 3]


def test_command_and_policy_redelivered_after_restart_are_not_reapplied(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    seen: list[str] = []

    async def session(n: int) -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_command(lambda c: seen.append(c.command_id))
        link.on_policy(lambda p: seen.append(f"policy {p['version']}"))
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.send_command("dev-a", {"command_id": "c1", "action": "report"})
            cloud.set_policy("dev-a", {"version": 1})
            cloud.send_command("dev-a", {"command_id": f"marker-{n}", "action": "report"})
            await until(lambda: f"marker-{n}" in seen)
        finally:
            await link.stop()
    run(session(1))
    run(session(2))  # a new process: same state directory, same command and retained policy again
    assert seen == ["c1", "policy 1", "marker-1", "marker-2"]


def test_redelivered_assignment_is_acknowledged_again_not_reapplied(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            a = await link.request_assignment("boot", timeout=10)
            await link.report_assignment_result(a.assignment_id, True, "attached")
            results = lambda: [e for e in cloud.events() if e["kind"] == "assignment_result"]
            await until(lambda: len(results()) == 1)
            # The cloud's reply arrives a second time (QoS 1 redelivery), nobody waiting for it:
            original = _reply_for(cloud, a.assignment_id)
            assert cloud._client is not None
            cloud._client.publish("pw/v1/dev-a/assignment", proto.encode(original), qos=1)
            await until(lambda: len(results()) == 2)
            assert results()[1]["body"]["body"]["data"] == {"assignment_id": a.assignment_id, "ok": True,
                                                           "detail": "attached"}
            assert link.assignments.guard.last_seq == a.seq and link.stats.rejected == 0
        finally:
            await link.stop()
    run(body())


def _reply_for(cloud: ReferenceCloud, assignment_id: str) -> dict[str, Any]:
    """Re-create the cloud's 'ok' reply for an assignment it issued (same envelope bytes are not kept)."""
    swap_seq = int(assignment_id.rsplit("-", 1)[1])
    iccid = next(i for i, s in cloud.sims.items() if s.get("device") == "dev-a")
    from agent.cloud import sealing
    key = sealing.load_public_x25519(cloud.device_keys_dir / "dev-a" / "sealing.pub")
    now = int(cloud.clock.wall())
    env = sealing.seal(cloud.profile(iccid), device_id="dev-a", device_public=key, platform_key=cloud.platform_key,
                       assignment_id=assignment_id, seq=swap_seq, issued_at=now, expires_at=now + 600)
    return {"status": "ok", "request_id": "redelivered", "assignment_id": assignment_id, "seq": swap_seq,
            "window": {"not_before": now, "not_after": now + 600}, "envelope": env}

"""The real CloudLink against a real mosquitto and the reference cloud."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cloud.link import AssignmentUnavailable, CloudLink
from agent.cloud.outbox import Outbox
from agent.cloud.protocol import MAX_MESSAGE_BYTES, Command
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.pool import make_pool
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud import events
from tests.cloud.conftest import Broker, device_config, run

STATES = ("ok", "throttled", "suspect", "poor_radio", "congested", "idle")

POLL_S = 0.02
"""Polling step where the condition lives in another process (broker, cloud thread)."""


async def until(pred: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(POLL_S)


ICCID = make_pool(10, seed=3)["sims"][0]["iccid"]  # the pool_data fixture's first SIM


def usage(i: int, iccid: str = ICCID) -> dict[str, Any]:
    return {"iccid": iccid, "imsi": "440100000100001", "day": "2026-01-31", "month": "2026-01", "tz": "+09:00",
            "mcc": ["440"], "rx_bytes": 1000 + i, "tx_bytes": 10 + i, "start": "2026-01-31T00:00:00+09:00",
            "end": "2026-01-31T00:01:00+09:00"}


def kinds(cloud: ReferenceCloud, device: str = "dev-a") -> list[str]:
    return [e["kind"] for e in cloud.events() if e["device"] == device]


def stream_state(cloud: ReferenceCloud, stream: str, device: str = "dev-a") -> Any:
    """The cloud's high-water mark of the device's one epoch of ``stream`` (agent/epochs.py)."""
    keys = [k for k in cloud.streams if k == f"{device}/{stream}" or k.startswith(f"{device}/{stream}/")]
    assert len(keys) == 1, keys
    return cloud.streams[keys[0]]


def errors(cloud: ReferenceCloud) -> list[dict[str, Any]]:
    """The error events the cloud received, each once: a record resent after an ack came
    late (2 s here, easily missed on a loaded machine) arrives again with its (epoch, seq)."""
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}
    for e in cloud.events():
        if e["kind"] == "error":
            seen.setdefault((e["body"].get("epoch"), e["body"]["seq"]), e["body"]["body"]["data"])
    return list(seen.values())


def test_event_is_delivered_and_dropped_only_on_the_clouds_ack(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                               tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            seq = await link.emit("health", events.health("throttled", ICCID))
            assert len(link.events) == 1
            await until(lambda: len(link.events) == 0)
            assert seq == 1
            assert "health" in kinds(cloud) and kinds(cloud)[0] == "state"
            assert cloud.totals()[ICCID]["throttled"] is True
        finally:
            await link.stop()
        assert cloud.wait_for(lambda: cloud.online.get("dev-a") is False, 5)
    run(body())


def test_broker_restart_mid_upload_loses_and_duplicates_nothing(broker: Broker, pki: LabPki,
                                                               cloud: ReferenceCloud, tmp_path: Path) -> None:
    source = Outbox(tmp_path / "usage.outbox", "usage")

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent", sources=[source])
        await link.start()
        try:
            assert await link.wait_connected(5)
            for i in range(150):
                source.put(usage(i))
                link.kick()
                if i == 60:
                    await until(lambda: source.acked >= 20)
                    broker.kill()  # abrupt: whatever it held in memory is gone
                    broker.start()
            # Modelled recovery: a back-off under 0.5 s, a TLS connect, and a resend after the
            # 2 s ack timeout for what the dead broker held: about 4 s. Ten times that, plus
            # the reference cloud's own reconnect, on a loaded 2-core machine.
            await until(lambda: len(source) == 0, 60)
            assert link.stats.drops >= 1 and link.stats.connects >= 2  # it really lost the broker
        finally:
            await link.stop()
    run(body(), timeout=90)
    total = cloud.totals()[ICCID]
    assert total["rx_bytes"] == sum(1000 + i for i in range(150))
    assert total["tx_bytes"] == sum(10 + i for i in range(150))
    assert stream_state(cloud, "usage").upto == 150 and cloud.gaps == 0
    received = [e["body"]["seq"] for e in cloud.events() if e["kind"] == "usage"]
    assert sorted(set(received)) == list(range(1, 151))  # duplicates may arrive; each counted once


def test_assignment_roundtrip_and_result(broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path,
                                        pool_data: dict[str, Any]) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            a = await link.request_assignment("throttled", current_iccid=None, evidence={"kbps": 120}, timeout=10)
            sim = next(s for s in pool_data["sims"] if s["iccid"] == a.profile.iccid)
            assert a.profile.ki.hex() == sim["ki"] and a.profile.opc.hex() == sim["opc"]
            assert a.profile.plan.remaining_bytes is not None and a.seq == 1
            await link.report_assignment_result(a.assignment_id, True, "attached")
            await until(lambda: cloud.totals()[a.profile.iccid]["device"] == "dev-a")
            b = await link.request_assignment("throttled", current_iccid=a.profile.iccid, timeout=10)
            assert b.profile.iccid != a.profile.iccid and b.seq == 2
            on_disk = b"".join(p.read_bytes() for p in (tmp_path / "agent").rglob("*") if p.is_file())
            for secret in (sim["ki"], sim["opc"], a.profile.ki, a.profile.opc):
                assert (secret.encode() if isinstance(secret, str) else secret) not in on_disk
        finally:
            await link.stop()
    run(body())
    assert "ki" not in (tmp_path / "cloud" / "events.jsonl").read_text().lower().replace("kind", "")


def test_throttled_sim_is_never_assigned_again(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                              tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            first = await link.request_assignment("boot", timeout=10)
            await link.report_assignment_result(first.assignment_id, True, "attached")
            await link.emit("health", events.health("throttled", first.profile.iccid))
            await until(lambda: cloud.totals()[first.profile.iccid]["throttled"])
            for _ in range(3):
                nxt = await link.request_assignment("throttled", timeout=10)
                assert nxt.profile.iccid != first.profile.iccid
                await link.report_assignment_result(nxt.assignment_id, False, "attach failed")
                await until(lambda: not cloud.swaps)
        finally:
            await link.stop()
    run(body())


def test_admission_control_answers_retry_after_and_the_device_honours_it(
        broker: Broker, pki: LabPki, make_cloud: Callable[..., ReferenceCloud], tmp_path: Path) -> None:
    cloud = make_cloud(max_concurrent_swaps=1, retry_after=0.3)

    async def body() -> None:
        a = CloudLink(device_config(pki, broker, "dev-a"), state_dir=tmp_path / "a")
        b = CloudLink(device_config(pki, broker, "dev-b"), state_dir=tmp_path / "b")
        await a.start()
        await b.start()
        try:
            got_a = await a.request_assignment("boot", timeout=10)
            task = asyncio.create_task(b.request_assignment("boot", timeout=10))
            await until(lambda: sum(1 for e in cloud.events() if e["device"] == "dev-b"
                                    and e["kind"] == "assign/request") >= 2)  # refused once, asked again
            assert not task.done()
            await a.report_assignment_result(got_a.assignment_id, True, "attached")
            got_b = await task
            assert got_b.profile.iccid != got_a.profile.iccid
        finally:
            await a.stop()
            await b.stop()
    run(body())


def test_malformed_oversized_and_stale_inbound_are_rejected_and_reported(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    got: list[Command] = []
    policies: list[dict[str, Any]] = []

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_command(got.append)
        link.on_policy(policies.append)
        await link.start()
        try:
            assert await link.wait_connected(5)
            client = cloud._client
            assert client is not None
            for payload in (b"{nope", b'{"v":1,"pad":"' + b"x" * (MAX_MESSAGE_BYTES + 100) + b'"}', b'{"v":9}',
                            b'{"v":1,"command_id":"c0","action":"explode"}',
                            b'{"v":1,"command_id":"c-old","action":"report","expires_at":1000}'):
                client.publish("pw/v1/dev-a/command", payload, qos=1)
            good = {"command_id": "c1", "action": "swap", "window": {"not_before": 1, "not_after": 2}}
            cloud.send_command("dev-a", good)
            cloud.send_command("dev-a", good)  # a QoS 1 redelivery
            cloud.set_policy("dev-a", {"version": 3, "swap_below_bytes": 200_000_000})
            await until(lambda: len(got) == 1 and len(policies) == 1)
            await until(lambda: len(errors(cloud)) >= 5)
            assert link.connected
        finally:
            await link.stop()
    run(body())
    assert [c.command_id for c in got] == ["c1"]
    assert policies[0]["version"] == 3
    reasons = sorted(e["reason"] for e in errors(cloud))
    assert reasons == ["expired", "malformed", "oversized", "schema", "version"]
    assert all(e["topic"] == "pw/v1/dev-a/command" for e in errors(cloud))


def test_link_follows_the_data_link(broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            link.set_network_available(False)
            await until(lambda: not link.connected)
            attempts = link.stats.attempts
            await link.emit("outage", events.outage("radio"))
            await asyncio.sleep(0.5)  # a window in which a hammering client would have retried
            assert link.stats.attempts == attempts and len(link.events) == 1
            link.set_network_available(True)
            await until(lambda: len(link.events) == 0)
        finally:
            await link.stop()
    run(body())
    assert "outage" in kinds(cloud)


def test_watchdog_rebuilds_a_client_when_nothing_arrives(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                         tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker, watchdog_idle=1.0), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            os.kill(broker.proc.pid, signal.SIGSTOP)  # alive to TCP, answers nothing
            try:
                await until(lambda: link.stats.rebuilds >= 1, 5)
            finally:
                os.kill(broker.proc.pid, signal.SIGCONT)
            await until(lambda: link.connected, 10)
            await link.emit("health", events.health("ok"))
            await until(lambda: len(link.events) == 0, 10)
        finally:
            await link.stop()
    run(body())


def test_no_assignment_when_cloud_absent_times_out_cleanly(broker: Broker, pki: LabPki, tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker, request_attempt=0.3), state_dir=tmp_path / "agent")
        await link.start()
        try:
            with pytest.raises(AssignmentUnavailable) as err:
                await link.request_assignment("boot", timeout=1.0)
            assert err.value.reason == "timeout" and link.connected
        finally:
            await link.stop()
    run(body())


def test_a_flood_of_bad_messages_is_rate_limited_upstream(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                          tmp_path: Path) -> None:
    from agent.cloud.inbox import ERROR_EVENTS_PER_WINDOW
    got: list[Command] = []

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_command(got.append)
        await link.start()
        try:
            assert await link.wait_connected(5)
            assert cloud._client is not None
            for i in range(200):
                cloud._client.publish("pw/v1/dev-a/command", b"garbage %d" % i, qos=1)
            cloud.send_command("dev-a", {"command_id": "after-flood", "action": "report"})
            await until(lambda: len(got) == 1, 15)
            assert link.stats.rejected == 200 and link.connected
            await until(lambda: len(link.events) == 0)
        finally:
            await link.stop()
    run(body())
    assert len(errors(cloud)) == ERROR_EVENTS_PER_WINDOW


class ListSource:
    """A ReliableSource in memory, like the usage journal: the link must not care which."""

    stream = "usage"

    def __init__(self, records: list[tuple[int, dict[str, Any]]]):
        self.records = records
        self.acked = 0

    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return [r for r in self.records if r[0] > self.acked][:limit]

    def ack(self, upto: int) -> None:
        self.acked = max(self.acked, upto)


def test_an_unsendable_record_does_not_block_its_stream(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                       tmp_path: Path) -> None:
    huge = {**usage(2), "start": "x" * (MAX_MESSAGE_BYTES + 10)}
    source = ListSource([(1, usage(1)), (2, huge), (3, usage(3)), (4, {**usage(4), "rx_bytes": -5})])

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent", sources=[source])
        await link.start()
        try:
            await until(lambda: source.acked == 4)
        finally:
            await link.stop()
    run(body())
    rejected = [e["body"] for e in cloud.events() if e["kind"] == "rejected"]
    assert [r["seq"] for r in rejected] == [2, 4] and rejected[0]["reason"] == "device"
    assert cloud.totals()[ICCID]["rx_bytes"] == usage(1)["rx_bytes"] + usage(3)["rx_bytes"]


def test_records_dropped_by_a_full_outbox_show_as_a_gap(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                       tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.events.max_records = 3
        link.set_network_available(False)
        await link.start()
        try:
            for i in range(6):
                await link.emit("health", events.health(STATES[i], ICCID))
            assert link.events.dropped == 3
            link.set_network_available(True)
            await until(lambda: len(link.events) == 0)
        finally:
            await link.stop()
    run(body())
    assert cloud.gaps == 3 and stream_state(cloud, "event").upto == 6
    assert [e["body"]["body"]["data"]["state"] for e in cloud.events() if e["kind"] == "health"] == list(STATES[3:6])

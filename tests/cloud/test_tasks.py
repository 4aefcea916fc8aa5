"""No task without an owner: kept while it runs, its crash logged, cancelled on stop.

Unit tests for agent.cloud.tasks (the inbox's callbacks: test_inbox.py), then the real
link against mosquitto: an async command callback still running when the link stops is
cancelled, and nothing of the link is left pending.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.cloud.link import CloudLink
from agent.cloud.tasks import TaskOwner
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run

DEVICE = "dev-a"


async def forever(started: asyncio.Event, cancelled: list[bool]) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(True)
        raise


def test_owner_keeps_a_task_and_cancels_it_on_stop() -> None:
    async def body() -> None:
        owner = TaskOwner("t")
        started, cancelled = asyncio.Event(), []
        task = owner.spawn(forever(started, cancelled), "forever")
        await started.wait()
        assert owner.pending() == [task] and task.get_name() == "t-forever"
        await owner.stop()
        assert cancelled == [True] and task.cancelled() and owner.pending() == []
    run(body())


def test_owner_logs_a_crash_when_it_happens_and_forgets_the_task(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> None:
        raise ValueError("boom")

    async def body() -> None:
        owner = TaskOwner("t")
        task = owner.spawn(crash(), "crash")
        await asyncio.wait([task])
        await asyncio.sleep(0)  # done callbacks run on the next loop pass
        assert owner.pending() == []
    with caplog.at_level(logging.ERROR, logger="agent.cloud.tasks"):
        run(body())
    crashed = [r for r in caplog.records if "t-crash crashed" in r.getMessage()]
    assert crashed and crashed[0].exc_info is not None and "boom" in str(crashed[0].exc_info[1])


def test_stopping_the_link_leaves_no_pending_task(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                 tmp_path: Path) -> None:
    async def body() -> None:
        before = asyncio.all_tasks()  # this test's own
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        started, cancelled = asyncio.Event(), []
        link.on_command(lambda cmd: forever(started, cancelled))
        await link.start()
        try:
            assert await link.wait_connected(5)
            assert len(link.pending_tasks()) == 2, "the reconnect loop and the watchdog"
            cloud.send_command(DEVICE, {"command_id": "c1", "action": "report"})
            await asyncio.wait_for(started.wait(), 5)
            assert len(link.pending_tasks()) == 3
        finally:
            await link.stop()
        assert cancelled == [True]
        assert link.pending_tasks() == []
        left = asyncio.all_tasks() - before
        assert left == set(), f"tasks left behind: {left}"
    run(body())

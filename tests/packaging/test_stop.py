"""The stop contract inside one process: the supervisor's life cycle with a stand-in start-up.

A stop signal ends the daemon in any phase, start-up included, with exit code 0 and
STOPPING=1; giving up always stops the daemon, whatever else fails while the failure is
recorded. The same contract on the real process, the virtual modem and a real broker, phase
by phase, is tests/integration/test_stop_phases.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from agent.core import supervisor as supervisor_mod
from agent.core.exitcodes import ExitCode
from agent.core.failure import GiveUp
from agent.core.status import StatusFile
from agent.core.supervisor import Supervisor
from tests.packaging.test_exit_codes import supervisor

RUN_BOUND_S = 10.0
"""Outer bound on one ``run()``: a test that hangs fails here instead of hanging the suite."""


class Hooks:
    """The service-manager hooks (agent/sdnotify.py ProgressWatchdog), recorded."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.serving_now = asyncio.Event()

    def serving(self, status: str | None = None) -> None:
        self.said.append("READY")
        self.serving_now.set()

    def mark(self) -> None:
        pass

    def stopping(self, status: str | None = None) -> None:
        self.said.append("STOPPING")


class BreakableStatus(StatusFile):
    """A status file whose writes start failing on demand (a full or read-only /run)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.broken = False

    def write(self) -> None:
        if self.broken:
            raise OSError(errno.ENOSPC, "No space left on device")


def with_hooks(tmp_path: Path) -> tuple[Supervisor, Hooks]:
    sup = supervisor(tmp_path)
    hooks = Hooks()
    sup.watchdog = hooks  # type: ignore[assignment]
    return sup, hooks


def test_sigterm_while_start_up_waits_cancels_it_and_exits_0(tmp_path: Path) -> None:
    """Issue 28, finding 5: the stop used to wait until start-up ended on its own (a
    registration timeout of 90 s, an assignment timeout of 120 s)."""
    sup, hooks = with_hooks(tmp_path)
    unwound: list[str] = []

    async def start() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # systemctl stop, while start-up waits below
            await asyncio.Event().wait()  # a registration that never comes
        finally:
            unwound.append("start")

    sup._start = start  # type: ignore[method-assign]
    code = asyncio.run(asyncio.wait_for(sup.run(), RUN_BOUND_S))
    # The start-up above waits forever: returning at all, with it unwound, is the stop
    # cancelling it (no wall-clock bound; the stop's time is the integration test's figure).
    assert code == ExitCode.OK
    assert unwound == ["start"]
    assert hooks.said == ["STOPPING"]  # never READY: it never served


def test_a_stop_signal_before_the_loop_stops_without_starting(tmp_path: Path) -> None:
    """A SIGTERM that run.py caught before the supervisor's handlers existed is honoured
    at once: nothing is opened, exit 0, STOPPING=1."""
    sup, hooks = with_hooks(tmp_path)
    started: list[str] = []

    async def start() -> None:
        started.append("start")

    sup._start = start  # type: ignore[method-assign]
    code = asyncio.run(asyncio.wait_for(sup.run(stopped_before=lambda: "SIGTERM"), RUN_BOUND_S))
    assert (code, started, hooks.said) == (ExitCode.OK, [], ["STOPPING"])


def test_a_start_up_that_swallows_its_cancellation_does_not_hold_the_stop(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A step that catches the cancellation (a bug) is left behind after START_CANCEL_S:
    the shutdown goes on and the stop keeps its budget."""
    sup, hooks = with_hooks(tmp_path)
    release = asyncio.Event()

    async def start() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # the bug: cancellation swallowed

    async def body() -> int:
        run = asyncio.get_running_loop().create_task(sup.run())
        done, _ = await asyncio.wait({run}, timeout=RUN_BOUND_S)
        release.set()  # let the stray start-up end so the loop can close
        if not done:  # (not wait_for: cancelling a run() whose start-up swallows it would hang)
            run.cancel()
            raise AssertionError("run() did not return while start-up ignored its cancellation")
        return run.result()

    sup._start = start  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="agent.core.supervisor"):
        t0 = time.monotonic()
        assert asyncio.run(asyncio.wait_for(body(), RUN_BOUND_S)) == ExitCode.OK
        waited = time.monotonic() - t0
    # run() returned while the start-up still ignored its cancellation (body() releases it
    # only afterwards): the stop was not held. The start-up got its grace first; a lower
    # bound, which a loaded machine can only lengthen.
    assert f"start-up did not unwind within {supervisor_mod.START_CANCEL_S:.1f} s" in caplog.text
    assert waited >= supervisor_mod.START_CANCEL_S
    assert hooks.said == ["STOPPING"]


def test_a_status_write_that_fails_while_giving_up_still_stops_the_daemon(tmp_path: Path) -> None:
    """Issue 20, finding 13: a task dies while the status file cannot be written; the
    give-up path raised on its own status write before it stopped the daemon, which then
    ran on without the dead task. Now it stops with the dead task's exit code."""
    sup, hooks = with_hooks(tmp_path)
    status = BreakableStatus()
    sup.status = sup.give_up.status = status

    async def start() -> None:
        async def status_task() -> None:
            await hooks.serving_now.wait()
            status.broken = True  # /run filled up while serving
            status.update(state="serving")  # the status loop's next write: the task dies

        sup.spawn(status_task(), "status")

    sup._start = start  # type: ignore[method-assign]
    code = asyncio.run(asyncio.wait_for(sup.run(), RUN_BOUND_S))
    assert code == ExitCode.STATE_IO  # ENOSPC while serving: restarted, with the growing delay
    assert sup.give_up.reason is not None and "No space left" in sup.give_up.reason
    assert hooks.said == ["READY", "STOPPING"]


def test_giving_up_does_not_raise_when_the_status_file_cannot_be_written() -> None:
    status = BreakableStatus()
    status.broken = True
    give_up = GiveUp(status)
    give_up(ExitCode.MODEM_LOST, "modem: gone")
    assert (give_up.code, give_up.reason) == (ExitCode.MODEM_LOST, "modem: gone")


def test_a_stop_signal_during_imports_is_remembered_not_fatal() -> None:
    """Before the supervisor's loop exists, SIGTERM's default action would kill the agent
    (exit by signal, journal not flushed); run.py's EarlyStop keeps it for the supervisor."""
    from agent.faces.cli.run import EarlyStop

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    early = EarlyStop()
    try:
        early.install()
        os.kill(os.getpid(), signal.SIGTERM)  # handled between two bytecodes, on this thread
        assert early.signal == "SIGTERM"
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)

"""The agent's growing delay before a restartable exit (agent/respawn.py): an unattended
router keeps retrying forever, 5 s doubling to 5 min, and a stop request ends the wait."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pytest_mock import MockerFixture

from agent import respawn
from agent.core.exitcodes import ExitCode


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, **fields: Any) -> bool:
        self.sent.append(fields)
        return True


def top(low: float, high: float) -> float:
    return high


def test_delay_doubles_from_five_seconds_to_five_minutes_and_stays() -> None:
    steps = [respawn.delay_s(n, top) for n in range(1, 10)]
    assert steps[:7] == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    assert steps[7:] == [300.0, 300.0]  # never gives up, never waits longer
    assert respawn.delay_s(3, lambda low, high: low) == 10.0  # jitter keeps half the step at least


def test_streak_counts_failures_in_a_row_and_starts_again(tmp_path: Path) -> None:
    streak = respawn.Streak(tmp_path)
    assert [streak.record(ExitCode.MODEM_LOST, None) for _ in range(3)] == [1, 2, 3]
    assert streak.record(ExitCode.MODEM_LOST, served_s=respawn.STABLE_S - 1) == 4  # flapping: still growing
    assert streak.record(ExitCode.MODEM_LOST, served_s=respawn.STABLE_S) == 1  # served long enough
    assert streak.record(ExitCode.OK, None) == 0
    assert (tmp_path / respawn.STATE_FILE).stat().st_mode & 0o777 == 0o600


def test_no_wait_for_what_is_not_restarted(tmp_path: Path) -> None:
    """Codes nobody restarts return at once: the wait pings the watchdog before each of its
    slices, so no ping at all means no slice was waited (no wall-clock bound needed)."""
    notifier = FakeNotifier()
    for code in (ExitCode.OK, ExitCode.CONFIG_INVALID, ExitCode.STATE_UNWRITABLE):
        assert respawn.wait_before_exit(code, "x", state_dir=tmp_path, served_s=None,
                                        notifier=notifier) == code  # type: ignore[arg-type]
    assert notifier.sent == []


class SlicedTime:
    """The wait's clock, moved only by its slices: ``time.monotonic`` for respawn, and a
    stop event whose ``wait(s)`` advances the clock by ``s`` and reports no stop. The
    pings per slice and the delays they state are then exact, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False

    def set(self) -> None:  # a stop signal: not sent in this test
        raise AssertionError("no stop was asked for")


def test_waits_pinging_the_watchdog_with_the_reason(tmp_path: Path, mocker: MockerFixture) -> None:
    notifier = FakeNotifier()
    sliced = SlicedTime()
    mocker.patch.object(respawn, "time", sliced)
    mocker.patch.object(respawn, "threading", SimpleNamespace(Event=lambda: sliced))
    code = respawn.wait_before_exit(ExitCode.MODEM_LOST, "PortClosed: /dev/ttyUSB2 gone", state_dir=tmp_path,
                                    served_s=None, notifier=notifier, sleep_slice=0.05,  # type: ignore[arg-type]
                                    rng=lambda low, high: 0.2)
    assert code == ExitCode.MODEM_LOST  # waited the whole delay: the code it exits with
    assert sliced.waits == pytest.approx([0.05] * 4)  # 0.2 s in 0.05 s slices, one ping before each
    assert len(notifier.sent) == 4
    first = notifier.sent[0]
    assert first["WATCHDOG"] == 1 and first["EXTEND_TIMEOUT_USEC"] == int((0.2 + respawn.EXTEND_MARGIN_S) * 1e6)
    assert first["STATUS"] == "retrying in 0 s (attempt 2): PortClosed: /dev/ttyUSB2 gone"
    assert [m["EXTEND_TIMEOUT_USEC"] for m in notifier.sent] == sorted(
        (m["EXTEND_TIMEOUT_USEC"] for m in notifier.sent), reverse=True)  # the extension shrinks as it waits


def test_a_stop_request_ends_the_wait(tmp_path: Path) -> None:
    """SIGTERM during the 30 s wait ends it, and the exit is OK: only a stop returns OK (a
    wait that ran out returns the failure's code), so no wall-clock bound is needed. The
    signal is sent from the first watchdog ping, i.e. once the wait has begun."""
    old = signal.getsignal(signal.SIGTERM)

    class StopOnFirstPing(FakeNotifier):
        def send(self, **fields: Any) -> bool:
            if not self.sent:
                os.kill(os.getpid(), signal.SIGTERM)  # systemctl stop, during the retry delay
            return super().send(**fields)

    notifier = StopOnFirstPing()
    code = respawn.wait_before_exit(ExitCode.FAILURE, "boom", state_dir=tmp_path, served_s=None,
                                    notifier=notifier, sleep_slice=0.05,  # type: ignore[arg-type]
                                    rng=lambda low, high: 30.0)
    assert code == ExitCode.OK
    assert len(notifier.sent) == 1  # ended in its first slice, not after 600 of them
    assert signal.getsignal(signal.SIGTERM) == old  # the handler is put back

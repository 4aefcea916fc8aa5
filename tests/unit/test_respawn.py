"""The agent's growing delay before a restartable exit (agent/respawn.py): an unattended
router keeps retrying forever, 5 s doubling to 5 min, and a stop request ends the wait."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

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
    notifier = FakeNotifier()
    for code in (ExitCode.OK, ExitCode.CONFIG_INVALID, ExitCode.STATE_UNWRITABLE):
        t0 = time.monotonic()
        assert respawn.wait_before_exit(code, "x", state_dir=tmp_path, served_s=None,
                                        notifier=notifier) == code  # type: ignore[arg-type]
        assert time.monotonic() - t0 < 0.5
    assert notifier.sent == []


def test_waits_pinging_the_watchdog_with_the_reason(tmp_path: Path) -> None:
    notifier = FakeNotifier()
    t0 = time.monotonic()
    code = respawn.wait_before_exit(ExitCode.MODEM_LOST, "PortClosed: /dev/ttyUSB2 gone", state_dir=tmp_path,
                                    served_s=None, notifier=notifier, sleep_slice=0.05,  # type: ignore[arg-type]
                                    rng=lambda low, high: 0.2)
    assert code == ExitCode.MODEM_LOST and 0.2 <= time.monotonic() - t0 < 2
    assert len(notifier.sent) >= 3  # one per slice
    first = notifier.sent[0]
    assert first["WATCHDOG"] == 1 and first["EXTEND_TIMEOUT_USEC"] > 0
    assert first["STATUS"].startswith("retrying in ") and "(attempt 2): PortClosed: /dev/ttyUSB2 gone" in first["STATUS"]


def test_a_stop_request_ends_the_wait(tmp_path: Path) -> None:
    notifier = FakeNotifier()
    old = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    code = respawn.wait_before_exit(ExitCode.FAILURE, "boom", state_dir=tmp_path, served_s=None,
                                    notifier=notifier, sleep_slice=0.05,  # type: ignore[arg-type]
                                    rng=lambda low, high: 30.0)
    assert code == ExitCode.OK and time.monotonic() - t0 < 5
    assert signal.getsignal(signal.SIGTERM) == old  # the handler is put back

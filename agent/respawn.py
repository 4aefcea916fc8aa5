"""A growing delay between restarts, kept by the agent: an unattended router never gives up.

Why the agent and not the service manager: the unit must never stop restarting for good
(``StartLimitIntervalSec=0``; a router stranded by a start limit stays offline until
someone power-cycles it), yet a modem that flaps for a quarter of an hour should not be
hammered every 5 s. systemd 254 has ``RestartSteps=``/``RestartMaxDelaySec=`` for exactly
this, but Debian 12 ships 252, and procd's ``respawn`` has one fixed delay. So before a
failing agent exits with a code its service manager restarts, it waits: 5 s after the
first failure in a row, doubling to 5 min (``delay_s``), with the reason in ``STATUS=``
(``systemctl status`` shows "retrying in 80 s (attempt 5): ..."). The count of failures
in a row lives in the state directory (it must outlive the process) and starts again
after a run that served for ``STABLE_S`` or stopped cleanly.

During the wait the process stays the service's main process: it answers the watchdog
(the unit would kill a silent one), extends a start timeout it would otherwise overrun,
and a stop request (SIGTERM, SIGINT) ends the wait at once. Codes a restart cannot fix
(exitcodes.NO_RESTART) exit without waiting: nobody restarts them.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Self

from agent import store
from agent.core.exitcodes import NO_RESTART, ExitCode
from agent.sdnotify import Notifier

LOGGER = logging.getLogger(__name__)

BASE_S = 5.0
"""First delay, on top of the unit's RestartSec=5 (procd: respawn timeout 5): a one-off
failure (a USB re-enumeration) is retried within about 10 s."""
CAP_S = 300.0
"""The longest delay: a modem back after an outage is used again within 5 minutes, and a
router that fails forever costs one start every ~5 minutes (a few KB of log)."""
STABLE_S = 600.0
"""A run that served this long was not part of a failure streak: the count starts again."""
JITTER = 0.5
"""Each delay is drawn between (1 - JITTER) and 1 times the step, so a fleet that failed at
the same instant (a cloud outage) does not come back at the same instant; still growing."""
STATE_FILE = "respawn.json"
"""``{"failures": N}`` in the state directory: the failures in a row so far."""
SLICE_S = 5.0
"""The wait wakes this often to ping the watchdog (WatchdogSec=30 pings every 15 s)."""
EXTEND_MARGIN_S = 30.0
"""Start timeout extension beyond the remaining wait (EXTEND_TIMEOUT_USEC, systemd 236+)."""


def delay_s(failures: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """The wait before exiting after ``failures`` failures in a row (1 = the first)."""
    step = min(CAP_S, BASE_S * 2 ** max(0, failures - 1))
    return rng(step * (1 - JITTER), step)


class Streak:
    """The count of failures in a row, persisted (best effort) in the state directory."""

    def __init__(self, state_dir: Path | str):
        self.path = Path(state_dir) / STATE_FILE

    def count(self) -> int:
        data = store.read_json(self.path, {})
        value = data.get("failures", 0) if isinstance(data, dict) else 0
        return value if isinstance(value, int) and value >= 0 else 0

    def record(self, code: int, served_s: float | None) -> int:
        """Update the count for a run that ended with ``code`` after serving ``served_s``
        seconds (None: never served); returns the new count (0 after a clean stop)."""
        if code == ExitCode.OK:
            failures = 0
        else:
            failures = (0 if served_s is not None and served_s >= STABLE_S else self.count()) + 1
        try:
            store.atomic_write_json(self.path, {"failures": failures})
        except OSError as exc:  # the state directory may be what failed: wait anyway
            LOGGER.warning("cannot keep the restart count in %s: %s", self.path, exc)
        return failures


class StopRequest:
    """SIGTERM/SIGINT during the wait: set an event instead of dying mid-write."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, object] = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def wait_before_exit(code: int, reason: str | None, *, state_dir: Path | str, served_s: float | None,
                     notifier: Notifier, sleep_slice: float = SLICE_S,
                     rng: Callable[[float, float], float] = random.uniform) -> int:
    """Record the run's end and, for a code that will be restarted, wait the growing delay.
    Returns the code to exit with (OK if a stop request ended the wait: it was asked for)."""
    failures = Streak(state_dir).record(code, served_s)
    if code == ExitCode.OK or code in NO_RESTART:
        return code
    delay = delay_s(failures, rng)
    LOGGER.error("exit %d after %d failure(s) in a row: retrying in %.0f s (%s)", code, failures, delay,
                 reason or "see above")
    deadline = time.monotonic() + delay
    with StopRequest() as stop:
        while (left := deadline - time.monotonic()) > 0:
            notifier.send(STATUS=f"retrying in {left:.0f} s (attempt {failures + 1}): {reason or f'exit {code}'}",
                          WATCHDOG=1, EXTEND_TIMEOUT_USEC=int((left + EXTEND_MARGIN_S) * 1e6))
            if stop.event.wait(min(sleep_slice, left)):
                LOGGER.info("stop requested during the retry delay: stopping")
                return ExitCode.OK
    return code

"""The recovery ladder for a modem that stops answering or talks garbage.

Devices in remote places must recover by themselves (domain.md: nobody walks up the
mountain), but a modem that is merely slow must not be power-cycled, and a network
that rejects us must not be hammered: repeated radio off/on cycles make the network
apply its attach back-off (3GPP TS 24.301 T3402, 12 minutes by default) and make the
outage longer. So the ladder climbs from the cheapest step to the most drastic, each
step bounded in attempts and time, with back-off between attempts, and the two steps
that touch the network or the hardware rate-limited:

1. **retry**: probe with ``AT`` a few times (a busy baseband answers late);
2. **reopen** the serial port (a wedged USB CDC-ACM endpoint, a lost fd);
3. **radio** off/on (``+CFUN=4`` then ``+CFUN=1``): a baseband stuck in a radio state;
   at most once per ``RADIO_CYCLE_MIN_INTERVAL``;
4. **power cycle** through the board's reset line (a GPIO, or the virtual modem's
   reset hook), then reopen until the modem answers; at most
   ``POWER_CYCLES_PER_HOUR`` an hour.

Every step is logged and counted; ``counters()`` is what the health report carries.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.clock import Clock
from agent.errors import ModemError

LOGGER = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3
"""AT probes before the port is reopened; three covers a baseband busy for a few s."""
RETRY_BACKOFF = 1.0
"""First pause between probes (s), doubled each time, full jitter (1, 2, 4 s at most)."""
PING_TIMEOUT = 2.0
"""An ``AT`` probe needs no network: 2 s is generous even for a loaded baseband."""
REOPEN_ATTEMPTS = 2
"""Reopen attempts; a USB re-enumeration in progress may need the second one."""
REOPEN_BACKOFF = 2.0
"""Pause before reopening (s): lets a re-enumerating USB device settle."""
RADIO_OFF_SETTLE = 2.0
"""Seconds between radio off and on: the detach must complete (24.301 T3421 is 15 s
but the local detach on +CFUN=4 is immediate; 2 s covers the baseband's own work)."""
RADIO_CYCLE_MIN_INTERVAL = 720.0
"""At most one radio off/on per 12 minutes: the default T3402 attach back-off the
network imposes after repeated attach failures (24.301 §10.2). Cycling faster gains
nothing and marks the device as misbehaving."""
POWER_READY_TIMEOUT = 60.0
"""After a power cycle, how long to keep reopening the port until AT answers (an EC25
boots in ~12 s; USB enumeration and the OS driver add as much again)."""
POWER_REOPEN_INTERVAL = 2.0
"""Pause between reopen tries while the power-cycled modem boots."""
POWER_CYCLES_PER_HOUR = 3
"""Beyond this the modem is declared dead for now: power-cycling a modem with a
hardware fault every few minutes only wears the flash and hides the fault."""
RESET_HOLD = 0.5
"""Seconds the GPIO reset line is held active (Quectel: PWRKEY/RESET_N >= 460 ms)."""

STEPS = ("retry", "reopen", "radio", "power_cycle")

ResetLine = Callable[[], Awaitable[None] | None]
"""Power-cycles the modem: a GPIO toggle on a real board, the virtual modem's hook."""


class Recoverable(Protocol):
    """What the ladder needs of a modem (``agent.modem.driver.Modem`` has it)."""

    async def ping(self, timeout: float | None = None) -> None: ...

    async def reopen(self) -> None: ...

    async def set_radio(self, on: bool) -> None: ...


@dataclass(frozen=True)
class LadderPolicy:
    """The ladder's bounds; the defaults are the module constants above."""

    retry_attempts: int = RETRY_ATTEMPTS
    retry_backoff: float = RETRY_BACKOFF
    ping_timeout: float = PING_TIMEOUT
    reopen_attempts: int = REOPEN_ATTEMPTS
    reopen_backoff: float = REOPEN_BACKOFF
    radio_off_settle: float = RADIO_OFF_SETTLE
    radio_min_interval: float = RADIO_CYCLE_MIN_INTERVAL
    power_ready_timeout: float = POWER_READY_TIMEOUT
    power_reopen_interval: float = POWER_REOPEN_INTERVAL
    power_cycles_per_hour: int = POWER_CYCLES_PER_HOUR


class RecoveryFailed(ModemError):
    """Every allowed step was tried and the modem still does not answer."""


@dataclass
class StepCount:
    attempts: int = 0
    successes: int = 0
    skipped: int = 0


@dataclass
class LadderCounters:
    runs: int = 0
    recovered: int = 0
    failed: int = 0
    steps: dict[str, StepCount] = field(default_factory=lambda: {s: StepCount() for s in STEPS})
    last_step: str | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs, "recovered": self.recovered, "failed": self.failed,
            "last_step": self.last_step, "last_error": self.last_error,
            "steps": {k: vars(v).copy() for k, v in self.steps.items()},
        }


class RecoveryLadder:
    """Climbs the ladder on demand: ``await ladder.recover(cause)``."""

    def __init__(
        self,
        modem: Recoverable,
        reset_line: ResetLine | None = None,
        *,
        policy: LadderPolicy | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.modem = modem
        self.reset_line = reset_line
        self.policy = policy or LadderPolicy()
        self.clock = clock or Clock()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._last_radio_cycle: float | None = None
        self._power_cycles: list[float] = []
        self._lock = asyncio.Lock()
        self.stats = LadderCounters()

    def counters(self) -> dict[str, Any]:
        """Counters for health reports."""
        return self.stats.as_dict()

    async def recover(self, cause: BaseException | None = None) -> str:
        """Climb until the modem answers; return the step that worked, or raise
        ``RecoveryFailed``. Concurrent callers share one climb."""
        async with self._lock:
            self.stats.runs += 1
            LOGGER.warning("modem recovery started (cause: %s)", cause)
            for step in STEPS:
                ok = await getattr(self, f"_step_{step}")()
                if ok:
                    self.stats.recovered += 1
                    self.stats.last_step = step
                    self.stats.steps[step].successes += 1
                    LOGGER.warning("modem recovered by step %r", step)
                    return step
            self.stats.failed += 1
            self.stats.last_step = None
            LOGGER.error("modem recovery failed: every allowed step tried")
            raise RecoveryFailed(f"modem does not answer after recovery (cause: {cause})")

    async def _ping(self) -> bool:
        try:
            await self.modem.ping(timeout=self.policy.ping_timeout)
            return True
        except ModemError as exc:
            return self._failed("probe", exc)

    async def _backoff(self, base: float, attempt: int) -> None:
        """Full jitter: a random pause in [0, base x 2^attempt] (fleet-friendly)."""
        await self._sleep(self._rng.uniform(0, base * (2**attempt)))

    async def _step_retry(self) -> bool:
        for attempt in range(self.policy.retry_attempts):
            self.stats.steps["retry"].attempts += 1
            LOGGER.info("recovery: retry %d/%d", attempt + 1, self.policy.retry_attempts)
            if await self._ping():
                return True
            await self._backoff(self.policy.retry_backoff, attempt)
        return False

    async def _reopen_and_ping(self) -> bool:
        try:
            await self.modem.reopen()
        except ModemError as exc:
            return self._failed("reopen", exc)
        return await self._ping()

    def _failed(self, what: str, exc: ModemError) -> bool:
        """Record a step's error for the health report; False: the step did not recover."""
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        LOGGER.info("%s failed: %s", what, exc)
        return False

    async def _step_reopen(self) -> bool:
        for attempt in range(self.policy.reopen_attempts):
            self.stats.steps["reopen"].attempts += 1
            LOGGER.info("recovery: reopen port %d/%d", attempt + 1, self.policy.reopen_attempts)
            await self._sleep(self.policy.reopen_backoff)
            if await self._reopen_and_ping():
                return True
        return False

    async def _step_radio(self) -> bool:
        now = self.clock.monotonic()
        last = self._last_radio_cycle
        if last is not None and now - last < self.policy.radio_min_interval:
            self.stats.steps["radio"].skipped += 1
            LOGGER.info("recovery: radio cycle skipped (last one %.0f s ago)", now - last)
            return False
        self._last_radio_cycle = now
        self.stats.steps["radio"].attempts += 1
        LOGGER.info("recovery: radio off/on")
        try:
            await self.modem.set_radio(False)
            await self._sleep(self.policy.radio_off_settle)
            await self.modem.set_radio(True)
        except ModemError as exc:
            return self._failed("radio cycle", exc)
        return await self._ping()

    async def _step_power_cycle(self) -> bool:
        if self.reset_line is None:
            self.stats.steps["power_cycle"].skipped += 1
            LOGGER.info("recovery: no reset line on this board")
            return False
        now = self.clock.monotonic()
        self._power_cycles = [t for t in self._power_cycles if now - t < 3600]
        if len(self._power_cycles) >= self.policy.power_cycles_per_hour:
            self.stats.steps["power_cycle"].skipped += 1
            LOGGER.error("recovery: %d power cycles in the last hour; not another", len(self._power_cycles))
            return False
        self._power_cycles.append(now)
        self.stats.steps["power_cycle"].attempts += 1
        LOGGER.warning("recovery: power-cycling the modem through the reset line")
        result = self.reset_line()
        if inspect.isawaitable(result):
            await result
        deadline = self.clock.monotonic() + self.policy.power_ready_timeout
        while self.clock.monotonic() < deadline:
            await self._sleep(self.policy.power_reopen_interval)
            if await self._reopen_and_ping():
                return True
        return False


def gpio_reset_line(
    value_path: str | Path,
    *,
    active_low: bool = True,
    hold: float = RESET_HOLD,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ResetLine:
    """A reset line on a sysfs GPIO ``value`` file: assert, hold, release."""
    path = Path(value_path)
    on, off = (b"0", b"1") if active_low else (b"1", b"0")

    async def pulse() -> None:
        try:
            path.write_bytes(on)
            await sleep(hold)
            path.write_bytes(off)
        except OSError as exc:
            raise ModemError(f"reset line {path} not writable: {exc}") from exc

    return pulse


def reset_line_from_profile(spec: dict[str, Any]) -> ResetLine | None:
    """The board profile's ``reset_line`` table -> a callable (None for kind "none")."""
    kind = spec.get("kind", "none")
    if kind == "gpio":
        return gpio_reset_line(spec["path"], active_low=bool(spec.get("active_low", True)))
    return None

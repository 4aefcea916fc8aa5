"""The recovery ladder with a modem driver autospecced from ``Modem`` (its behaviour from
``HealingModem``), a fake clock and a recorded sleep."""

from __future__ import annotations

import random
from typing import Any
from unittest.mock import create_autospec

import pytest

from agent.clock import FakeClock
from agent.errors import AtTimeout, ModemError, PortClosed
from agent.modem.driver import Modem
from agent.modem.recovery import LadderPolicy, RecoveryFailed, RecoveryLadder, gpio_reset_line
from tests.unit.at_fakes import async_test


class HealingModem:
    """How the modem behaves: answers ``AT`` once ``healed_by`` has happened; records every
    call. The ladder never sees it directly: ``ladder_for`` hands it ``driver_for``'s
    autospecced ``Modem``, so a call the real driver would refuse fails the test."""

    def __init__(self, healed_by: str | None, clock: FakeClock, fail_pings: int = 0):
        self.healed_by = healed_by
        self.healthy = healed_by is None
        self.fail_pings = fail_pings
        self.calls: list[str] = []
        self.clock = clock

    async def ping(self, timeout: float | None = None) -> None:
        self.calls.append("ping")
        if self.fail_pings > 0:
            self.fail_pings -= 1
            raise AtTimeout("AT: no answer", command="AT")
        if not self.healthy:
            raise AtTimeout("AT: no answer", command="AT")

    async def reopen(self) -> None:
        self.calls.append("reopen")
        if self.healed_by == "reopen":
            self.healthy = True

    async def set_radio(self, on: bool) -> None:
        self.calls.append(f"radio {'on' if on else 'off'}")
        if not self.healthy and self.healed_by != "radio":
            raise AtTimeout("AT+CFUN: no answer")
        if on and self.healed_by == "radio":
            self.healthy = True

    def power(self) -> None:
        self.calls.append("power")
        if self.healed_by == "power_cycle":
            self.healthy = True


def driver_for(modem: HealingModem) -> Any:
    """The real driver's interface (``create_autospec(Modem, instance=True)``), behaving as ``modem``."""
    driver = create_autospec(Modem, instance=True)
    driver.ping.side_effect = modem.ping
    driver.reopen.side_effect = modem.reopen
    driver.set_radio.side_effect = modem.set_radio
    return driver


def ladder_for(modem: HealingModem, clock: FakeClock, reset: bool = True,
               **policy: float) -> tuple[RecoveryLadder, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    ladder = RecoveryLadder(
        driver_for(modem), modem.power if reset else None, policy=LadderPolicy(**policy),  # type: ignore[arg-type]
        clock=clock, sleep=sleep, rng=random.Random(1),
    )
    return ladder, slept


@pytest.mark.parametrize("healer", ["retry", "reopen", "radio", "power_cycle"])
@async_test
async def test_each_rung_is_tried_in_order_and_stops_at_the_one_that_works(healer: str) -> None:
    clock = FakeClock()
    modem = HealingModem(None if healer == "retry" else healer, clock, fail_pings=1 if healer == "retry" else 0)
    ladder, _ = ladder_for(modem, clock)
    assert await ladder.recover(AtTimeout("x")) == healer
    c = ladder.counters()
    assert c["recovered"] == 1 and c["last_step"] == healer
    assert c["steps"][healer]["successes"] == 1
    order = ["retry", "reopen", "radio", "power_cycle"]
    for later in order[order.index(healer) + 1:]:
        assert c["steps"][later]["attempts"] == 0


@async_test
async def test_attempts_are_bounded_and_backoff_grows_with_jitter() -> None:
    clock = FakeClock()
    modem = HealingModem("never", clock)
    ladder, slept = ladder_for(modem, clock, power_ready_timeout=10.0, power_reopen_interval=2.0)
    with pytest.raises(RecoveryFailed):
        await ladder.recover(PortClosed("gone"))
    c = ladder.counters()
    assert c["steps"]["retry"]["attempts"] == 3
    assert c["steps"]["reopen"]["attempts"] == 2
    assert c["steps"]["radio"]["attempts"] == 1
    assert c["steps"]["power_cycle"]["attempts"] == 1
    assert c["failed"] == 1 and c["last_error"]
    retry_pauses = slept[:3]
    assert all(0 <= p <= 1.0 * 2**i for i, p in enumerate(retry_pauses))
    assert len(set(retry_pauses)) == 3  # jittered, not a fixed beat
    assert modem.calls.count("power") == 1
    assert modem.calls.count("reopen") == 2 + 5  # two reopen rungs + 10 s / 2 s after power


@async_test
async def test_radio_cycle_is_rate_limited_by_the_attach_backoff() -> None:
    clock = FakeClock()
    modem = HealingModem("radio", clock)
    ladder, _ = ladder_for(modem, clock)
    assert await ladder.recover() == "radio"
    modem.healthy = False
    modem.healed_by = "power_cycle"
    assert await ladder.recover() == "power_cycle"
    assert ladder.counters()["steps"]["radio"]["skipped"] == 1
    clock.advance(721)
    modem.healthy = False
    modem.healed_by = "radio"
    assert await ladder.recover() == "radio"


@async_test
async def test_power_cycles_are_capped_per_hour() -> None:
    clock = FakeClock()
    modem = HealingModem("power_cycle", clock)
    ladder, _ = ladder_for(modem, clock, power_cycles_per_hour=2)
    for _ in range(2):
        modem.healthy = False
        assert await ladder.recover() == "power_cycle"
    modem.healthy = False
    with pytest.raises(RecoveryFailed):
        await ladder.recover()
    assert ladder.counters()["steps"]["power_cycle"]["skipped"] == 1
    clock.advance(3600)
    assert await ladder.recover() == "power_cycle"


@async_test
async def test_no_reset_line_means_the_last_rung_is_skipped() -> None:
    clock = FakeClock()
    modem = HealingModem("power_cycle", clock)
    ladder, _ = ladder_for(modem, clock, reset=False)
    with pytest.raises(RecoveryFailed):
        await ladder.recover()
    assert ladder.counters()["steps"]["power_cycle"]["skipped"] == 1
    assert "power" not in modem.calls


@async_test
async def test_gpio_reset_line_pulses_active_low(tmp_path) -> None:  # type: ignore[no-untyped-def]
    value = tmp_path / "value"
    value.write_bytes(b"1")
    during: list[tuple[float, bytes]] = []

    async def sleep(seconds: float) -> None:
        during.append((seconds, value.read_bytes()))

    await gpio_reset_line(value, hold=0.5, sleep=sleep)()
    assert during == [(0.5, b"0")]  # held low for the hold time
    assert value.read_bytes() == b"1"  # released again
    with pytest.raises(ModemError):
        await gpio_reset_line(tmp_path / "nope" / "value", sleep=sleep)()

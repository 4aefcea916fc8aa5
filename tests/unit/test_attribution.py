"""Issue 10, billing to the right place: regions from the serving network's MCC, usage
held while the clock is untrusted billed to the SIM that carried it, the plan's zone,
and a clock that is trusted only when a source vouched for it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent import clock as clock_mod
from agent.clock import JST, Clock, FakeClock
from agent.usage.calendar import plan_tz
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=JST).timestamp()
SIM_A = ("8981000000000000001", "440101234567890", "440")
SIM_B = ("8981000000000000002", "440109876543210", "440")


def c(rx: int, tx: int) -> Counters:
    return Counters(7, rx, tx, 0, 0)


def test_roaming_mcc_change_mid_day_splits_the_days_regions(tmp_path: Path) -> None:
    clock = FakeClock(epoch=NOON)
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    journal = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=3600)
    meter.set_active_sim(*SIM_A)
    meter.set_serving_mcc("440")  # at home in Japan
    journal.add(meter.sample(c(0, 0)), c(0, 0), clock.wall())  # the baseline
    rx = 0
    for step in range(1, 7):
        if step == 4:
            meter.set_serving_mcc("310")  # the border: roaming in the US the same JST day
        clock.advance(60)
        rx += 1000 * step
        journal.add(meter.sample(c(rx, 10 * step)), meter.baseline() or c(rx, 0), clock.wall())
    journal.flush("test")
    bodies = [b for _, b in journal.pending(10)]
    by_region = {tuple(b["mcc"]): (b["day"], b["rx_bytes"]) for b in bodies}
    assert by_region == {("440",): ("2026-03-10", 1000 + 2000 + 3000), ("310",): ("2026-03-10", 4000 + 5000 + 6000)}
    journal.close()


def test_unknown_serving_network_falls_back_to_the_home_mcc() -> None:
    clock = FakeClock(epoch=NOON)
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    meter.set_active_sim(*SIM_A)
    meter.sample(c(0, 0))
    clock.advance(1)
    (d,) = meter.sample(c(500, 0))
    assert d.mcc == "440"


def test_usage_held_while_the_clock_is_untrusted_is_billed_to_the_sim_that_carried_it() -> None:
    clock = FakeClock(epoch=NOON, trusted=False)  # plausible year, but nothing vouched yet
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    meter.set_active_sim(*SIM_A)
    meter.sample(c(0, 0))
    clock.advance(30)
    assert meter.sample(c(7000, 700)) == []  # held, not dated
    baseline = meter.baseline()
    assert baseline is not None and baseline.rx_bytes == 0  # the durable baseline does not move past held bytes
    meter.set_active_sim(*SIM_B)  # a swap while the clock is still untrusted (sampled just before)
    clock.advance(30)
    assert meter.sample(c(10000, 1000)) == []
    assert meter.held_bytes == 11000
    clock.vouch("network", NOON + 60 + 5)  # +CCLK: the network's time (5 s ahead of the RTC)
    clock.advance(10)
    deltas = meter.sample(c(10500, 1000))
    per_sim = {}
    for d in deltas:
        rx, tx = per_sim.get(d.iccid, (0, 0))
        per_sim[d.iccid] = (rx + d.rx_bytes, tx + d.tx_bytes)
    assert per_sim == {SIM_A[0]: (7000, 700), SIM_B[0]: (3000 + 500, 300)}
    a = next(d for d in deltas if d.iccid == SIM_A[0])
    # dated by the monotonic age (absolute tolerance: approx's default 1e-6 of an epoch is half an hour)
    assert a.start == pytest.approx(NOON + 5, abs=1e-3) and a.end == pytest.approx(NOON + 35, abs=1e-3)
    assert meter.held_bytes == 0 and meter.baseline() is not None and meter.baseline().rx_bytes == 10500  # type: ignore[union-attr]


def test_plan_time_zone_comes_from_the_assignments_plan() -> None:
    assert plan_tz({"plan": {"tz": "+08:00"}}, "+09:00") == timezone(timedelta(hours=8))
    assert plan_tz({"plan": {}}, "+09:00") == JST
    assert plan_tz({"plan": {"tz": "Tokyo"}}, "+07:00") == timezone(timedelta(hours=7))  # bad: logged, default
    clock = FakeClock(epoch=datetime(2026, 3, 10, 23, 30, tzinfo=JST).timestamp())
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    meter.set_active_sim(*SIM_A)
    meter.set_plan_tz(plan_tz({"plan": {"tz": "+08:00"}}, None))
    meter.sample(c(0, 0))
    clock.advance(60)
    (d,) = meter.sample(c(100, 0))
    assert (d.day, d.tz) == ("2026-03-10", "+08:00")  # 22:31 in the plan's zone, not the next JST day


def test_a_plausible_year_alone_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_mod, "kernel_ntp_synced", lambda: False)
    assert Clock().trusted_by == "system"  # a tool with no source: the plausible year, as before
    clk = Clock(strict=True)  # the daemon's clock
    assert clk.wall() > clock_mod.PLAUSIBLE_EPOCH and not clk.wall_trusted()
    clk.vouch("network", 1000.0)  # a modem with a 1970 clock: refused
    assert not clk.wall_trusted()
    truth = clk.wall() + 3600  # the system clock is an hour slow
    clk.vouch("network", truth)
    assert clk.wall_trusted() and clk.trusted_by == "network" and abs(clk.wall() - truth) < 1
    with pytest.raises(ValueError):
        clk.vouch("gps")


def test_ntp_synchronised_kernel_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_mod, "kernel_ntp_synced", lambda: True)
    assert Clock(strict=True).trusted_by == "ntp"
    assert isinstance(clock_mod.kernel_ntp_synced(), bool)


@pytest.mark.parametrize("trusted", [None, False, True])
@pytest.mark.parametrize("epoch", [1000.0, clock_mod.PLAUSIBLE_EPOCH - 1, clock_mod.PLAUSIBLE_EPOCH, NOON])
@pytest.mark.parametrize("vouched", [None, 1000.0, NOON + 30, "system"])
def test_fake_clock_trusts_exactly_what_the_real_clock_would(monkeypatch: pytest.MonkeyPatch, trusted: bool | None,
                                                           epoch: float, vouched: float | str | None) -> None:
    """Issue 21: FakeClock once trusted any date it was told to, so a test could pass on a
    date the daemon's clock would refuse. It now runs Clock's own rule: the same system
    time, kernel NTP state and vouching give the same answer as a real Clock (the oracle),
    whichever way the fake was configured."""
    real = Clock(strict=trusted is not None)
    monkeypatch.setattr(real, "_system_wall", lambda: epoch)
    monkeypatch.setattr(clock_mod, "kernel_ntp_synced", lambda: trusted is True)
    fake = FakeClock(epoch=epoch, trusted=trusted)
    for clk in (real, fake):
        if vouched == "system":
            clk.vouch("cloud")  # the system clock is right, says the cloud
        elif vouched is not None:
            clk.vouch("network", vouched)
    assert (fake.wall_trusted(), fake.trusted_by, fake.wall()) == (real.wall_trusted(), real.trusted_by, real.wall())
    if epoch < clock_mod.PLAUSIBLE_EPOCH and vouched in (None, "system", 1000.0):
        assert not fake.wall_trusted()  # a 1970 date is never trusted, whatever the fake was told


def test_usage_held_over_several_samples_is_billed_whole_both_ways() -> None:
    """Issue 29 #8: several readings while the clock is untrusted, on one SIM in one region,
    are held as one interval whose bytes are the sum of every reading's, down and up alike,
    and billed whole once a source vouches for the time."""
    clock = FakeClock(epoch=NOON, trusted=False)
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    meter.set_active_sim(*SIM_A)
    meter.sample(c(0, 0))
    readings = [(4000, 400), (9000, 1300), (9500, 1400), (20_000, 1500)]  # four seconds of use
    for rx, tx in readings:
        clock.advance(1)
        assert meter.sample(c(rx, tx)) == []  # held, not dated
    assert meter.held_bytes == 20_000 + 1500
    clock.vouch("network", NOON + 4)
    clock.advance(1)
    deltas = meter.sample(c(20_000, 1500))  # nothing new: only what was held comes out
    assert [(d.iccid, d.rx_bytes, d.tx_bytes) for d in deltas] == [(SIM_A[0], 20_000, 1500)]
    # from the first reading to the last (absolute tolerance: the default is relative, 30 min here)
    assert deltas[0].start == pytest.approx(NOON, abs=1e-3) and deltas[0].end == pytest.approx(NOON + 4, abs=1e-3)

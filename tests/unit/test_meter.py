"""UsageMeter: counter readings in, exact IP-level per-SIM per-day deltas out."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clock import JST, FakeClock
from agent.usage.counters import Counters
from agent.usage.meter import MAX_LINK_RATE_BPS, UsageMeter

MIDNIGHT = datetime(2026, 2, 1, tzinfo=JST).timestamp()  # also a month boundary
BOOT = "boot-a"


def c(rxb: int, txb: int, rxp: int = 0, txp: int = 0, ifindex: int = 3) -> Counters:
    return Counters(ifindex, rxb, txb, rxp, txp)


def make(clock: FakeClock, header: int = 0, boot: str = BOOT) -> UsageMeter:
    meter = UsageMeter(clock, header_bytes=header, boot_id=boot)
    meter.set_active_sim("8981000000000000001", "440101234567890", "440")
    return meter


def totals(deltas) -> tuple[int, int]:
    return sum(d.rx_bytes for d in deltas), sum(d.tx_bytes for d in deltas)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=MIDNIGHT - 3600)


def test_first_reading_is_baseline_then_deltas(clock: FakeClock) -> None:
    meter = make(clock)
    assert meter.sample(c(500, 100)) == []
    clock.advance(1)
    (d,) = meter.sample(c(1500, 300))
    assert (d.rx_bytes, d.tx_bytes, d.day, d.month, d.tz, d.mcc) == (1000, 200, "2026-01-31", "2026-01", "+09:00", "440")


def test_header_bytes_rule(clock: FakeClock) -> None:
    meter = make(clock, header=14)
    meter.sample(c(0, 0))
    clock.advance(1)
    (d,) = meter.sample(c(10 * 1028, 5 * 114, 10, 5))
    assert (d.rx_bytes, d.tx_bytes) == (10 * 1014, 5 * 100)


def test_header_rule_never_goes_negative(clock: FakeClock, caplog) -> None:
    meter = make(clock, header=14)
    meter.sample(c(0, 0))
    clock.advance(1)
    with caplog.at_level(logging.WARNING):
        deltas = meter.sample(c(10, 100, 5, 1))
    assert totals(deltas) == (0, 86)
    assert "header bytes" in caplog.text


@pytest.mark.parametrize("width", [32, 64])
def test_counter_wrap(clock: FakeClock, width: int) -> None:
    top = 1 << width
    meter = make(clock)
    meter.sample(c(top - 100, 5))
    clock.advance(1)
    assert totals(meter.sample(c(50, 10))) == (150, 5)


def test_interface_recreated_counts_from_zero(clock: FakeClock) -> None:
    meter = make(clock)
    meter.sample(c(10_000, 10_000, ifindex=3))
    clock.advance(1)
    # A new ifindex whose counters are *higher* than the old: still from zero.
    assert totals(meter.sample(c(20_000, 700, ifindex=9))) == (20_000, 700)


def test_counters_backwards_without_plausible_wrap_is_reset(clock: FakeClock) -> None:
    meter = make(clock)
    meter.sample(c(5_000_000, 5_000_000))
    clock.advance(1)
    assert totals(meter.sample(c(1000, 2000))) == (1000, 2000)


def test_reboot_counts_from_zero() -> None:
    clock = FakeClock(epoch=MIDNIGHT - 3600)
    before = make(clock, boot="boot-a")
    before.sample(c(9000, 9000))
    baseline, wall = before.baseline(), before.baseline_wall()
    clock.advance(120)
    after = make(clock, boot="boot-b")
    after.seed(baseline, wall)
    assert totals(after.sample(c(300, 400))) == (300, 400)


def test_restart_same_boot_resumes_from_baseline(clock: FakeClock) -> None:
    before = make(clock)
    before.sample(c(9000, 9000))
    clock.advance(5)
    after = make(clock)
    after.seed(before.baseline(), before.baseline_wall())
    assert totals(after.sample(c(9100, 9050))) == (100, 50)


def test_implausible_jump_rejected_and_not_counted_later(clock: FakeClock, caplog) -> None:
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(1)
    jump = MAX_LINK_RATE_BPS // 8 * 2  # two seconds' worth in one
    with caplog.at_level(logging.WARNING):
        assert meter.sample(c(jump, 0)) == []
    assert meter.rejected == 1 and "implausible" in caplog.text
    clock.advance(1)
    assert totals(meter.sample(c(jump + 10, 0))) == (10, 0)


def test_day_and_month_boundary_split_exact(clock: FakeClock) -> None:
    meter = make(clock)
    clock.epoch = MIDNIGHT - 10
    meter.sample(c(0, 0))
    clock.advance(40)  # 10 s in January, 30 s in February
    jan, feb = meter.sample(c(4000, 400))
    assert (jan.day, jan.month, jan.rx_bytes, jan.tx_bytes) == ("2026-01-31", "2026-01", 1000, 100)
    assert (feb.day, feb.month, feb.rx_bytes, feb.tx_bytes) == ("2026-02-01", "2026-02", 3000, 300)
    assert jan.end == feb.start == MIDNIGHT


def test_next_boundary_makes_split_exact(clock: FakeClock) -> None:
    meter = make(clock)
    clock.epoch = MIDNIGHT - 7
    meter.sample(c(0, 0))
    clock.advance(meter.next_boundary() - clock.wall())
    (before,) = meter.sample(c(777, 0))
    clock.advance(3)
    (after,) = meter.sample(c(1000, 0))
    assert (before.day, before.rx_bytes, after.day, after.rx_bytes) == ("2026-01-31", 777, "2026-02-01", 223)


def test_mcc_per_day_and_sim_switch(clock: FakeClock) -> None:
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(1)
    (home,) = meter.sample(c(100, 0))
    meter.set_active_sim("8981000000000000002", "310150123456789", "310")
    clock.advance(1)
    (roam,) = meter.sample(c(250, 0))
    assert (home.iccid[-1], home.mcc, home.rx_bytes) == ("1", "440", 100)
    assert (roam.iccid[-1], roam.mcc, roam.imsi, roam.rx_bytes) == ("2", "310", "310150123456789", 150)


def test_no_active_sim_not_billed(clock: FakeClock) -> None:
    meter = make(clock)
    meter.clear_active_sim()
    meter.sample(c(0, 0))
    clock.advance(1)
    assert meter.sample(c(100, 100)) == []
    assert meter.unattributed_bytes == 200


# -- property: never negative, never invented ----------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["traffic", "traffic", "traffic", "recreate", "reboot"]),
        st.integers(0, 5_000_000),  # bytes this step
        st.integers(0, 3000),  # packets this step
        st.floats(0.01, 100_000),  # seconds elapsed, across midnights sometimes
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events, st.integers(0, 14), st.one_of(
    st.integers(0, 1 << 20),
    st.integers((1 << 32) - (1 << 24), (1 << 32) - 1),  # a 32-bit counter about to wrap
    st.integers((1 << 64) - (1 << 24), (1 << 64) - 1),  # a 64-bit counter about to wrap
))
def test_generated_traffic_never_negative_never_invented(steps, header, start) -> None:
    """A model interface with real traffic, wraps, re-creations and reboots: no delta is
    negative, the running total never exceeds the true IP-level traffic, and (nothing
    here is implausible) the final total is exactly the true traffic."""
    clock = FakeClock(epoch=MIDNIGHT - 50_000)
    boot, ifindex = "b0", 3
    rxb, rxp = start, 0
    meter = make(clock, header=header, boot=boot)
    meter.sample(c(rxb, 0, rxp, 0, ifindex))
    true_ip, counted = 0, 0
    for kind, nbytes, npackets, dt in steps:
        clock.advance(dt)
        if kind == "recreate":
            ifindex, rxb, rxp = ifindex + 1, 0, 0
        elif kind == "reboot":
            boot, rxb, rxp = boot + "x", 0, 0
            meter = _reseeded(meter, clock, header, boot)
        npackets = min(npackets, nbytes // max(header, 1) if header else npackets)
        rxb, rxp = (rxb + nbytes) % (1 << 64), rxp + npackets
        true_ip += nbytes - header * npackets
        deltas = meter.sample(c(rxb, 0, rxp, 0, ifindex))
        assert all(d.rx_bytes >= 0 and d.tx_bytes == 0 for d in deltas)
        counted += sum(d.rx_bytes for d in deltas)
        assert counted <= true_ip
    assert meter.rejected == 0
    assert counted == true_ip


def _reseeded(old: UsageMeter, clock: FakeClock, header: int, boot: str) -> UsageMeter:
    new = make(clock, header=header, boot=boot)
    assert old.baseline() is not None
    new.seed(old.baseline(), old.baseline_wall())
    return new


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1),
                          st.integers(1, 5), st.floats(0.001, 1000)), max_size=30))
def test_arbitrary_readings_never_negative_nor_beyond_link_rate(readings) -> None:
    """Garbage counter sequences: every delta is non-negative and within what the link
    could carry in the elapsed time."""
    clock = FakeClock(epoch=MIDNIGHT - 500)
    meter = make(clock, header=14)
    meter.sample(c(0, 0))
    for rxb, rxp, ifindex, dt in readings:
        clock.advance(dt)
        deltas = meter.sample(c(rxb, rxb // 2, rxp, rxp, ifindex))
        limit = MAX_LINK_RATE_BPS / 8 * max(dt, 1.0)
        assert all(d.rx_bytes >= 0 and d.tx_bytes >= 0 for d in deltas)
        assert sum(d.rx_bytes for d in deltas) <= limit
        assert sum(d.tx_bytes for d in deltas) <= limit


def test_untrusted_wall_clock_holds_usage_until_set(clock: FakeClock) -> None:
    """A router that booted without an RTC reads 1970: its bytes must not be billed to
    1970-01-01, nor lost; they are attributed when the clock is set (NTP/NITZ)."""
    rtc_unset = FakeClock(epoch=1000.0)
    meter = make(rtc_unset)
    meter.sample(c(0, 0))
    rtc_unset.advance(30)
    assert meter.sample(c(3000, 300)) == []
    rtc_unset.advance(30)
    rtc_unset.epoch = MIDNIGHT + 100  # NTP sets the clock (a jump of 56 years)
    deltas = meter.sample(c(6000, 600))
    assert totals(deltas) == (6000, 600) and {d.day for d in deltas} == {"2026-02-01"}
    # the intervals from the monotonic clock, not the jump: the last 60 s before now
    assert min(d.start for d in deltas) == MIDNIGHT + 40 and max(d.end for d in deltas) == MIDNIGHT + 100


def test_wall_step_does_not_stretch_interval(clock: FakeClock) -> None:
    clock.epoch = MIDNIGHT - 5
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.mono += 10
    clock.epoch += 3600  # NTP stepped forward an hour while 10 s passed
    (d,) = meter.sample(c(1000, 0))
    assert (d.day, d.rx_bytes, d.end - d.start) == ("2026-02-01", 1000, 10)

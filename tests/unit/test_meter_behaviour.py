"""The meter's decisions checked against what a user is billed for (issue 29): usage held
while the wall clock is untrusted (over several readings, across a SIM switch and a region
change, both directions), the plausibility limit one byte either side, a wrap one byte
either side of plausible, the region each byte is billed to, and the interval a delta
claims after a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.clock import JST, FakeClock
from agent.usage.counters import Counters
from agent.usage.meter import MAX_LINK_RATE_BPS, UsageDelta, UsageMeter

MIDNIGHT = datetime(2026, 2, 1, tzinfo=JST).timestamp()
SIM_A = ("8981000000000000001", "440101234567890", "440")
SIM_B = ("8981000000000000002", "310150123456789", "310")
PER_SECOND = MAX_LINK_RATE_BPS // 8
"""Bytes the link could carry in one second: the plausibility limit's unit."""


def c(rxb: int, txb: int, rxp: int = 0, txp: int = 0, ifindex: int = 3, boot: str = "") -> Counters:
    return Counters(ifindex, rxb, txb, rxp, txp, boot_id=boot)


def make(clock: FakeClock, sim: tuple[str, str, str] = SIM_A, header: int = 0) -> UsageMeter:
    meter = UsageMeter(clock, header_bytes=header, boot_id="boot-a")
    meter.set_active_sim(*sim)
    return meter


def billed(deltas: list[UsageDelta]) -> list[tuple[str, str, str, str, int, int, float, float]]:
    """What each delta bills: (iccid, imsi, mcc, day, rx, tx, start, end)."""
    return [(d.iccid, d.imsi, d.mcc, d.day, d.rx_bytes, d.tx_bytes, d.start, d.end) for d in deltas]


def untrusted(wall: float = MIDNIGHT + 3600) -> FakeClock:
    """The daemon's strict clock before any source vouched for it (a plausible date even)."""
    clock = FakeClock(epoch=wall, trusted=False)
    assert not clock.wall_trusted()
    return clock


# -- usage held while the clock is not trusted ----------------------------------------------


def test_usage_held_over_several_readings_is_billed_whole_both_ways_when_the_clock_is_trusted() -> None:
    """Three readings while untrusted: nothing is billed yet, nothing is lost, downlink and
    uplink each add up, and once a source vouches the held bytes are dated by the monotonic
    clock (one interval from the first held second to the last) before the new ones."""
    clock = untrusted()
    meter = make(clock)
    meter.sample(c(0, 0))
    start = clock.wall()
    for rx, tx in [(1000, 100), (3000, 700), (3500, 900)]:
        clock.advance(10)
        assert meter.sample(c(rx, tx)) == []
    assert meter.held_bytes == 3500 + 900
    clock.vouch("ntp")
    clock.advance(10)
    deltas = meter.sample(c(4000, 1000))
    assert billed(deltas) == [
        (*SIM_A[:2], "440", "2026-02-01", 3500, 900, start, start + 30),
        (*SIM_A[:2], "440", "2026-02-01", 500, 100, start + 30, start + 40),
    ]
    assert meter.held_bytes == 0


def test_held_usage_keeps_each_sim_and_each_region_its_own() -> None:
    """A SIM switch and a change of serving network while untrusted: each SIM and each
    region is billed exactly its own bytes, in order."""
    clock = untrusted()
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(5)
    meter.sample(c(100, 10))           # SIM A at home
    meter.set_serving_mcc("310")
    clock.advance(5)
    meter.sample(c(300, 30))           # SIM A roaming in 310
    meter.set_active_sim(*SIM_B)
    meter.set_serving_mcc("440")
    clock.advance(5)
    meter.sample(c(700, 70))           # SIM B roaming in 440
    meter.set_serving_mcc(None)
    clock.advance(5)
    meter.sample(c(1500, 150))         # SIM B, unknown network: its home MCC
    meter.set_active_sim(*SIM_A)
    clock.advance(5)
    meter.sample(c(3100, 310))         # SIM A again, at home
    clock.vouch("ntp")
    deltas = meter.sample(c(3100, 310))
    t0 = clock.wall() - 25
    assert billed(deltas) == [
        (*SIM_A[:2], "440", "2026-02-01", 100, 10, t0, t0 + 5),
        (*SIM_A[:2], "310", "2026-02-01", 200, 20, t0 + 5, t0 + 10),
        (*SIM_B[:2], "440", "2026-02-01", 400, 40, t0 + 10, t0 + 15),
        (*SIM_B[:2], "310", "2026-02-01", 800, 80, t0 + 15, t0 + 20),
        (*SIM_A[:2], "440", "2026-02-01", 1600, 160, t0 + 20, t0 + 25),
    ]


def test_while_holding_the_baseline_stays_where_holding_began_then_moves_on() -> None:
    """The durable baseline must not pass bytes that are only held in memory (a crash then
    recounts them); once they are billed it is the latest reading."""
    clock = untrusted()
    meter = make(clock)
    meter.sample(c(50, 5))
    began = clock.wall()
    clock.advance(10)
    meter.sample(c(150, 15))
    clock.advance(10)
    meter.sample(c(250, 25))
    assert (meter.baseline(), meter.baseline_wall()) == (c(50, 5, boot="boot-a"), began)
    clock.vouch("ntp")
    clock.advance(10)
    meter.sample(c(350, 35))
    assert (meter.baseline(), meter.baseline_wall()) == (c(350, 35, boot="boot-a"), clock.wall())


def test_held_usage_dated_across_midnight_is_cut_at_midnight() -> None:
    """Bytes held from before local midnight and billed after it go to each day in
    proportion to the time on each side (20 s before, 20 s after)."""
    clock = untrusted(MIDNIGHT - 20)
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(40)
    meter.sample(c(4000, 400))
    clock.vouch("ntp")
    jan, feb = meter.sample(c(4000, 400))
    assert (jan.day, jan.rx_bytes, jan.tx_bytes, feb.day, feb.rx_bytes, feb.tx_bytes) == (
        "2026-01-31", 2000, 200, "2026-02-01", 2000, 200)


# -- the plausibility limit -------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["rx", "tx"])
@pytest.mark.parametrize("seconds", [2.0, 0.25])
def test_the_link_rate_limit_holds_to_the_byte(direction: str, seconds: float) -> None:
    """What the link could carry in the elapsed time (at least one second's worth) is
    counted; one byte more is refused, in either direction."""
    window = max(seconds, 1.0)
    limit = int(PER_SECOND * window)
    for amount, counted in [(limit, True), (limit + 1, False)]:
        clock = FakeClock(epoch=MIDNIGHT + 3600)
        meter = make(clock)
        meter.sample(c(0, 0))
        clock.advance(seconds)
        reading = c(amount, 0) if direction == "rx" else c(0, amount)
        deltas = meter.sample(reading)
        got = sum(d.rx_bytes + d.tx_bytes for d in deltas)
        assert (got, meter.rejected) == ((amount, 0) if counted else (0, 1))


def test_after_a_restart_the_limit_is_by_wall_time_and_the_interval_starts_at_the_baseline() -> None:
    """Seeded from the journal (another process: no monotonic history), a trusted clock
    judges plausibility by the wall time since the baseline, and the delta's interval runs
    from the baseline's wall time."""
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    seeded_at = clock.wall()
    for amount, counted in [(PER_SECOND * 3, True), (PER_SECOND * 3 + 1, False)]:
        meter = make(clock)
        meter.seed(c(1000, 0, boot="boot-a"), seeded_at)
        clock.epoch = seeded_at + 3
        deltas = meter.sample(c(1000 + amount, 0))
        assert billed(deltas) == ([(*SIM_A[:2], "440", "2026-02-01", amount, 0, seeded_at, seeded_at + 3)]
                                  if counted else [])


def test_after_a_restart_with_an_untrusted_clock_nothing_is_judged_implausible() -> None:
    """How long the agent was down is unknown while the clock is untrusted (the baseline's
    wall time and the wall now are both unvouched): a large advance since the baseline is
    held, not refused, and once the clock is trusted it is dated at the reading that found
    it (no interval is invented for it)."""
    clock = untrusted()
    meter = make(clock)
    meter.seed(c(0, 0, boot="boot-a"), clock.wall() - 1)  # one "second" ago by an unvouched clock
    huge = PER_SECOND * 86400
    assert meter.sample(c(huge, 7)) == []
    found = clock.wall()
    assert (meter.rejected, meter.held_bytes) == (0, huge + 7)
    clock.vouch("ntp")
    assert billed(meter.sample(c(huge, 7))) == [(*SIM_A[:2], "440", "2026-02-01", huge, 7, found, found)]


def test_a_held_interval_shorter_than_a_second_keeps_its_length() -> None:
    """The one-second floor is for judging plausibility only: bytes held over half a
    second are dated over that half second."""
    clock = untrusted()
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(0.5)
    meter.sample(c(100, 10))
    end = clock.wall()
    clock.vouch("ntp")
    assert billed(meter.sample(c(100, 10))) == [(*SIM_A[:2], "440", "2026-02-01", 100, 10, end - 0.5, end)]


# -- wraps and resets ---------------------------------------------------------------------


@pytest.mark.parametrize("width", [32, 64])
def test_a_wrap_is_taken_up_to_the_limit_and_a_reset_beyond_it(width: int) -> None:
    """A counter that went backwards wrapped if the wrapped advance fits the link rate
    (counted whole, to the byte); one byte beyond, the counter restarted and the new
    reading itself is what moved."""
    top = 1 << width
    for tail, expected in [(PER_SECOND - 100, PER_SECOND), (PER_SECOND - 99, PER_SECOND - 99)]:
        clock = FakeClock(epoch=MIDNIGHT + 3600)
        meter = make(clock)
        meter.sample(c(top - 100, 0))
        clock.advance(1)
        (d,) = meter.sample(c(tail, 0))
        assert d.rx_bytes == expected


def test_a_64_bit_counter_going_backwards_is_never_taken_for_a_32_bit_wrap() -> None:
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock)
    meter.sample(c(1 << 40, 0))
    clock.advance(1)
    (d,) = meter.sample(c(10, 0))
    assert d.rx_bytes == 10


def test_the_meters_boot_id_is_the_one_compared_not_the_readings() -> None:
    """Readings carry no boot id of their own (the sampler's are blank or stale): the
    meter's is stamped on, so the same boot is never taken for a reboot."""
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock)
    meter.sample(c(1000, 0, boot="stale"))
    clock.advance(1)
    (d,) = meter.sample(c(1500, 0, boot="other"))
    assert d.rx_bytes == 500 and meter.baseline() == c(1500, 0, boot="boot-a")


def test_no_traffic_gives_no_delta_and_bytes_with_no_sim_add_up() -> None:
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock)
    meter.sample(c(100, 100))
    clock.advance(1)
    assert meter.sample(c(100, 100)) == []
    meter.clear_active_sim()
    for rx, tx in [(150, 120), (400, 130)]:
        clock.advance(1)
        assert meter.sample(c(rx, tx)) == []
    assert meter.unattributed_bytes == 300 + 30


def test_a_negative_header_is_refused_and_zero_is_raw_ip() -> None:
    with pytest.raises(ValueError, match="header_bytes"):
        UsageMeter(FakeClock(), header_bytes=-1, boot_id="b")
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock, header=0)
    meter.sample(c(0, 0))
    clock.advance(1)
    (d,) = meter.sample(c(1000, 500, 10, 5))
    assert (d.rx_bytes, d.tx_bytes) == (1000, 500)


# -- where and when bytes are billed ------------------------------------------------------------


def test_the_serving_network_decides_the_region_and_unknown_falls_back_to_home() -> None:
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock)
    meter.sample(c(0, 0))
    regions = []
    for serving, rx in [("310", 100), (None, 300), ("440", 600)]:
        meter.set_serving_mcc(serving)
        clock.advance(1)
        (d,) = meter.sample(c(rx, 0))
        regions.append((d.mcc, d.rx_bytes))
    assert regions == [("310", 100), ("440", 200), ("440", 300)]


@pytest.mark.parametrize("direction", ["rx", "tx"])
def test_one_direction_alone_across_midnight_is_billed_to_both_days(direction: str) -> None:
    """A day whose share is zero one way but not the other still gets its record; a day
    whose share is zero both ways gets none."""
    clock = FakeClock(epoch=MIDNIGHT - 10)
    meter = make(clock)
    meter.sample(c(0, 0))
    clock.advance(40)
    deltas = meter.sample(c(4000, 0) if direction == "rx" else c(0, 4000))
    got = [(d.day, d.rx_bytes + d.tx_bytes) for d in deltas]
    assert got == [("2026-01-31", 1000), ("2026-02-01", 3000)]
    clock.epoch, clock.mono = MIDNIGHT + 86400 - 10, clock.mono + 86400  # the next midnight
    meter.sample(c(4000, 0) if direction == "rx" else c(0, 4000))
    clock.advance(40)
    one = meter.sample(c(4001, 0) if direction == "rx" else c(0, 4001))  # Jan's share rounds to 0
    assert [(d.day, d.rx_bytes + d.tx_bytes) for d in one] == [("2026-02-02", 1)]


def test_the_plan_zone_decides_the_day_and_the_next_reading_time() -> None:
    """A plan in UTC: 23:59:50 UTC is one day, 00:00:30 UTC the next, and the sampler is
    told to read at UTC midnight (not JST's)."""
    utc_midnight = datetime(2026, 2, 2, tzinfo=UTC).timestamp()
    clock = FakeClock(epoch=utc_midnight - 10)
    meter = make(clock)
    meter.set_plan_tz(UTC)
    assert meter.next_boundary() == utc_midnight
    meter.sample(c(0, 0))
    clock.advance(40)
    before, after = meter.sample(c(4000, 0))
    assert (before.day, before.tz, before.rx_bytes, after.day, after.rx_bytes) == (
        "2026-02-01", "+00:00", 1000, "2026-02-02", 3000)


def test_bytes_before_any_sim_is_known_are_not_billed() -> None:
    """At start-up the counters move before the first SIM is known (no set_active_sim yet):
    those bytes are nobody's, counted as unattributed, never billed."""
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = UsageMeter(clock, header_bytes=0, boot_id="boot-a")
    meter.sample(c(0, 0))
    clock.advance(1)
    assert meter.sample(c(700, 300)) == []
    assert meter.unattributed_bytes == 1000


def test_every_refused_jump_is_counted() -> None:
    clock = FakeClock(epoch=MIDNIGHT + 3600)
    meter = make(clock)
    meter.sample(c(0, 0))
    for n in (1, 2):
        clock.advance(1)
        assert meter.sample(c(n * (2 * PER_SECOND), 0)) == []
    assert meter.rejected == 2

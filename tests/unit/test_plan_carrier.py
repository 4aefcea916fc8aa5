"""The lab carrier's reading of each plan (board/virtual/network/plancarrier.py), and the
device's allowance held to it: every plan of domain.md's table applied at the exact byte
across a JST midnight, a month start and 72 hours of lab time; the device's count
(agent/plans/) within its stated granularity of the carrier's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.plans import allowance
from agent.plans.allowance import CloudFacts
from agent.plans.ledger import BUCKET_S, AllowanceLedger
from agent.plans.rules import parse_plan
from agent.usage import calendar
from board.virtual.cloud import allowance as cloud_allowance
from board.virtual.cloud.plans import GB, MB, plan
from board.virtual.network import labclock, sharedsims
from board.virtual.network.plancarrier import CarrierMeter, credit_valid, rules_of

JST = timezone(timedelta(hours=9))
ICCID = "8981100000001000019"
EVE = datetime(2026, 1, 31, 23, 0, tzinfo=JST).timestamp()
"""An hour before a month start (and a JST midnight)."""


def feed(meter: CarrierMeter, t: float, up: int, down: int) -> None:
    meter.record(ICCID, t, up, down)


def test_the_month_rule_is_applied_at_the_exact_byte_and_lifts_at_the_month_start() -> None:
    meter, hundred = CarrierMeter(), plan("monthly-100GB")
    feed(meter, EVE - 86400 * 20, 0, 0)
    feed(meter, EVE - 10, 0, 100 * GB)
    assert meter.verdict(ICCID, hundred, EVE) is None  # 100 GB is not *over* 100 GB
    feed(meter, EVE, 0, 100 * GB + 1)
    assert meter.verdict(ICCID, hundred, EVE) == ("month", 128)
    assert meter.verdict(ICCID, hundred, EVE + 3599) == ("month", 128)
    assert meter.verdict(ICCID, hundred, EVE + 3600) is None  # 1 February 00:00:00 JST


def test_the_day_pass_resets_at_jst_midnight() -> None:
    meter, day = CarrierMeter(), plan("daypass-3GB")
    feed(meter, EVE - 3600, 0, 0)
    feed(meter, EVE, GB, 2 * GB + 1)
    assert meter.verdict(ICCID, day, EVE + 1) == ("day", 384)
    assert meter.verdict(ICCID, day, EVE + 3600) is None


def test_the_72_hour_rule_lifts_when_its_old_bytes_age_out_not_at_a_boundary() -> None:
    meter, small = CarrierMeter(), plan("100MB-3days")
    feed(meter, EVE, 0, 0)
    feed(meter, EVE + 10, 0, 60 * MB)
    feed(meter, EVE + 86400, 0, 100 * MB + 1)
    assert meter.verdict(ICCID, small, EVE + 86400) == ("72h", 128)
    assert meter.verdict(ICCID, small, EVE + 72 * 3600 + 9) == ("72h", 128)
    assert meter.verdict(ICCID, small, EVE + 72 * 3600 + 10) is None  # the 60 MB of EVE+10 aged out


def test_the_5gb_plan_throttles_on_either_rule_and_price_steps_never_do() -> None:
    meter = CarrierMeter()
    feed(meter, EVE - 86400 * 5, 0, 0)
    feed(meter, EVE - 86400 * 4, 0, 4 * GB)
    feed(meter, EVE, 0, 4 * GB + 800 * MB + 1)
    assert meter.verdict(ICCID, plan("5GB-month"), EVE) == ("72h", 128)
    assert meter.verdict(ICCID, plan("10GB-month"), EVE) is None
    assert meter.verdict(ICCID, plan("tiered"), EVE) is None


def test_bytes_used_elsewhere_count_in_the_windows_they_fall_in_and_credits_lift_only_the_month(
        tmp_path: Path) -> None:
    """A shared SIM's bytes in other routers (``pocket-lab used-elsewhere``) and a top-up
    (``plan-update --topup``), through the lab directory's files as the lab daemon reads
    them: 4.9 GB four days ago and 850 MB now put the 5 GB plan over both rules; a 1 GB
    top-up lifts the month rule, never the 72-hour one."""
    meter, five = CarrierMeter(), plan("5GB-month")
    sharedsims.add_elsewhere(tmp_path, ICCID, EVE - 4 * 86400, 4900 * MB)
    sharedsims.add_elsewhere(tmp_path, ICCID, EVE - 60, 850 * MB)
    sharedsims.load_into(meter, tmp_path)
    rules = {r.id: r for r in rules_of(five)[0]}
    assert meter.used(ICCID, rules["month"], EVE, JST) == 5750 * MB
    assert meter.used(ICCID, rules["72h"], EVE, JST) == 850 * MB
    assert meter.verdict(ICCID, five, EVE) == ("72h", 128)  # both over: the slower first, same rate
    sharedsims.add_credit(tmp_path, ICCID, {"id": "t1", "kind": "topup", "bytes": GB, "bought": EVE - 3600})
    sharedsims.load_into(meter, tmp_path)
    assert meter.cap(ICCID, rules["month"], EVE, JST) == 6 * GB and meter.cap(ICCID, rules["72h"], EVE, JST) == 800 * MB
    assert meter.verdict(ICCID, five, EVE) == ("72h", 128)  # the 72-hour rule still holds it
    assert meter.verdict(ICCID, five, EVE - 60 + 72 * 3600 + 1) is None  # the 850 MB aged out; month within 6 GB
    # a top-up bought 31 January lasts to the end of March; an add-on only its month
    assert meter.cap(ICCID, rules["month"], datetime(2026, 3, 31, 23, tzinfo=JST).timestamp(), JST) == 6 * GB
    assert meter.cap(ICCID, rules["month"], datetime(2026, 4, 1, tzinfo=JST).timestamp(), JST) == 5 * GB
    assert credit_valid({"kind": "addon", "bought": EVE}, EVE + 3599, JST)
    assert not credit_valid({"kind": "addon", "bought": EVE}, EVE + 3600, JST)
    counts = sharedsims.with_elsewhere({ICCID: {"up": 10, "down": 20}}, tmp_path)
    assert counts[ICCID] == {"up": 10, "down": 20 + 5750 * MB}


def test_a_flat_plan_is_held_at_its_nominal_rate_and_an_old_plan_reads() -> None:
    meter = CarrierMeter()
    assert meter.verdict(ICCID, plan("200kbps"), EVE) == ("nominal", 200)
    old = {"name": "5GB-month", "cap_bytes": 5 * GB, "window": "month", "throttle_kbps": 128}
    feed(meter, EVE - 60, 0, 0)
    feed(meter, EVE, 0, 5 * GB + 1)
    assert meter.verdict(ICCID, old, EVE) == ("cap", 128)
    assert meter.verdict(ICCID, {"name": "200kbps", "cap_bytes": None, "window": "none", "throttle_kbps": 200},
                         EVE) is None


readings = st.lists(st.tuples(st.one_of(st.floats(1, 120), st.floats(120, 14400)), st.integers(0, 3 * MB),
                              st.integers(0, MB)), min_size=30, max_size=150)
"""Carrier readings: bursts seconds apart and quiet hours, enough of them to span 72 h."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=readings, gap=st.floats(0, 3 * 86400))
def test_the_devices_allowance_is_within_its_granularity_of_the_carriers(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[float, int, int]], gap: float) -> None:
    """The device meters the bytes the carrier counts (each move's bytes between two
    carrier readings, cut at midnight as the meter cuts them); at every reading, its month
    rule is the carrier's up to the one move that straddles the month start, and its
    72-hour rule is the carrier's up to the move that straddles the window's edge below,
    and up to one bucket's span of moves before the edge above (docs/usage.md)."""
    five = plan("5GB-month")
    parsed = parse_plan(five)
    rules = {r.id: r for r in rules_of(five)[0]}
    ledger = AllowanceLedger(tmp_path_factory.mktemp("l") / "a.ledger")
    meter = CarrierMeter()
    t, up, down = EVE - 3 * 86400, 0, 0
    feed(meter, t, 0, 0)
    moves: list[tuple[float, float, int]] = []
    first = datetime(2026, 2, 1, tzinfo=JST).timestamp()
    for i, (dt, d, u) in enumerate(steps):
        start, t = t, t + dt + (gap if i == len(steps) // 2 else 0.0)  # a quiet gap (a clock advance)
        segments = calendar.split_days(start, t, JST)
        weights = [round((s.end - s.start) * 1000) for s in segments]
        for seg, r, x in zip(segments, calendar.apportion(d, weights), calendar.apportion(u, weights), strict=True):
            ledger.add(ICCID, seg.day.isoformat(), seg.start, seg.end, r, x)
        up, down = up + u, down + d
        feed(meter, t, up, down)
        moves.append((start, t, d + u))
        month, rolling = allowance.status(parsed, ledger, ICCID, CloudFacts(), t, JST)
        straddling = sum(b for s, e, b in moves if s < first < e)
        assert abs(month.used - meter.used(ICCID, rules["month"], t, JST)) <= straddling
        carrier_72h = meter.used(ICCID, rules["72h"], t, JST)
        edge = t - 72 * 3600
        at_edge = sum(b for s, e, b in moves if s < edge < e)
        before = sum(b for s, e, b in moves if edge - BUCKET_S < e <= edge)
        assert carrier_72h - at_edge <= rolling.used <= carrier_72h + at_edge + before


def test_lab_time_moves_the_carrier_and_the_device_together(tmp_path: Path) -> None:
    labclock.advance(tmp_path, 3600.0)
    labclock.advance(tmp_path, 72 * 3600.0)
    assert labclock.offset(tmp_path) == 73 * 3600.0
    assert abs(labclock.lab_time(tmp_path) - (datetime.now().timestamp() + 73 * 3600)) < 5
    assert labclock.agent_offset(tmp_path) == 73 * 3600.0


def test_the_reference_clouds_count_per_rule_and_its_pick(tmp_path: Path) -> None:
    """The cloud's own count (board/virtual/cloud/allowance.py) from usage bodies: what it
    tells the device is left per rule, and a SIM with a rule nearly used up is not picked."""
    usage: dict[str, Any] = {}
    noon = datetime(2026, 1, 14, 12, tzinfo=JST).timestamp()
    for day, end, nbytes in (("2026-01-10", noon - 4 * 86400, 50 * MB), ("2026-01-14", noon - 60, 700 * MB)):
        cloud_allowance.add_usage(usage, {"day": day, "end": calendar.iso(end, JST), "rx_bytes": nbytes,
                                          "tx_bytes": 0})
    five = plan("5GB-month")
    assert cloud_allowance.remaining(five, usage, noon) == {"month": 5 * GB - 750 * MB, "72h": 100 * MB}
    assert cloud_allowance.room_ok(five, usage, noon, 0.05) is True
    assert cloud_allowance.room_ok(plan("100MB-3days"), usage, noon, 0.05) is False
    assert cloud_allowance.room_ok(plan("200kbps"), usage, noon, 0.05) is None
    assert cloud_allowance.remaining(five, usage, noon + 20 * 86400)["month"] == 5 * GB  # February

"""The allowance ledger and each rule's used / cap / resets-at (issue 22, step 2).

Property tests hold the ledger's sums against a brute-force oracle over random usage
streams that cross JST (and other DST-free zones') midnights and month starts: calendar
windows exactly, rolling windows within the stated granularity (never below the carrier's
count, above it by at most one bucket at the window's edge), across restarts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.plans import allowance
from agent.plans.allowance import CloudFacts, Credit
from agent.plans.ledger import BUCKET_S, AllowanceLedger
from agent.plans.rules import Rule, parse_plan
from agent.plans.windows import next_month_start
from agent.usage import calendar
from board.virtual.cloud.plans import GB, MB, plan

ICCID = "8981100000001000019"
JST = timezone(timedelta(hours=9))
START = datetime(2026, 1, 29, 18, 0, tzinfo=JST).timestamp()
"""Three days before a month start and a year's first month's end: the stream crosses
midnights and 1 February 00:00 JST."""
SAMPLE_S = 2.0
"""The longest delta the meter hands over in these streams (one sample interval)."""

events = st.lists(st.tuples(st.floats(0, 5 * 86400), st.integers(0, 5_000_000), st.integers(0, 2_000_000)),
                  min_size=1, max_size=120)
zones = st.sampled_from([JST, UTC, timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14))])


def feed(ledger: AllowanceLedger, stream: list[tuple[float, int, int]], tz: timezone) -> list[tuple[float, float, int, int, str]]:
    """Deltas as the meter makes them (cut at the zone's midnight, bytes apportioned);
    returns them for the oracle: (start, end, rx, tx, day)."""
    out = []
    for offset, rx, tx in sorted(stream):
        end = START + offset
        segments = calendar.split_days(end - SAMPLE_S, end, tz)
        weights = [round((s.end - s.start) * 1000) for s in segments]
        for seg, r, t in zip(segments, calendar.apportion(rx, weights), calendar.apportion(tx, weights), strict=True):
            ledger.add(ICCID, seg.day.isoformat(), seg.start, seg.end, r, t)
            # The ledger keeps milliseconds (its records' unit): so does the oracle.
            out.append((round(seg.start * 1000) / 1000, round(seg.end * 1000) / 1000, r, t, seg.day.isoformat()))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=events, tz=zones, pick=st.integers(0, 119), jitter=st.floats(-BUCKET_S, BUCKET_S),
       hours=st.sampled_from([1, 24, 72]))
def test_rolling_sums_bound_the_oracle_within_one_bucket(tmp_path: Path, stream: list[tuple[float, int, int]],
                                                        tz: timezone, pick: int, jitter: float, hours: int) -> None:
    """The window's trailing edge is put near a delta (``pick``, ``jitter``): where a
    bucket straddles it."""
    path = tmp_path / f"{uuid.uuid4()}.ledger"  # hypothesis reuses tmp_path across examples
    ledger = AllowanceLedger(path)
    deltas = feed(ledger, stream, tz)
    ledger.commit(1)
    reopened = AllowanceLedger(path)  # a restart reads the same sums
    now = START + sorted(stream)[pick % len(stream)][0] + hours * 3600 + jitter
    since = now - hours * 3600
    rx, tx = reopened.used_since(ICCID, since, now)
    counted = rx + tx
    exact = sum(r + t for s, e, r, t, _ in deltas if since < e and s <= now)
    slack = sum(r + t for s, e, r, t, _ in deltas if since - BUCKET_S - SAMPLE_S < e <= since)
    assert exact <= counted <= exact + slack
    assert (reopened.used_since(ICCID, since, now)) == ledger.used_since(ICCID, since, now)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=events, tz=zones, probe=st.floats(0, 5 * 86400), restart_at=st.integers(0, 120))
def test_day_and_month_sums_are_exact_across_boundaries_and_restarts(
        tmp_path: Path, stream: list[tuple[float, int, int]], tz: timezone, probe: float, restart_at: int) -> None:
    path = tmp_path / f"{uuid.uuid4()}.ledger"
    ledger = AllowanceLedger(path)
    ordered = sorted(stream)
    deltas = feed(ledger, ordered[:restart_at], tz)
    ledger.commit(1)
    ledger = AllowanceLedger(path)
    deltas += feed(ledger, ordered[restart_at:], tz)
    ledger.commit(2)
    ledger = AllowanceLedger(path)
    now = START + probe
    month = Rule("m", "month", GB)
    day = Rule("d", "day", GB, count="rx")
    this_month = calendar.month_of(calendar.day_of(now, tz))
    today = calendar.day_of(now, tz).isoformat()
    assert allowance.device_used(month, ledger, ICCID, now, tz) == sum(
        r + t for *_, r, t, d in deltas if d.startswith(this_month))
    assert allowance.device_used(day, ledger, ICCID, now, tz) == sum(r for *_, r, _t, d in deltas if d == today)


def test_a_crash_between_journal_and_ledger_is_caught_up_from_the_journal(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "a.ledger")
    ledger.add(ICCID, "2026-01-30", START, START + 60, 100, 10)
    ledger.commit(4)
    body = {"iccid": ICCID, "day": "2026-01-30", "start": calendar.iso(START + 60, JST),
            "end": calendar.iso(START + 120, JST), "rx_bytes": 1000, "tx_bytes": 1}
    ledger = AllowanceLedger(tmp_path / "a.ledger")  # the ledger's commit of seq 5 was lost
    assert ledger.catch_up([(4, dict(body, rx_bytes=999_999)), (5, body)]) == 1
    assert ledger.used_since(ICCID, START - 1) == (1100, 11)
    again = AllowanceLedger(tmp_path / "a.ledger")
    assert again.seq == 5 and again.used_since(ICCID, START - 1) == (1100, 11)
    assert again.catch_up([(5, body)]) == 0


def test_a_compacted_ledger_keeps_every_sum(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "c.ledger", compact_at_bytes=2048)
    for i in range(400):
        ledger.add(ICCID, calendar.day_of(START + i * 700, JST).isoformat(), START + i * 700, START + i * 700 + 1, i, 1)
        ledger.commit(i + 1)
    before = (ledger.used_since(ICCID, START + 86400), ledger.used_on_days(ICCID, "2026-01-01", "2026-02-28"))
    assert (tmp_path / "c.ledger").stat().st_size < 64 * 1024
    after = AllowanceLedger(tmp_path / "c.ledger")
    assert (after.used_since(ICCID, START + 86400), after.used_on_days(ICCID, "2026-01-01", "2026-02-28")) == before
    assert after.seq == 400


def test_status_of_the_5gb_plan_names_each_rule_with_used_cap_and_reset(tmp_path: Path) -> None:
    five = parse_plan(plan("5GB-month"))
    ledger = AllowanceLedger(tmp_path / "s.ledger")
    ledger.add(ICCID, "2026-01-29", START, START + 60, 700 * MB, 0)
    ledger.add(ICCID, "2026-01-31", START + 2 * 86400, START + 2 * 86400 + 60, 200 * MB, 0)
    now = START + 2 * 86400 + 120
    month, rolling = allowance.status(five, ledger, ICCID, CloudFacts(), now, JST)
    assert (month.used, month.cap, month.exceeded) == (900 * MB, 5 * GB, False)
    assert month.resets_at == datetime(2026, 2, 1, tzinfo=JST).timestamp()
    assert (rolling.used, rolling.cap, rolling.exceeded) == (900 * MB, 800 * MB, True)
    # The 72-hour rule lifts once the 700 MB of the 29th age out: 72 h after their bucket ends.
    assert rolling.resets_at == START + 60 + 72 * 3600


def test_others_usage_at_assignment_counts_in_its_window_only(tmp_path: Path) -> None:
    """The cloud's remaining at assignment holds other routers' bytes: they count this
    month, not next; for a rolling rule, until as_of + hours at the latest."""
    five = parse_plan(plan("5GB-month"))
    ledger = AllowanceLedger(tmp_path / "o.ledger")
    others = allowance.others_from_remaining(five, {"month": 4 * GB, "72h": 600 * MB}, ledger, ICCID, START, JST)
    assert others == {"month": GB, "72h": 200 * MB}
    facts = CloudFacts(START, others)
    month, rolling = allowance.status(five, ledger, ICCID, facts, START + 3600, JST)
    assert (month.remaining, rolling.remaining) == (4 * GB, 600 * MB)
    later = allowance.status(five, ledger, ICCID, facts, START + 73 * 3600, JST)
    assert (later[0].used, later[1].used) == (0, 0)  # a new month, and the 72 h have passed


def test_credits_lift_the_month_rule_not_the_72_hour_rule(tmp_path: Path) -> None:
    """domain.md: top-ups do not lift a 72-hour limit; an add-on is valid in its month only."""
    hundred = parse_plan({"name": "x", "rules": [{"id": "month", "window": "month", "cap_bytes": GB},
                                                  {"id": "72h", "window": "rolling", "hours": 72,
                                                   "cap_bytes": 100 * MB}]})
    ledger = AllowanceLedger(tmp_path / "t.ledger")
    ledger.add(ICCID, "2026-01-29", START, START + 60, GB + 50 * MB, 0)
    facts = CloudFacts(credits=(Credit("t1", "topup", 500 * MB, START),))
    month, rolling = allowance.status(hundred, ledger, ICCID, facts, START + 120, JST)
    assert (month.cap, month.exceeded) == (GB + 500 * MB, False)
    assert (rolling.cap, rolling.exceeded) == (100 * MB, True)


def test_a_topup_carries_over_what_is_left_and_an_addon_does_not(tmp_path: Path) -> None:
    month_rule = Rule("month", "month", GB)
    bought = START  # 29 January JST
    topup, addon = Credit("t", "topup", 500 * MB, bought), Credit("a", "addon", 10 * GB, bought)
    feb = next_month_start(bought, JST) + 3600
    # January overflowed the cap by 200 MB: the top-up (it expires last... no: the add-on
    # expires first, at the end of January) -> the add-on pays the overflow first.
    used = {"2026-01": GB + 200 * MB}
    assert allowance.credit_left(month_rule, (topup, addon), used, feb, JST) == 500 * MB
    used_big = {"2026-01": GB + 10 * GB + 100 * MB}
    assert allowance.credit_left(month_rule, (topup, addon), used_big, feb, JST) == 400 * MB
    april = next_month_start(bought, JST, 3) + 1
    assert allowance.credit_left(month_rule, (topup,), {}, april, JST) == 0  # past the third month
    march_end = next_month_start(bought, JST, 3) - 1
    assert allowance.credit_left(month_rule, (topup,), {}, march_end, JST) == 500 * MB

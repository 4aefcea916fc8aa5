"""Where a calendar rule's window starts and when it resets, in the plan's own zone (issue 22;
issue 29's mutation run found no test that gave a zone other than JST).

The oracle is the definition itself: a month (day) window resets at the first instant whose
local month (date) differs from ``now``'s, and starts at the 1st's local midnight. It holds
for every DST-free offset the plans may carry, -12:00 to +14:00."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from agent.clock import JST
from agent.plans.rules import Rule
from agent.plans.windows import month_start, next_month_start, resets_at

MONTH = Rule("month", "month", 5 << 30)
DAY = Rule("day", "day", 3 << 30)
ROLLING = Rule("72h", "rolling", 800 << 20, hours=72)
FLAT = Rule("flat", "none", None)
EPSILON_S = 0.001
"""A millisecond: the ledger's and the journal's time resolution."""

zones = st.sampled_from([JST, UTC, timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(hours=14)),
                         timezone(timedelta(hours=-12))])
instants = st.floats(datetime(2025, 1, 1, tzinfo=UTC).timestamp(), datetime(2030, 1, 1, tzinfo=UTC).timestamp())


def local(t: float, tz: timezone) -> datetime:
    return datetime.fromtimestamp(t, tz)


@given(instants, zones)
def test_a_day_rule_resets_at_the_first_instant_of_the_next_local_day(now: float, tz: timezone) -> None:
    reset = resets_at(DAY, now, tz)
    assert reset is not None and reset > now
    assert local(reset - EPSILON_S, tz).date() == local(now, tz).date()
    assert local(reset, tz).date() == local(now, tz).date() + timedelta(days=1)
    assert local(reset, tz).time() == datetime.min.time()


@given(instants, zones)
def test_a_month_rule_resets_at_the_first_instant_of_the_next_local_month(now: float, tz: timezone) -> None:
    reset = resets_at(MONTH, now, tz)
    assert reset is not None and reset > now
    before, after = local(reset - EPSILON_S, tz), local(reset, tz)
    assert (before.year, before.month) == (local(now, tz).year, local(now, tz).month)
    assert (after.day, after.time()) == (1, datetime.min.time())
    assert month_start(now, tz) <= now < reset == next_month_start(now, tz)
    assert local(month_start(now, tz), tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0) == \
        local(month_start(now, tz), tz)


def test_the_plans_zone_decides_the_reset_not_japans() -> None:
    """20:00 UTC on 31 January is already 1 February 05:00 in Japan: a UTC plan's day and
    month both end at the coming UTC midnight, a JST plan's day at 15:00 UTC on 1 February
    and its month at the end of February."""
    now = datetime(2026, 1, 31, 20, 0, tzinfo=UTC).timestamp()
    utc_midnight = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
    assert resets_at(DAY, now, UTC) == utc_midnight
    assert resets_at(MONTH, now, UTC) == utc_midnight
    assert resets_at(DAY, now) == datetime(2026, 2, 2, tzinfo=JST).timestamp()
    assert resets_at(MONTH, now) == datetime(2026, 3, 1, tzinfo=JST).timestamp()


def test_a_rolling_or_flat_rule_never_resets_as_a_whole() -> None:
    now = datetime(2026, 1, 31, 20, 0, tzinfo=UTC).timestamp()
    assert resets_at(ROLLING, now) is None and resets_at(FLAT, now) is None


def test_a_top_up_months_ahead_crosses_the_year() -> None:
    november = datetime(2026, 11, 15, 12, tzinfo=JST).timestamp()
    assert next_month_start(november, JST, 3) == datetime(2027, 2, 1, tzinfo=JST).timestamp()
    assert next_month_start(november, JST, 2) == datetime(2027, 1, 1, tzinfo=JST).timestamp()

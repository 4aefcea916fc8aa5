"""Day/month boundary arithmetic in the plan's zone (JST unless the policy says otherwise)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clock import JST
from agent.usage import calendar

MIDNIGHT_JAN1_JST = datetime(2026, 1, 1, tzinfo=JST).timestamp()


def test_next_midnight_is_jst_not_utc() -> None:
    # 2025-12-31 23:59:59 JST is 14:59:59 UTC; the next boundary is one second later.
    assert calendar.next_midnight(MIDNIGHT_JAN1_JST - 1) == MIDNIGHT_JAN1_JST
    assert calendar.next_midnight(MIDNIGHT_JAN1_JST) == MIDNIGHT_JAN1_JST + 86400


def test_split_at_month_boundary() -> None:
    segs = calendar.split_days(MIDNIGHT_JAN1_JST - 30, MIDNIGHT_JAN1_JST + 90)
    assert [(s.day, s.end - s.start) for s in segs] == [(date(2025, 12, 31), 30), (date(2026, 1, 1), 90)]
    assert calendar.month_of(segs[0].day) == "2025-12"
    assert calendar.month_of(segs[1].day) == "2026-01"


def test_split_over_several_days_and_backwards_clock() -> None:
    segs = calendar.split_days(MIDNIGHT_JAN1_JST - 10, MIDNIGHT_JAN1_JST + 2 * 86400 + 10)
    assert [s.day.day for s in segs] == [31, 1, 2, 3]
    back = calendar.split_days(MIDNIGHT_JAN1_JST + 5, MIDNIGHT_JAN1_JST - 5)
    assert back == [calendar.Segment(MIDNIGHT_JAN1_JST - 5, MIDNIGHT_JAN1_JST - 5, date(2025, 12, 31))]


def test_split_in_another_zone() -> None:
    utc_midnight = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    segs = calendar.split_days(utc_midnight - 1, utc_midnight + 1, UTC)
    assert [s.day for s in segs] == [date(2025, 12, 31), date(2026, 1, 1)]
    assert calendar.tz_offset(utc_midnight, timezone(timedelta(hours=-5))) == "-05:00"


def test_iso_and_offset() -> None:
    assert calendar.iso(MIDNIGHT_JAN1_JST) == "2026-01-01T00:00:00.000+09:00"
    assert calendar.tz_offset(MIDNIGHT_JAN1_JST) == "+09:00"


@settings(deadline=None)  # no wall-clock bound per example (hypothesis' default is 200 ms): issue 21
@given(st.integers(0, 10**15), st.lists(st.integers(0, 10**9), min_size=1, max_size=8))
def test_apportion_is_exact_and_non_negative(total: int, weights: list[int]) -> None:
    parts = calendar.apportion(total, weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    if sum(weights):
        assert all(p == 0 for p, w in zip(parts, weights) if w == 0)


def test_apportion_proportional() -> None:
    assert calendar.apportion(1000, [1, 3]) == [250, 750]
    assert calendar.apportion(10, [1, 1, 1]) == [3, 3, 4]


def test_parse_tz() -> None:
    import pytest

    from agent.errors import ConfigError

    assert calendar.parse_tz(None) is JST and calendar.parse_tz("+09:00") is JST
    assert calendar.parse_tz("-05:00").utcoffset(None) == timedelta(hours=-5)
    with pytest.raises(ConfigError, match="'JST'"):
        calendar.parse_tz("JST")

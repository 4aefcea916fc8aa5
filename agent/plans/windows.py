"""Where a calendar window starts and when it resets, in the plan's zone.

Pure functions over UNIX wall seconds (agent/usage/calendar.py's conventions). A calendar
window (month, day) is ``[start, end)`` in the plan's zone: the JST month runs from the
1st 00:00:00 to the last day's 23:59:59 inclusive, so ``end`` is the next 1st's midnight.
A rolling window of N hours at ``now`` is ``(now - N h, now]``: it never resets as a whole;
a throttle on it lifts when enough old bytes age out (agent/plans/allowance.py says when,
and sums each window: a month's and a day's by plan day, a rolling one's by bucket).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from agent.clock import JST
from agent.plans.rules import Rule
from agent.usage import calendar

HOUR_S = 3600.0


def month_start(t: float, tz: tzinfo = JST) -> float:
    """Wall time of local midnight on the 1st of the month containing ``t``."""
    local = datetime.fromtimestamp(t, tz)
    return datetime(local.year, local.month, 1, tzinfo=tz).timestamp()


def next_month_start(t: float, tz: tzinfo = JST, months: int = 1) -> float:
    """Wall time of the 1st of the month ``months`` after the one containing ``t``."""
    local = datetime.fromtimestamp(t, tz)
    index = local.year * 12 + local.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=tz).timestamp()


def resets_at(rule: Rule, now: float, tz: tzinfo = JST) -> float | None:
    """When the calendar window containing ``now`` ends (None for rolling and none: a
    rolling window drains, it does not reset)."""
    if rule.window == "month":
        return next_month_start(now, tz)
    if rule.window == "day":
        return calendar.next_midnight(now, tz)
    return None

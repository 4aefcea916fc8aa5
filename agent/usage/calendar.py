"""Calendar arithmetic for billing: JST (or the plan's zone) day and month boundaries.

Pure functions over UNIX wall seconds. Plans bill per calendar month and per day in
the plan's zone (domain.md: JST, 1st 00:00:00 to last day 23:59:59), so a counter
delta must be cut at local midnight; a month boundary is always a day boundary, so
cutting at every midnight is enough for both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from agent.clock import JST
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

MAX_SEGMENTS = 400
"""A delta spanning more than ~13 months of midnights is a clock jump, not traffic: the
remainder goes to the last segment instead of looping without bound."""


@dataclass(frozen=True)
class Segment:
    """A piece of a time interval lying within one local day."""

    start: float
    end: float
    day: date


def parse_tz(offset: str | None) -> tzinfo:
    """The plan's zone from policy's "+09:00"-style offset; None or "" gives JST.
    Raises ConfigError naming the value when it is not an offset."""
    if not offset:
        return JST
    try:
        parsed = datetime.fromisoformat(f"2000-01-01T00:00:00{offset}").tzinfo
    except ValueError as exc:
        raise ConfigError(f"bad time zone offset {offset!r} (want e.g. '+09:00')") from exc
    if parsed is None:
        raise ConfigError(f"bad time zone offset {offset!r} (want e.g. '+09:00')")
    return JST if parsed.utcoffset(None) == JST.utcoffset(None) else parsed


def plan_tz(facts: dict[str, Any] | None, default: str | None) -> tzinfo:
    """The zone of a SIM's plan (the assignment's ``plan.tz``, "+09:00"-style), else the
    config's ``default``, else JST. A bad plan zone is logged and the default used: a
    typo from the cloud must not stop the meter."""
    offset = ((facts or {}).get("plan") or {}).get("tz")
    if offset:
        try:
            return parse_tz(str(offset))
        except ConfigError as exc:
            LOGGER.error("plan time zone ignored: %s", exc)
    return parse_tz(default)


def day_of(t: float, tz: tzinfo = JST) -> date:
    """The local calendar day containing wall time ``t``."""
    return datetime.fromtimestamp(t, tz).date()


def next_midnight(t: float, tz: tzinfo = JST) -> float:
    """Wall time of the first local midnight strictly after ``t``."""
    following = day_of(t, tz) + timedelta(days=1)
    return datetime(following.year, following.month, following.day, tzinfo=tz).timestamp()


def month_of(day: date) -> str:
    """"YYYY-MM" of a day: the billing month it belongs to."""
    return f"{day.year:04d}-{day.month:02d}"


def tz_offset(t: float, tz: tzinfo = JST) -> str:
    """"+09:00"-style UTC offset of ``tz`` at ``t`` (what the cloud body's "tz" holds)."""
    return datetime.fromtimestamp(t, tz).isoformat()[-6:]


def iso(t: float, tz: tzinfo = JST) -> str:
    """ISO 8601 with milliseconds and the zone's offset: '2026-01-01T00:00:00.000+09:00'."""
    return datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


def split_days(t0: float, t1: float, tz: tzinfo = JST) -> list[Segment]:
    """Cut [t0, t1] at every local midnight. A backwards interval (wall clock stepped
    back) becomes one empty segment at ``t1``: its bytes go to the day the clock now says."""
    if t1 <= t0:
        return [Segment(t1, t1, day_of(t1, tz))]
    segments: list[Segment] = []
    start = t0
    while len(segments) < MAX_SEGMENTS - 1:
        boundary = next_midnight(start, tz)
        if boundary >= t1:
            break
        segments.append(Segment(start, boundary, day_of(start, tz)))
        start = boundary
    segments.append(Segment(start, t1, day_of(start, tz)))
    return segments


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` in proportion to integer ``weights`` so the parts sum to ``total``
    exactly (cumulative floor: part i = floor(total*W_i/W) - floor(total*W_{i-1}/W)).
    All-zero weights put everything in the last part."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * (len(weights) - 1) + [total]
    parts: list[int] = []
    cumulative = 0
    previous = 0
    for weight in weights:
        cumulative += weight
        upto = total * cumulative // whole
        parts.append(upto - previous)
        previous = upto
    return parts

"""What is left of a SIM's allowance, per rule of its plan: pure arithmetic, no I/O.

Why here and not in a face: the renter's page, its JSON and the technician console's
``status`` must say the same figure at the same moment, so the figure is computed once,
from the same three inputs, where the usage logic lives:

- the plan as the cloud assigned it (``agent.sim.Plan``): its cap, its window and the
  allowance left *when it was assigned* (``remaining_bytes``, the cloud's view);
- the bytes this device metered on the SIM since (``Metering.used_on_current``): what the
  cloud has not necessarily ingested yet, and what the swap policy reads too;
- the wall clock and the plan's zone, for when the window resets.

Used in the window = cap - (remaining at assignment - used since). A plan today has one
rule (one cap, one window); ``rules()`` returns a list so that a plan of several rules (a
daily and a monthly cap) is one more element each, not a new shape for every reader.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from agent.errors import ConfigError
from agent.usage.calendar import parse_tz

WINDOWS = ("day", "month", "rolling72h", "none")
"""agent.sim.Plan.window's values."""
ROLLING_WINDOW_S = 72 * 3600
"""domain.md's "100 MB / 3 days": the last 72 hours, no calendar reset."""


@dataclass(frozen=True)
class Rule:
    """One rule of a plan as a renter reads it: ``used`` of ``cap`` in ``window``."""

    window: str
    """"day", "month", "rolling72h" or "none" (no cap: a flat-rate plan)."""
    cap_bytes: int | None
    used_bytes: int | None
    """None when the cloud gave no remaining allowance (nothing to subtract from)."""
    left_bytes: int | None
    resets_at: float | None
    """UNIX time of the next reset (day and month windows); None for rolling and none."""
    throttle_kbps: int | None
    """The speed once the cap is used (or, with no cap, the plan's speed)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def next_reset(window: str, wall: float, tz: tzinfo) -> float | None:
    """Midnight after ``wall`` (day) or the first of the next month at midnight (month),
    in the plan's zone; None for windows that do not reset on the calendar."""
    now = datetime.fromtimestamp(wall, tz)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return (midnight + timedelta(days=1)).timestamp()
    if window == "month":
        first = midnight.replace(day=1)
        return (first.replace(year=first.year + 1, month=1) if first.month == 12
                else first.replace(month=first.month + 1)).timestamp()
    return None


def rules(plan: dict[str, Any] | None, used_since_assignment: int, wall: float,
          default_tz: str) -> list[Rule]:
    """The plan's rules with their use now. ``plan`` is ``Plan.to_dict()`` as the SIM's
    public facts carry it (None: the seed SIM or no assignment: no rules)."""
    if not plan:
        return []
    window = str(plan.get("window") or "none")
    cap = plan.get("cap_bytes")
    remaining = plan.get("remaining_bytes")
    throttle = plan.get("throttle_kbps")
    if cap is None or window == "none":
        return [Rule("none", None, None, None, None, throttle)]
    used = left = None
    if remaining is not None:
        left = max(0, int(remaining) - max(0, int(used_since_assignment)))
        used = max(0, int(cap) - left)
    try:
        tz = parse_tz(str(plan.get("tz") or default_tz))
    except ConfigError:  # a plan's zone the cloud got wrong: the device's own zone, not no figure
        tz = parse_tz(default_tz)
    return [Rule(window, int(cap), used, left, next_reset(window, wall, tz), throttle)]


def human_bytes(n: int | None) -> str:
    """Decimal units as carriers write plans ("3 GB" is 3,000,000,000 bytes): one decimal
    below 10 of a unit, none above; the page and the console print the same string."""
    if n is None:
        return "-"
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"

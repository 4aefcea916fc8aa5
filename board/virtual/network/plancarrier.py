"""The lab carrier's reading of a SIM's plan: each rule applied at the exact byte, on lab time.

Why a second reading: the device counts its allowance with agent/plans/; a carrier that
used the same code would only show the device agreeing with itself (the reference cloud
keeps its own contract reader for the same reason). So this module reads the plan from
docs/protocol.md 4.2 and domain.md alone, and imports nothing of the agent.

What a carrier counts: its own per-SIM byte counters (the nft counters in the carrier's
namespace, IP bytes, both directions), read every check (``CAP_CHECK_SECONDS`` in the lab
daemon) and stamped with **lab time** (the host's clock plus the lab's offset,
board/virtual/network/labclock.py), so ``pocket-lab clock --advance`` moves the carrier
across a JST midnight, a month start or 72 hours as it moves the device. Bytes between
two readings count at the later one: the carrier's own granularity is one check.

A rule is over when the bytes it counts in its window exceed its cap:
- ``month`` / ``day``: the calendar month / day containing now, in the plan's zone
  (JST by default), from its first reading; it lifts when the window ends;
- ``rolling`` N hours: the readings in (now - N h, now]; it lifts once old bytes age out;
- price steps never slow the SIM; a flat-rate plan (``nominal_kbps``) is held at that rate
  whenever no rule is over; an unnumbered "low speed" is ``LOW_SPEED_KBPS``.

A pool SIM is shared: bytes it carried in *other* routers (``pocket-lab used-elsewhere``)
count in every window they fall in, at the lab time they were used, beside this lab's
counters. Credits the platform bought (a top-up, an add-on: ``pocket-lab plan-update
--topup``) raise the cap of the plan's month throttle rules while they are valid
(domain.md: an add-on in the month bought, a top-up to the end of the third month; never a
day or rolling rule). The lab carrier sums the credits valid now; it does not carry a
credit's unused part from one month into the next, which no lab test spans.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

LOW_SPEED_KBPS = 128
""""Low speed" with no number (the 5 GB, 10 GB and 100 MB / 3 days contracts): the monthly
contract's 128 kbps (board/virtual/cloud/plans.py says the same)."""
KEEP_S = 745 * 3600
"""Readings older than the longest rolling window a plan may have (744 h) are dropped,
except the last one before each kept reading (the baseline of a window's first bytes)."""
JST = timezone(timedelta(hours=9))


@dataclass(frozen=True)
class CarrierRule:
    id: str
    window: str
    hours: int | None
    cap: int | None
    count: str
    throttle: bool
    rate_kbps: int


def rules_of(plan: dict[str, Any] | None) -> tuple[list[CarrierRule], int | None, tzinfo]:
    """A plan's rules (both forms of docs/protocol.md 4.2), its nominal rate and zone."""
    plan = plan or {}
    tz = _zone(plan.get("tz"))
    if "rules" in plan:
        out = [CarrierRule(str(r["id"]), str(r["window"]), r.get("hours"), r.get("cap_bytes"),
                           str(r.get("count", "both")), r.get("action", "throttle") == "throttle",
                           int(r.get("throttle_kbps") or LOW_SPEED_KBPS)) for r in plan["rules"]]
        return out, plan.get("nominal_kbps"), tz
    cap, window = plan.get("cap_bytes"), plan.get("window", "month")
    if cap is None or window == "none":
        return [], None, tz
    win, hours = ("rolling", 72) if window == "rolling72h" else (window, None)
    return [CarrierRule("cap", win, hours, int(cap), "both", True,
                        int(plan.get("throttle_kbps") or LOW_SPEED_KBPS))], None, tz


def _zone(offset: Any) -> tzinfo:
    if not offset:
        return JST
    parsed = datetime.fromisoformat(f"2000-01-01T00:00:00{offset}").tzinfo
    return parsed or JST


def window_start(rule: CarrierRule, now: float, tz: tzinfo) -> float:
    local = datetime.fromtimestamp(now, tz)
    if rule.window == "month":
        return datetime(local.year, local.month, 1, tzinfo=tz).timestamp()
    if rule.window == "day":
        return datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()
    assert rule.hours is not None
    return now - rule.hours * 3600


@dataclass
class SimCount:
    """One SIM's readings: lab time and its cumulative (up, down) bytes, monotonic."""

    times: list[float] = field(default_factory=list)
    up: list[int] = field(default_factory=list)
    down: list[int] = field(default_factory=list)
    _raw: tuple[int, int] | None = None

    def record(self, t: float, up: int, down: int) -> None:
        """A counter reading at lab time ``t``; counters that went back (a new lab) restart."""
        last_up, last_down = (self.up[-1], self.down[-1]) if self.up else (0, 0)
        raw_up, raw_down = self._raw or (0, 0)
        du = up - raw_up if up >= raw_up else up
        dd = down - raw_down if down >= raw_down else down
        self._raw = (up, down)
        if self.times and du == 0 and dd == 0:
            return  # nothing moved: the last reading already says it (memory grows with traffic only)
        if self.times and t < self.times[-1]:
            t = self.times[-1]  # lab time never runs back for the carrier
        self.times.append(t)
        self.up.append(last_up + du)
        self.down.append(last_down + dd)

    def at(self, t: float) -> tuple[int, int]:
        """Cumulative (up, down) at lab time ``t``: the last reading at or before it."""
        i = bisect.bisect_right(self.times, t) - 1
        return (self.up[i], self.down[i]) if i >= 0 else (0, 0)

    def prune(self, now: float) -> None:
        cut = bisect.bisect_left(self.times, now - KEEP_S) - 1
        if cut > 0:
            del self.times[:cut], self.up[:cut], self.down[:cut]


class CarrierMeter:
    """The carrier's count per SIM and its verdict per plan."""

    def __init__(self) -> None:
        self.sims: dict[str, SimCount] = {}
        self.elsewhere: dict[str, list[tuple[float, int]]] = {}
        """Per ICCID: (lab time, bytes) the SIM carried in other routers."""
        self.credits: dict[str, list[dict[str, Any]]] = {}
        """Per ICCID: credits ({"kind", "bytes", "bought"}) on top of its month caps."""

    def record(self, iccid: str, t: float, up: int, down: int) -> None:
        count = self.sims.setdefault(iccid, SimCount())
        count.record(t, up, down)
        count.prune(t)

    def used(self, iccid: str, rule: CarrierRule, now: float, tz: tzinfo) -> int:
        """Bytes ``rule`` counts in its window at ``now`` (exact at the carrier's readings)."""
        start = window_start(rule, now, tz)
        # elsewhere: downlink, as most of a renter's bytes are
        down = sum(n for t, n in self.elsewhere.get(iccid, ()) if start < t <= now)
        up = 0
        count = self.sims.get(iccid)
        if count is not None and count.times:
            up1, down1 = count.at(now)
            up0, down0 = count.at(start)
            up, down = up1 - up0, down + down1 - down0
        return up + down if rule.count == "both" else down if rule.count == "rx" else up

    def cap(self, iccid: str, rule: CarrierRule, now: float, tz: tzinfo) -> int | None:
        """The rule's cap at ``now``: a month throttle rule's raised by the credits valid now."""
        if rule.cap is None or rule.window != "month" or not rule.throttle:
            return rule.cap
        return rule.cap + sum(int(c["bytes"]) for c in self.credits.get(iccid, ())
                              if credit_valid(c, now, tz))

    def verdict(self, iccid: str, plan: dict[str, Any] | None, now: float) -> tuple[str, int] | None:
        """(why, rate) the SIM is held at now: an over rule's id and rate, the plan's
        nominal rate ("nominal"), or None (full speed)."""
        rules, nominal, tz = rules_of(plan)
        over = [(r.rate_kbps, r.id) for r in rules
                if r.throttle and r.cap is not None and self.used(iccid, r, now, tz) > (self.cap(iccid, r, now, tz) or 0)]
        if over:
            rate, rule_id = min(over)
            return rule_id, rate
        return ("nominal", int(nominal)) if nominal else None


TOPUP_MONTHS = 3
"""domain.md: a top-up is valid "until the end of the third month" (the month bought is the
first); an add-on only in the month bought."""


def credit_valid(credit: dict[str, Any], now: float, tz: tzinfo) -> bool:
    bought = datetime.fromtimestamp(float(credit["bought"]), tz)
    months = TOPUP_MONTHS if credit.get("kind") == "topup" else 1
    first = datetime(bought.year, bought.month, 1, tzinfo=tz)
    index = bought.year * 12 + bought.month - 1 + months
    end = datetime(index // 12, index % 12 + 1, 1, tzinfo=tz)
    return first.timestamp() <= now < end.timestamp()

"""Each rule's allowance: bytes used in its window, its cap, when it resets. Pure.

The device's count (agent/plans/ledger.py) and the cloud's view (agent/plans/cloudview.py)
merge here, rule by rule:

- **used** = the device's own bytes in the rule's window (the directions it counts) plus
  the bytes *other routers* used in the same window before this one got the SIM. The
  cloud says how many bytes were left (``remaining``) at ``as_of``; the others' bytes are
  ``cap - remaining - (this device's bytes in the window at as_of)``, fixed when the view
  arrives. They count while their window lasts: the same month or day, and for a rolling
  window until ``as_of + hours`` (the latest they can age out: safe, never late).
- **cap** = the rule's cap, plus, for a month rule that throttles, the credits valid now:
  add-ons (valid in the month bought) and top-ups (valid to the end of the third month,
  the month bought counted as the first). Credits never lift a day or rolling rule
  (domain.md: top-ups "do not lift a 72-hour limit"). A credit used up in one month is
  gone in the next: overflow beyond the cap consumes the credits that expire first.
- **resets at**: the end of a calendar window; for a rolling window over its cap, the
  moment enough of its oldest buckets age out to bring it back to the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from agent.clock import JST
from agent.plans.ledger import AllowanceLedger
from agent.plans.rules import PlanRules, Rule
from agent.plans.windows import HOUR_S, month_start, next_month_start, resets_at
from agent.usage import calendar

TOPUP_MONTHS = 3
"""domain.md: 500 MB / 1 GB top-ups are valid "until the end of the third month"; the
month bought is the first (a top-up bought on 15 January lasts to 31 March 23:59:59)."""
MAX_ADDONS_PER_MONTH = 3
"""domain.md: "+10 GB, at most 3 times per month, valid only in that month"."""


@dataclass(frozen=True)
class Credit:
    """Bytes the platform bought for this SIM on top of its month caps."""

    id: str
    kind: str
    """"addon" (valid in the month bought) or "topup" (to the end of the third month)."""
    bytes: int
    bought: float
    """Wall time of purchase: its month (in the plan's zone) starts its validity."""

    def valid(self, t: float, tz: tzinfo = JST) -> bool:
        months = 1 if self.kind == "addon" else TOPUP_MONTHS
        return month_start(self.bought, tz) <= t < next_month_start(self.bought, tz, months)

    def expires(self, tz: tzinfo = JST) -> float:
        return next_month_start(self.bought, tz, 1 if self.kind == "addon" else TOPUP_MONTHS)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "bytes": self.bytes, "bought": self.bought}


@dataclass(frozen=True)
class CloudFacts:
    """What the cloud told us about one SIM: usage by others per rule, and credits."""

    as_of: float | None = None
    others: dict[str, int] = field(default_factory=dict)
    credits: tuple[Credit, ...] = ()


@dataclass(frozen=True)
class RuleStatus:
    rule: Rule
    used: int
    cap: int | None
    resets_at: float | None

    @property
    def remaining(self) -> int | None:
        return None if self.cap is None else self.cap - self.used

    @property
    def exceeded(self) -> bool:
        return self.cap is not None and self.used > self.cap

    def to_json(self, tz: tzinfo = JST) -> dict[str, Any]:
        return {"rule": self.rule.id, "window": self.rule.window, "hours": self.rule.hours,
                "action": self.rule.action, "used": self.used, "cap": self.cap, "remaining": self.remaining,
                "resets_at": calendar.iso(self.resets_at, tz) if self.resets_at is not None else None,
                "exceeded": self.exceeded}


def _day(t: float, tz: tzinfo) -> str:
    return calendar.day_of(t, tz).isoformat()


def _month_days(t: float, tz: tzinfo) -> tuple[str, str]:
    start = datetime.fromtimestamp(month_start(t, tz), tz).date()
    end = datetime.fromtimestamp(next_month_start(t, tz), tz).date() - timedelta(days=1)
    return start.isoformat(), end.isoformat()


def device_used(rule: Rule, ledger: AllowanceLedger, iccid: str, now: float, tz: tzinfo = JST) -> int:
    """This device's bytes in ``rule``'s window at ``now`` (the directions it counts)."""
    if rule.window == "month":
        rx, tx = ledger.used_on_days(iccid, *_month_days(now, tz))
    elif rule.window == "day":
        today = _day(now, tz)
        rx, tx = ledger.used_on_days(iccid, today, today)
    elif rule.window == "rolling":
        assert rule.hours is not None
        rx, tx = ledger.used_since(iccid, now - rule.hours * HOUR_S)
    else:
        return 0
    return rule.counted(rx, tx)


def others_in_window(rule: Rule, facts: CloudFacts, now: float, tz: tzinfo = JST) -> int:
    """The other routers' bytes the cloud reported, while the window they fell in lasts."""
    used = facts.others.get(rule.id, 0)
    if not used or facts.as_of is None:
        return 0
    if rule.window == "month":
        same = month_start(facts.as_of, tz) == month_start(now, tz)
    elif rule.window == "day":
        same = _day(facts.as_of, tz) == _day(now, tz)
    elif rule.window == "rolling":
        assert rule.hours is not None
        same = now < facts.as_of + rule.hours * HOUR_S
    else:
        same = False
    return used if same else 0


def others_from_remaining(plan: PlanRules, remaining: dict[str, int], ledger: AllowanceLedger, iccid: str,
                          as_of: float, tz: tzinfo = JST) -> dict[str, int]:
    """The bytes other routers used, per rule: the cap less what the cloud says is left
    less what this device had already counted in the window at ``as_of``."""
    out: dict[str, int] = {}
    for rule_id, left in remaining.items():
        rule = plan.rule(rule_id)
        if rule is None or rule.cap_bytes is None:
            continue
        out[rule_id] = max(0, rule.cap_bytes - left - device_used(rule, ledger, iccid, as_of, tz))
    return out


def credit_left(rule: Rule, credits: tuple[Credit, ...], monthly_used: dict[str, int], now: float,
                tz: tzinfo = JST) -> int:
    """Credit bytes on top of a month rule's cap at ``now``: each month's overflow beyond
    the cap (``monthly_used``: "YYYY-MM" -> bytes) consumes the credits that expire first."""
    if rule.window != "month" or rule.action != "throttle" or rule.cap_bytes is None or not credits:
        return 0
    left = {c.id: c.bytes for c in credits}
    t = month_start(min(c.bought for c in credits), tz)
    current = month_start(now, tz)
    while t < current:
        overflow = max(0, monthly_used.get(calendar.month_of(datetime.fromtimestamp(t, tz).date()), 0)
                       - rule.cap_bytes)
        for c in sorted((c for c in credits if c.valid(t, tz)), key=lambda c: c.expires(tz)):
            take = min(overflow, left[c.id])
            left[c.id] -= take
            overflow -= take
        t = next_month_start(t, tz)
    return sum(left[c.id] for c in credits if c.valid(now, tz))


def _monthly_used(rule: Rule, ledger: AllowanceLedger, iccid: str, facts: CloudFacts, now: float,
                  tz: tzinfo) -> dict[str, int]:
    out: dict[str, int] = {}
    if not facts.credits:
        return out
    t = month_start(min(c.bought for c in facts.credits), tz)
    while t <= now:
        month = calendar.month_of(datetime.fromtimestamp(t, tz).date())
        out[month] = device_used(rule, ledger, iccid, t, tz) + others_in_window(rule, facts, t, tz)
        t = next_month_start(t, tz)
    return out


def drains_at(rule: Rule, ledger: AllowanceLedger, iccid: str, used: int, cap: int, now: float) -> float | None:
    """When a rolling rule over its cap is back at it: the oldest buckets age out first."""
    assert rule.hours is not None
    window = rule.hours * HOUR_S
    excess = used - cap
    for bucket in ledger.bucket_list(iccid):
        if bucket.end <= now - window:
            continue
        excess -= rule.counted(bucket.rx, bucket.tx)
        if excess <= 0:
            return bucket.end + window
    return None


def status(plan: PlanRules, ledger: AllowanceLedger, iccid: str, facts: CloudFacts, now: float,
           tz: tzinfo = JST) -> list[RuleStatus]:
    """Every rule's used / cap / resets-at at ``now``."""
    out = []
    for rule in plan.rules:
        used = device_used(rule, ledger, iccid, now, tz) + others_in_window(rule, facts, now, tz)
        cap = rule.cap_bytes
        if cap is not None:
            cap += credit_left(rule, facts.credits, _monthly_used(rule, ledger, iccid, facts, now, tz), now, tz)
        reset = resets_at(rule, now, tz)
        if rule.window == "rolling" and cap is not None and used > cap:
            reset = drains_at(rule, ledger, iccid, used, cap, now)
        out.append(RuleStatus(rule, used, cap, reset))
    return out


def month_of(t: float, tz: tzinfo = JST) -> str:
    """"YYYY-MM" of wall time ``t`` in the plan's zone."""
    return calendar.month_of(calendar.day_of(t, tz))



"""What the plan says about the SIM now: the rates it should deliver, the rule that
explains a throttle, and when each rule will throttle at the current rate. Pure.

Why here and not in the classifier: the classifier judges a link by its samples; whether
a flat 200 kbps is the plan working (the 200 kbps plan) or a cap (the monthly plan after
100 GB) is the contract's to say. And the platform's most valuable signal is the case no
rule explains: a throttle while the device's count is below every cap (2020: caps the
wholesaler changed without telling anyone), reported as ``no_rule_explains``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.health.thresholds import KNOWN_RATE_HIGH, KNOWN_RATE_LOW
from agent.plans.allowance import RuleStatus
from agent.plans.rules import PlanRules

FLAT_PLAN_POLICE_RATES_KBPS = (32,)
"""Rates a carrier polices a flat-rate plan to below what it sells: 32 kbps, the lowest
tier Japanese carriers use (issue 22: "a carrier can police a 200 kbps plan to 32 kbps")."""


def throttle_rates(plan: PlanRules | None) -> tuple[int, ...]:
    """The rates this SIM can be throttled to under its plan: its rules' stated rates,
    and for a plan with a nominal rate the flat-plan police rates below it."""
    if plan is None:
        return ()
    rates = set(plan.throttle_rates())
    if plan.nominal_kbps is not None:
        rates |= {r for r in FLAT_PLAN_POLICE_RATES_KBPS if r < plan.nominal_kbps * KNOWN_RATE_LOW}
    return tuple(sorted(rates))


def nominal_kbps(plan: PlanRules | None) -> int | None:
    """What the plan sells when no rule is hit (None: the radio's best)."""
    return plan.nominal_kbps if plan is not None else None


@dataclass(frozen=True)
class Explanation:
    """Which rule the device believes the carrier applied."""

    rule: str | None
    no_rule_explains: bool | None
    """True: throttled with no rule over its cap at that rate; None: no plan known."""


def explain(kbps: float | None, statuses: Sequence[RuleStatus], plan_known: bool) -> Explanation:
    """The rule a throttle at ``kbps`` is explained by: an exceeded throttle rule whose
    rate matches (or whose rate the contract leaves unstated), else none."""
    if not plan_known:
        return Explanation(None, None)
    for s in statuses:
        unknown_cap = s.cap is None and s.rule.action == "throttle" and s.rule.window != "none"
        if not (s.exceeded and s.rule.throttles) and not unknown_cap:
            continue
        rate = s.rule.throttle_kbps
        if rate is None or kbps is None or KNOWN_RATE_LOW <= kbps / rate <= KNOWN_RATE_HIGH:
            return Explanation(s.rule.id, False)
    return Explanation(None, True)


RESET_SOON_S = 900.0
"""A rule whose window resets within 15 minutes is not worth a swap (the day pass used up
at 23:50: a swap breaks the user's connection for seconds and spends a pool SIM, while
the SIM is back at full speed at midnight). The rule chosen for issue 22's "swapped in the
morning only if the day's remaining demand is worth it": a used-up calendar rule is
swapped away from unless it resets within RESET_SOON_S; one that resets before the
current rate would reach its cap is no reason to swap at all."""

SWAP_BELOW_SHARE = 0.1
"""A rule is "low" below 10 % of its cap, or the policy's ``swap_below_bytes`` if that is
smaller: the policy's 50 MB default is half of the 100 MB / 3 days plan's whole cap."""


@dataclass(frozen=True)
class Forecast:
    """The first throttle rule to be hit at the current rate."""

    rule: str
    remaining: int
    """Bytes left under it (0 or less: the device's count says it is already hit)."""
    seconds: float | None
    """Until it throttles at the current rate (None: no traffic now)."""
    low_below: int
    """Bytes left under which this rule counts as low (``SWAP_BELOW_SHARE`` of its cap)."""


def first_cap(statuses: Sequence[RuleStatus], bytes_per_s: float, now: float,
              swap_below_bytes: int) -> Forecast | None:
    """The throttle rule closest to its cap, judged by time at ``bytes_per_s`` (by bytes
    left when there is no traffic). A rolling rule's old bytes that will age out are not
    counted as coming back: the forecast is early, never late. A rule whose window resets
    first (``RESET_SOON_S``) is left out."""
    best: Forecast | None = None
    for s in statuses:
        if not s.rule.throttles or s.remaining is None or s.cap is None:
            continue
        left = max(0, s.remaining)
        seconds = left / bytes_per_s if bytes_per_s > 0 else None
        if s.resets_at is not None and s.rule.until == "window_end":
            to_reset = s.resets_at - now
            if to_reset <= RESET_SOON_S or (seconds is not None and to_reset <= seconds):
                continue
        candidate = Forecast(s.rule.id, s.remaining, seconds, min(swap_below_bytes, int(s.cap * SWAP_BELOW_SHARE)))
        if best is None or _sooner(candidate, best):
            best = candidate
    return best


DAY_S = 86400.0


def daily_share(plan: PlanRules | None, statuses: Sequence[RuleStatus], now: float) -> float | None:
    """Bytes a day the plan allows from now on: the smallest over its throttle rules of
    what is left over the days to the rule's reset (a rolling rule: its cap over its
    hours), or what the nominal rate carries in a day on a flat-rate plan. None: no plan."""
    if plan is None:
        return None
    shares = []
    for s in statuses:
        if not s.rule.throttles or s.cap is None:
            continue
        if s.rule.window == "rolling":
            assert s.rule.hours is not None
            shares.append(s.cap / (s.rule.hours / 24))
        elif s.resets_at is not None:
            shares.append(max(0, s.cap - s.used) / max(1.0, (s.resets_at - now) / DAY_S))
    if plan.nominal_kbps is not None:
        shares.append(plan.nominal_kbps * 1000 / 8 * DAY_S)
    return min(shares) if shares else None


def resets_soon(statuses: Sequence[RuleStatus], rule_id: str | None, now: float) -> float | None:
    """Seconds until the calendar rule ``rule_id`` resets, if within RESET_SOON_S (a
    throttle it explains is then not worth a swap), else None."""
    for s in statuses:
        if s.rule.id == rule_id and s.resets_at is not None and s.rule.until == "window_end":
            left = s.resets_at - now
            return left if left <= RESET_SOON_S else None
    return None


def throttle_in_s(s: RuleStatus, bytes_per_s: float, now: float) -> float | None:
    """Seconds until ``s``'s rule throttles at ``bytes_per_s`` (0: its cap is already
    passed). None: it never throttles, or there is no traffic now, or its calendar window
    resets first. Old bytes of a rolling window that age out meanwhile are not counted as
    coming back (as ``first_cap``: early, never late)."""
    if not s.rule.throttles or s.remaining is None:
        return None
    if s.remaining <= 0:
        return 0.0
    if bytes_per_s <= 0:
        return None
    seconds = s.remaining / bytes_per_s
    if s.rule.until == "window_end" and s.resets_at is not None and s.resets_at - now <= seconds:
        return None
    return seconds


def _sooner(a: Forecast, b: Forecast) -> bool:
    if a.seconds is not None and b.seconds is not None:
        return a.seconds < b.seconds
    return a.remaining < b.remaining

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


@dataclass(frozen=True)
class Forecast:
    """The first throttle rule to be hit at the current rate."""

    rule: str
    remaining: int
    seconds: float | None
    """Until it throttles at the current rate (None: no traffic now, not soon)."""


def first_cap(statuses: Sequence[RuleStatus], bytes_per_s: float) -> Forecast | None:
    """The throttle rule closest to its cap, judged by time at ``bytes_per_s`` (by bytes
    left when there is no traffic). A rolling rule's old bytes that will age out are not
    counted as coming back: the forecast is early, never late."""
    best: Forecast | None = None
    for s in statuses:
        if not s.rule.throttles or s.remaining is None or s.exceeded:
            continue
        seconds = s.remaining / bytes_per_s if bytes_per_s > 0 else None
        candidate = Forecast(s.rule.id, s.remaining, seconds)
        if best is None or _sooner(candidate, best):
            best = candidate
    return best


def _sooner(a: Forecast, b: Forecast) -> bool:
    if a.seconds is not None and b.seconds is not None:
        return a.seconds < b.seconds
    return a.remaining < b.remaining

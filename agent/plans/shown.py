"""Each rule of the SIM's plan as a person reads it: the renter's page, its JSON and the
technician console's ``status`` show these rows, so they say the same figure at the same
moment. Pure: the tracker's statuses (agent/plans/tracker.py), the current rate and the
wall time in, plain dicts out.

A row holds every rule of the plan, not only the first: a 5 GB plan is throttled by its
month *or* its last 72 hours, and a renter at 790 MB in three days must see the rule that
will slow them, not the month's 4 GB left. For each rule: used / cap / left, when its
window resets (a calendar rule) or drains back under the cap (a rolling rule over it),
and when it will throttle at the current rate (``throttle_at``). A plan without rules
(the 200 kbps plan) is one row with no cap and its nominal rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.plans import predict
from agent.plans.allowance import RuleStatus
from agent.plans.rules import PlanRules

LOW_NOTICE_SHARE = 0.2
"""A throttle rule is "low" for the renter below a fifth of its cap: twice the policy's own
low mark (``predict.SWAP_BELOW_SHARE``), so the renter reads the notice before the router
acts on it, never after."""
LOW_NOTICE_S = 3600.0
"""...or when the current rate reaches the cap within an hour: on a 100 GB month the fifth
is 20 GB, but a renter downloading at 50 Mbit/s spends 1 GB in under three minutes, so
the time to the cap says "low" better than the share when the rate is high."""


def rows(plan: PlanRules | None, statuses: Sequence[RuleStatus], bytes_per_s: float,
         now: float) -> list[dict[str, Any]]:
    """One row per rule of ``plan`` (none: the seed SIM or no assignment)."""
    if plan is None:
        return []
    if not plan.rules:
        return [{"rule": None, "window": "none", "hours": None, "action": None, "cap_bytes": None,
                 "used_bytes": None, "left_bytes": None, "exceeded": False, "resets_at": None,
                 "throttle_kbps": None, "nominal_kbps": plan.nominal_kbps, "throttle_at": None, "low": False}]
    return [_row(s, bytes_per_s, now) for s in statuses]


def _row(s: RuleStatus, bytes_per_s: float, now: float) -> dict[str, Any]:
    seconds = predict.throttle_in_s(s, bytes_per_s, now)
    left = None if s.remaining is None else max(0, s.remaining)
    low = (s.rule.throttles and s.cap is not None and left is not None and not s.exceeded
           and (left < s.cap * LOW_NOTICE_SHARE or (seconds is not None and seconds <= LOW_NOTICE_S)))
    return {"rule": s.rule.id, "window": s.rule.window, "hours": s.rule.hours, "action": s.rule.action,
            "cap_bytes": s.cap, "used_bytes": s.used, "left_bytes": left, "exceeded": s.exceeded,
            "resets_at": s.resets_at, "throttle_kbps": s.rule.throttle_kbps, "nominal_kbps": None,
            "throttle_at": round(now + seconds, 1) if seconds is not None else None, "low": bool(low)}

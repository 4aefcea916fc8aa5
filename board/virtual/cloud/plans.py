"""domain.md's plan table, written as the contracts write it (docs/protocol.md 4.2).

Every row is a plan in the rules form: the reference pool gives SIMs these plans, and the
tests read each number here as a case. "Low speed" with no number in the contract is a
throttle with ``throttle_kbps`` null; the lab's carrier polices it to ``LOW_SPEED_KBPS``.
"""

from __future__ import annotations

from typing import Any

GB = 1_000_000_000
MB = 1_000_000

LOW_SPEED_KBPS = 128
"""What the lab's carrier polices an unnumbered "low speed" to: the monthly contract's own
throttle rate (domain.md: 128 kbps up and down)."""


def _throttle(rule_id: str, window: str, cap: int, rate: int | None, hours: int | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rule_id, "window": window, "cap_bytes": cap, "count": "both",
                            "action": "throttle", "throttle_kbps": rate}
    if hours is not None:
        rule["hours"] = hours
    return rule


def _step(gb: int) -> dict[str, Any]:
    return {"id": f"step-{gb}gb", "window": "month", "cap_bytes": gb * GB, "count": "both", "action": "price_step",
            "throttle_kbps": None}


PLANS: dict[str, dict[str, Any]] = {
    "monthly-100GB": {"name": "monthly-100GB", "tz": "+09:00", "nominal_kbps": None,
                      "rules": [_throttle("month", "month", 100 * GB, 128)]},
    "tiered": {"name": "tiered", "tz": "+09:00", "nominal_kbps": None,
               "rules": [_step(gb) for gb in (1, 5, 20, 40)]},
    "200kbps": {"name": "200kbps", "tz": "+09:00", "nominal_kbps": 200, "rules": []},
    "100MB-3days": {"name": "100MB-3days", "tz": "+09:00", "nominal_kbps": None,
                    "rules": [_throttle("72h", "rolling", 100 * MB, None, 72)]},
    "5GB-month": {"name": "5GB-month", "tz": "+09:00", "nominal_kbps": None,
                  "rules": [_throttle("month", "month", 5 * GB, None), _throttle("72h", "rolling", 800 * MB, None, 72)]},
    "10GB-month": {"name": "10GB-month", "tz": "+09:00", "nominal_kbps": None,
                   "rules": [_throttle("month", "month", 10 * GB, None), _throttle("72h", "rolling", 2 * GB, None, 72)]},
    "daypass-3GB": {"name": "daypass-3GB", "tz": "+09:00", "nominal_kbps": None,
                    "rules": [_throttle("day", "day", 3 * GB, 384)]},
}
"""domain.md's table, row by row."""


def plan(name: str) -> dict[str, Any]:
    """A fresh copy of one plan of the table (callers add ``remaining``)."""
    body = PLANS[name]
    return {**body, "rules": [dict(r) for r in body["rules"]]}

"""The reference cloud's count of each SIM's plan rules, from the usage records it receives.

Why: the platform tells the device what is left when it assigns a SIM (docs/protocol.md
4.2 ``remaining``: other routers' use included), and must not assign a SIM that one of its
rules has nearly used up. The cloud has only what devices report: usage bodies per plan
day, with their start and end. Calendar rules sum the days of their month or day; a
rolling rule sums the bodies that end inside its window (a body is at most a minute, or
15 minutes of a trickle: docs/usage.md). Rules are read as the lab carrier reads them
(board/virtual/network/plancarrier.py): the reference side never uses the agent's code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from board.virtual.network.plancarrier import rules_of

KEEP_S = 745 * 3600
"""Bodies kept for rolling rules: the longest rolling window a plan may have (744 h)."""


def add_usage(usage: dict[str, Any], body: dict[str, Any]) -> None:
    """Count one usage body (docs/protocol.md 3.2) into ``usage``: {"days": {day: [rx, tx]},
    "recent": [[end, rx, tx], ...]}."""
    day = usage.setdefault("days", {}).setdefault(body["day"], [0, 0])
    day[0] += int(body["rx_bytes"])
    day[1] += int(body["tx_bytes"])
    end = datetime.fromisoformat(body["end"]).timestamp()
    recent = usage.setdefault("recent", [])
    recent.append([end, int(body["rx_bytes"]), int(body["tx_bytes"])])
    newest = max(e for e, _, _ in recent)
    usage["recent"] = [r for r in recent if r[0] > newest - KEEP_S]


def remaining(plan: dict[str, Any] | None, usage: dict[str, Any], now: float) -> dict[str, int]:
    """Bytes left per capped rule of a rules-form ``plan`` at ``now``, as this cloud counts."""
    rules, _, tz = rules_of(plan)
    local = datetime.fromtimestamp(now, tz)
    out = {}
    for rule in rules:
        if rule.cap is None:
            continue
        if rule.window == "month":
            month = f"{local.year:04d}-{local.month:02d}"
            pairs = [v for d, v in usage.get("days", {}).items() if d.startswith(month)]
        elif rule.window == "day":
            pairs = [usage.get("days", {}).get(local.date().isoformat(), [0, 0])]
        else:
            assert rule.hours is not None
            pairs = [[rx, tx] for end, rx, tx in usage.get("recent", []) if end > now - rule.hours * 3600]
        used = sum(rx + tx if rule.count == "both" else rx if rule.count == "rx" else tx for rx, tx in pairs)
        out[rule.id] = max(0, rule.cap - used)
    return out


def room_ok(plan: dict[str, Any] | None, usage: dict[str, Any], now: float, fraction: float) -> bool | None:
    """Whether every throttle rule has at least ``fraction`` of its cap left (None: the plan
    has no throttle rule with a cap: a flat-rate or price-step plan)."""
    rules, _, _ = rules_of(plan)
    left = remaining(plan, usage, now)
    capped = [r for r in rules if r.throttle and r.cap is not None]
    if not capped:
        return None
    return all(left[r.id] >= fraction * (r.cap or 0) for r in capped)


def min_room(plan: dict[str, Any] | None, usage: dict[str, Any], now: float) -> int:
    """The smallest bytes left under any throttle rule (the pick's "most room")."""
    rules, _, _ = rules_of(plan)
    left = remaining(plan, usage, now)
    return min((left[r.id] for r in rules if r.throttle and r.cap is not None), default=0)

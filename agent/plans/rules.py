"""A SIM's plan as its contract writes it: a set of rules, any of which may throttle.

Why rules and not one cap: the contracts in domain.md's plan table say things one cap
cannot hold. "Month over 5 GB *or* last 72 h over 800 MB" is two rules; the overseas day
pass resets at JST midnight; the 200 kbps plan has no cap at all, and its 200 kbps is
what it sells (its *nominal* rate), not a throttle, so a classifier that took it for one
called a good SIM throttled (issue 22). Each rule says:

- ``window``: ``month`` (the plan zone's calendar month, 1st 00:00:00 to the last day's
  23:59:59), ``day`` (its calendar day), ``rolling`` (the last ``hours`` hours, the
  carrier's "last 72 h"), or ``none`` (a rule that never resets: only meaningful without
  a cap, so it is refused with one);
- ``cap_bytes``: bytes allowed in the window (exact, never rounded: billing rounds);
- ``count``: the directions counted (``both``, ``rx`` = downlink, ``tx`` = uplink);
- ``action``: ``throttle`` (the carrier polices to ``throttle_kbps``; null: the contract
  says only "low speed") or ``price_step`` (the tiered plan's 1/5/20/40 GB: a higher bill,
  the same speed);
- ``until``: when a throttle lifts: ``window_end`` (month, day) or ``below_cap`` (a
  rolling window, once old bytes age out). It follows from the window; given, it must
  agree, so a contract typed wrong is refused rather than half-believed.

Bad input is refused whole (``PlanError`` naming the field): an unknown window, a negative
cap, a rule that repeats another (same window and count: which one would the carrier
apply?), a throttle faster than the plan's own nominal rate. Old single-rule plans (``cap_bytes``,
``window``, ``throttle_kbps`` at the top: agent/sim.py ``Plan``) are still read; their
``none`` window with a rate and no cap is the flat-rate plan, and reads as its nominal rate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import PlanError

WINDOWS = ("month", "day", "rolling", "none")
LEGACY_WINDOWS = {"month": ("month", None), "day": ("day", None), "rolling72h": ("rolling", 72), "none": ("none", None)}
"""The old single-rule plan's windows, as rules' (window, hours)."""
COUNTS = ("both", "rx", "tx")
ACTIONS = ("throttle", "price_step")
UNTIL = {"month": "window_end", "day": "window_end", "rolling": "below_cap"}
"""When a throttle lifts, by window: a calendar window ends; a rolling one drains."""

MAX_RULES = 8
"""The tiered plan has four price steps; a month, a 72-hour and a day rule beside them
would still fit. More is not a contract anyone sells, and the bound keeps a plan small
enough for a sealed profile and a 16 KiB message."""
MAX_ROLLING_HOURS = 744
"""31 days: the longest rolling window the ledger keeps records for (agent/plans/ledger.py);
the contracts' is 72 h."""
MAX_PLAN_BYTES = 10**15
"""1 PB: as agent/cloud/profilecheck.py: ten thousand times the largest plan in domain.md."""
MAX_KBPS = 10_000_000
"""10 Gbit/s: faster than any LTE or 5G link (profilecheck.MAX_THROTTLE_KBPS)."""
NAME = re.compile(r"[\x20-\x7e]{1,64}")
RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
"""A rule's id is what a health event names (``rule``): short, plain, log-safe."""
TZ = re.compile(r"[+-](0\d|1[0-4]):[0-5]\d")

PLAN_KEYS = frozenset({"name", "tz", "nominal_kbps", "rules", "remaining", "remaining_bytes", "as_of",
                       "cap_bytes", "window", "throttle_kbps"})
LEGACY_KEYS = frozenset({"cap_bytes", "window", "throttle_kbps"})
RULE_KEYS = frozenset({"id", "window", "hours", "cap_bytes", "count", "action", "throttle_kbps", "until"})
LEGACY_RULE_ID = "cap"
"""The one rule of an old single-rule plan; its ``remaining_bytes`` is this rule's."""


@dataclass(frozen=True)
class Rule:
    """One clause of a contract: a cap in a window, and what exceeding it does."""

    id: str
    window: str
    cap_bytes: int | None
    hours: int | None = None
    count: str = "both"
    action: str = "throttle"
    throttle_kbps: int | None = None

    @property
    def until(self) -> str | None:
        return UNTIL.get(self.window)

    @property
    def throttles(self) -> bool:
        return self.action == "throttle" and self.cap_bytes is not None

    def counted(self, rx: int, tx: int) -> int:
        """The bytes of (rx, tx) this rule counts."""
        return rx + tx if self.count == "both" else rx if self.count == "rx" else tx

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "window": self.window, "cap_bytes": self.cap_bytes,
                               "count": self.count, "action": self.action, "throttle_kbps": self.throttle_kbps}
        if self.hours is not None:
            out["hours"] = self.hours
        if self.until is not None:
            out["until"] = self.until
        return out


@dataclass(frozen=True)
class PlanRules:
    """A plan: its rules, its nominal rate, its zone, and the cloud's view at assignment."""

    name: str = "unknown"
    rules: tuple[Rule, ...] = ()
    nominal_kbps: int | None = None
    """What the plan sells when no rule is hit (200 for the 200 kbps plan); None: the
    radio's best. Never a throttle: a SIM at its nominal rate is doing its job."""
    tz: str | None = None
    remaining: Mapping[str, int] = field(default_factory=dict)
    """The cloud's view per rule id: bytes left when it assigned the SIM (usage by other
    routers before this one included)."""
    as_of: float | None = None
    """Wall time the cloud's ``remaining`` was true at (None: when the device got it)."""

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def throttle_rates(self) -> list[int]:
        """The rates a hit rule polices to (the classifier's throttle rates): never the nominal."""
        return sorted({r.throttle_kbps for r in self.rules if r.action == "throttle" and r.throttle_kbps is not None})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "rules": [r.to_dict() for r in self.rules],
                               "nominal_kbps": self.nominal_kbps}
        if self.tz is not None:
            out["tz"] = self.tz
        if self.remaining:
            out["remaining"] = dict(self.remaining)
        if self.as_of is not None:
            out["as_of"] = self.as_of
        return out


def parse_plan(body: Any, prefix: str = "plan") -> PlanRules:
    """A plan from its wire form (new rules or the old single rule); PlanError names the
    first field that breaks the contract."""
    if not isinstance(body, dict):
        raise PlanError(prefix, "is not an object")
    unknown = [k for k in body if k not in PLAN_KEYS]
    if unknown:
        raise PlanError(f"{prefix}.<unknown>", f"is not a field of the contract ({len(unknown)} unknown)")
    name = body.get("name", "unknown")
    if not isinstance(name, str) or not name.isascii() or not NAME.fullmatch(name):
        raise PlanError(f"{prefix}.name", "is not 1-64 printable ASCII characters")
    tz = body.get("tz")
    if tz is not None and (not isinstance(tz, str) or not tz.isascii() or not TZ.fullmatch(tz)):
        raise PlanError(f"{prefix}.tz", "is not a UTC offset like +09:00")
    nominal = _count(body, "nominal_kbps", prefix, 1, MAX_KBPS)
    as_of = body.get("as_of")
    if as_of is not None and (isinstance(as_of, bool) or not isinstance(as_of, (int, float)) or as_of < 0):
        raise PlanError(f"{prefix}.as_of", "is not a non-negative number of UNIX seconds")
    legacy = LEGACY_KEYS & set(body)
    if "rules" in body and legacy:
        raise PlanError(f"{prefix}.{min(legacy)}", "contradicts plan.rules (old single-rule fields beside rules)")
    if "rules" in body:
        rules = _rules(body["rules"], prefix, nominal)
        remaining = _remaining(body.get("remaining"), rules, prefix)
        if "remaining_bytes" in body:
            raise PlanError(f"{prefix}.remaining_bytes", "is the old single-rule field: use plan.remaining")
    else:
        rules, nominal = _legacy(body, prefix, nominal)
        remaining = _remaining(body.get("remaining"), rules, prefix)
        left = _count(body, "remaining_bytes", prefix, 0, MAX_PLAN_BYTES)
        if left is not None and rules:
            remaining = {**remaining, rules[0].id: left}
    return PlanRules(name, rules, nominal, tz, remaining, float(as_of) if as_of is not None else None)


def _legacy(body: dict[str, Any], prefix: str, nominal: int | None) -> tuple[tuple[Rule, ...], int | None]:
    window = body.get("window", "month")
    if window not in LEGACY_WINDOWS:
        raise PlanError(f"{prefix}.window", f"is not one of {list(LEGACY_WINDOWS)}")
    cap = _count(body, "cap_bytes", prefix, 0, MAX_PLAN_BYTES)
    rate = _count(body, "throttle_kbps", prefix, 1, MAX_KBPS)
    win, hours = LEGACY_WINDOWS[window]
    if cap is None and win == "none":
        # The old plan's "throttle_kbps" of a plan without a cap or window is the rate it
        # sells (the 200 kbps plan): its nominal rate, never a throttle (issue 22).
        return (), nominal if nominal is not None else rate
    if cap is None:
        # A window and a throttle rate with the cap unknown: the rate is still a throttle
        # (the classifier knows it), the allowance has no cap to count to.
        return ((Rule(LEGACY_RULE_ID, win, None, hours, "both", "throttle", rate),) if rate else ()), nominal
    if win == "none":
        raise PlanError(f"{prefix}.window", "is 'none' with a cap: a cap that never resets")
    return (Rule(LEGACY_RULE_ID, win, cap, hours, "both", "throttle", rate),), nominal


def _rules(raw: Any, prefix: str, nominal: int | None) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        raise PlanError(f"{prefix}.rules", "is not a list")
    if len(raw) > MAX_RULES:
        raise PlanError(f"{prefix}.rules", f"has more than {MAX_RULES} rules")
    rules = [_rule(item, f"{prefix}.rules[{i}]", nominal) for i, item in enumerate(raw)]
    seen: dict[Any, int] = {}
    ids: set[str] = set()
    for i, rule in enumerate(rules):
        where = f"{prefix}.rules[{i}]"
        if rule.id in ids:
            raise PlanError(f"{where}.id", "repeats another rule's id")
        ids.add(rule.id)
        # Two throttles over the same window and directions overlap (the smaller cap
        # always wins, the other is dead text or a typo); two price steps at one cap too.
        key = (rule.window, rule.hours, rule.count, rule.action, rule.cap_bytes if rule.action == "price_step" else None)
        if key in seen:
            raise PlanError(where, f"overlaps rules[{seen[key]}] (same window and directions)")
        seen[key] = i
    return tuple(rules)


def _rule(raw: Any, where: str, nominal: int | None) -> Rule:
    if not isinstance(raw, dict):
        raise PlanError(where, "is not an object")
    unknown = [k for k in raw if k not in RULE_KEYS]
    if unknown:
        raise PlanError(f"{where}.<unknown>", f"is not a field of the contract ({len(unknown)} unknown)")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id.isascii() or not RULE_ID.fullmatch(rule_id):
        raise PlanError(f"{where}.id", "is not 1-32 lowercase letters, digits, '-' or '_'")
    window = raw.get("window")
    if window not in WINDOWS:
        raise PlanError(f"{where}.window", f"is not one of {list(WINDOWS)}")
    hours = _count(raw, "hours", where, 1, MAX_ROLLING_HOURS)
    if (window == "rolling") != (hours is not None):
        raise PlanError(f"{where}.hours", "is required by a rolling window and only by one")
    if "cap_bytes" not in raw:
        raise PlanError(f"{where}.cap_bytes", "is missing (null: no cap)")
    cap = _count(raw, "cap_bytes", where, 0, MAX_PLAN_BYTES)
    count = raw.get("count", "both")
    if count not in COUNTS:
        raise PlanError(f"{where}.count", f"is not one of {list(COUNTS)}")
    action = raw.get("action", "throttle")
    if action not in ACTIONS:
        raise PlanError(f"{where}.action", f"is not one of {list(ACTIONS)}")
    rate = _count(raw, "throttle_kbps", where, 1, MAX_KBPS)
    if window == "none" and cap is not None:
        raise PlanError(f"{where}.window", "is 'none' with a cap: a cap that never resets")
    if window != "none" and cap is None:
        raise PlanError(f"{where}.cap_bytes", f"is null in a '{window}' window: a window with nothing to count to")
    if action == "price_step" and rate is not None:
        raise PlanError(f"{where}.throttle_kbps", "is set on a price step (a price step does not slow the SIM)")
    if rate is not None and nominal is not None and rate >= nominal:
        raise PlanError(f"{where}.throttle_kbps", "is not below the plan's nominal rate (a throttle that speeds up)")
    until = raw.get("until")
    if until is not None and until != UNTIL.get(window):
        raise PlanError(f"{where}.until", f"contradicts a '{window}' window (it lifts at {UNTIL.get(window)})")
    return Rule(rule_id, window, cap, hours, count, action, rate)


def _remaining(raw: Any, rules: tuple[Rule, ...], prefix: str) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PlanError(f"{prefix}.remaining", "is not an object of rule id -> bytes")
    out: dict[str, int] = {}
    ids = {r.id: r for r in rules}
    for key, value in raw.items():
        if key not in ids or ids[key].cap_bytes is None:
            raise PlanError(f"{prefix}.remaining", "names a rule the plan does not cap")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PLAN_BYTES:
            raise PlanError(f"{prefix}.remaining.{key}", f"is not a whole number from 0 to {MAX_PLAN_BYTES}")
        out[key] = value
    return out


def _count(body: Mapping[str, Any], key: str, prefix: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlanError(f"{prefix}.{key}", f"is not a whole number from {low} to {high}")
    return value


def plan_of(facts: Mapping[str, Any] | None) -> PlanRules | None:
    """The plan of a SIM's facts (the supervisor's ``current``), or None when it has none
    or it does not read (logged by whoever accepted it: a profile's plan was checked)."""
    raw = (facts or {}).get("plan")
    if not raw:
        return None
    try:
        return parse_plan(raw)
    except PlanError:
        return None

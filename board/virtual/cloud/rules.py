"""The contract's rules that JSON Schema cannot say, by the names the schemas give them.

A schema in docs/schemas/ names such a rule in an ``x-rules`` keyword where it applies
(defs.json's ``x-rule-names`` lists them all with their meaning); the reference cloud's
validator (contract.py) runs the function of that name on the value at that place. Two
fields compared, or a check digit, are beyond the schema language, so the schema names the
rule and this module says it once, written from docs/protocol.md like the schemas.

Each rule returns why the value breaks it, or None. A value of the wrong shape is left to
the schema (which reports it already): a rule only judges what it can read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SWAP_BACKOFF_DEFAULTS = (30, 1800)
"""docs/protocol.md 3.8: backoff_base_s and backoff_cap_s of the swap policy when absent."""

PACING_BACKOFF_DEFAULTS = (1, 300)
"""docs/protocol.md 3.8.1: backoff_base_s and backoff_cap_s of the pacing knobs when absent."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def base_not_above_seq(record: Any) -> str | None:
    """A reliable record's base (the lowest seq still held) cannot be above its own seq."""
    if not isinstance(record, dict):
        return None
    base, seq = record.get("base"), record.get("seq")
    if isinstance(base, int) and isinstance(seq, int) and base > seq:
        return f"base {base} is above seq {seq}"
    return None


def epoch_start_not_above_base(record: Any) -> str | None:
    """An epoch's first seq is not above the lowest seq the device still holds of it."""
    if not isinstance(record, dict):
        return None
    start, base = record.get("epoch_start"), record.get("base")
    if isinstance(start, int) and isinstance(base, int) and start > base:
        return f"epoch_start {start} is above base {base}"
    return None


def day_in_month(body: Any) -> str | None:
    """A usage body's day lies in its month: both name the same billing period."""
    if not isinstance(body, dict):
        return None
    day, month = body.get("day"), body.get("month")
    if isinstance(day, str) and isinstance(month, str) and not day.startswith(month + "-"):
        return f"day {day!r} is not in month {month!r}"
    return None


def luhn(digits: Any) -> str | None:
    """ISO/IEC 7812's check digit (used by ITU-T E.118 for ICCIDs): from the right, every
    second digit doubled (9 taken off a result above 9), the sum a multiple of 10."""
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        return None
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return None if total % 10 == 0 else "the ICCID's Luhn check digit is wrong"


def _cap_not_below_base(doc: Any, defaults: tuple[float, float], what: str) -> str | None:
    if not isinstance(doc, dict):
        return None
    base, cap = doc.get("backoff_base_s", defaults[0]), doc.get("backoff_cap_s", defaults[1])
    if _number(base) and _number(cap) and cap < base:
        return f"{what} backoff_cap_s {cap} is below backoff_base_s {base}"
    return None


def swap_backoff_cap_not_below_base(policy: Any) -> str | None:
    """The swap policy's back-off ceiling is not below its first step (3.8)."""
    return _cap_not_below_base(policy, SWAP_BACKOFF_DEFAULTS, "policy")


def pacing_backoff_cap_not_below_base(pacing: Any) -> str | None:
    """The pacing back-off ceiling is not below its first step (3.8.1)."""
    return _cap_not_below_base(pacing, PACING_BACKOFF_DEFAULTS, "pacing")


def plan_rules_consistent(plan: Any) -> str | None:
    """A plan's rules agree with each other (docs/protocol.md 4.2): ids unique, no two
    throttles over the same window and directions, no two price steps at one cap, every
    throttle below the nominal rate, ``remaining`` only for rules with a cap."""
    if not isinstance(plan, dict) or not isinstance(plan.get("rules"), list):
        return None
    rules = [r for r in plan["rules"] if isinstance(r, dict)]
    ids = [r.get("id") for r in rules]
    if len(set(map(str, ids))) != len(ids):
        return "two rules share an id"
    seen = set()
    for r in rules:
        step = r.get("action") == "price_step"
        key = (r.get("window"), r.get("hours"), r.get("count", "both"), step, r.get("cap_bytes") if step else None)
        if key in seen:
            return f"rule {r.get('id')!r} overlaps another (same window and directions)"
        seen.add(key)
    nominal = plan.get("nominal_kbps")
    for r in rules:
        rate = r.get("throttle_kbps")
        if isinstance(nominal, int | float) and isinstance(rate, int | float) and rate >= nominal:
            return f"rule {r.get('id')!r} throttles to {rate} kbps, not below the nominal {nominal}"
    capped = {r.get("id") for r in rules if r.get("cap_bytes") is not None}
    remaining = plan.get("remaining")
    if isinstance(remaining, dict) and set(remaining) - capped:
        return "remaining names a rule without a cap"
    return None


RULES: dict[str, Callable[[Any], str | None]] = {
    "base-not-above-seq": base_not_above_seq,
    "epoch-start-not-above-base": epoch_start_not_above_base,
    "day-in-month": day_in_month,
    "luhn": luhn,
    "swap-backoff-cap-not-below-base": swap_backoff_cap_not_below_base,
    "pacing-backoff-cap-not-below-base": pacing_backoff_cap_not_below_base,
    "plan-rules-consistent": plan_rules_consistent,
}
"""Rule name (as the schemas write it) -> its check."""

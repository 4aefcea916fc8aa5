"""Event bodies of the cloud contract, each declared once as data.

The agent validates every event before it becomes durable in its outbox (so a bug on
the device is caught on the device, loudly, not silently dropped at the cloud), the
reference cloud validates every event it ingests with the same tables, and the tests
validate every example in docs/protocol.md with them. One declaration, three users.

A schema is a mapping ``field -> Field``; a body must have every required field, no
field the schema does not name (a misspelt key is an error, not a silently missing
value: that is how the 2020-style "which SIM?" gap stayed open), and each value of the
declared type. ``evidence`` objects stay open: what the classifier saw is free-form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ProtocolError

ICCID_RE = re.compile(r"^89\d{16,18}$")
IMSI_RE = re.compile(r"^\d{14,15}$")
PLMN_RE = re.compile(r"^\d{5,6}$")
"""MCC (3 digits) + MNC (2 or 3): the numeric +COPS format, never the operator's name."""
ISO_OFFSET_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")
"""Wall time with its UTC offset: a time without one is ambiguous across regions."""

HEALTH_STATES = ("ok", "throttled", "suspect", "poor_radio", "congested", "no_service", "idle",
                 "modem_recovered")
"""What the classifier (and the recovery ladder) can say of a link; docs/health.md."""
MECHANISMS = ("policer", "shaper")
SWAP_REASONS = ("throttled", "no_service", "command", "allowance", "auth_failed", "boot", "technician")
"""Why a swap started (agent/core/policy.py)."""
SECURITY_REASONS = ("session_taken_over",)

NUMBER = (int, float)


@dataclass(frozen=True)
class Field:
    """One field: its JSON types, and the checks a value must pass."""

    kinds: tuple[type, ...]
    required: bool = True
    nullable: bool = False
    pattern: re.Pattern[str] | None = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None


def f(*kinds: type, required: bool = True, nullable: bool = False, pattern: re.Pattern[str] | None = None,
      choices: tuple[Any, ...] | None = None, minimum: float | None = None) -> Field:
    """Shorthand for the tables below."""
    return Field(tuple(kinds), required, nullable, pattern, choices, minimum)


Schema = Mapping[str, Field]

HEALTH: Schema = {
    "state": f(str, choices=HEALTH_STATES),
    "iccid": f(str, nullable=True, pattern=ICCID_RE),
    "imsi": f(str, nullable=True, pattern=IMSI_RE),
    "plmn": f(str, nullable=True, pattern=PLMN_RE),
    "cell": f(int, nullable=True, minimum=0),
    "tac": f(int, nullable=True, minimum=0),
    "act": f(int, nullable=True, minimum=0),
    "kbps": f(*NUMBER, nullable=True, minimum=0),
    "mechanism": f(str, nullable=True, choices=MECHANISMS),
    "since": f(str, nullable=True, pattern=ISO_OFFSET_RE),
    "age_s": f(*NUMBER, minimum=0),
    "clock_trusted": f(bool),
    "previous": f(str, required=False, nullable=True),
    "evidence": f(dict),
}
"""A health observation: which SIM, on which network and cell, in which state since when
(wall time with offset, or null while the clock is untrusted, with ``age_s`` always)."""

OUTAGE: Schema = {
    "id": f(int, minimum=0),
    "kind": f(str),
    "cause": f(str),
    "start": f(*NUMBER, nullable=True),
    "end": f(*NUMBER, nullable=True),
    "duration_s": f(*NUMBER, nullable=True, minimum=0),
    "wall_trusted": f(bool),
    "start_derived": f(bool, required=False),
    "end_at_restart": f(bool, required=False),
    "detail": f(dict, required=False),
}
"""An outage interval (agent/health/outage.py): unix seconds; refunds count whole 24 h."""

ASSIGNMENT_RESULT: Schema = {
    "assignment_id": f(str),
    "ok": f(bool),
    "detail": f(str),
}

ERROR: Schema = {
    "reason": f(str),
    "detail": f(str, required=False),
    "topic": f(str, required=False, nullable=True),
    "assignment_id": f(str, required=False, nullable=True),
    "suppressed_before": f(int, required=False, minimum=0),
}

SWAP: Schema = {
    "swap_id": f(str),
    "reason": f(str, choices=SWAP_REASONS),
    "ok": f(bool),
    "rolled_back": f(bool),
    "from_iccid": f(str, nullable=True, pattern=ICCID_RE),
    "to_iccid": f(str, nullable=True, pattern=ICCID_RE),
    "assignment_id": f(str, nullable=True),
    "started": f(str, nullable=True, pattern=ISO_OFFSET_RE),
    "phases_ms": f(dict),
    "break_ms": f(*NUMBER, nullable=True, minimum=0),
    "detail": f(str),
}
"""The result of one swap, with the duration of every phase (agent/core/swap.py)."""

SECURITY: Schema = {
    "reason": f(str, choices=SECURITY_REASONS),
    "detail": f(str),
    "count": f(int, minimum=1),
}
"""Something only an attacker (or a cloned certificate) causes, reported once back online."""

AUDIT: Schema = {
    "action": f(str),
    "at": f(str, required=False, pattern=ISO_OFFSET_RE),
    "wall_trusted": f(bool, required=False),
    "technician": f(str, required=False, nullable=True),
    "terminal": f(str, required=False, nullable=True),
    "args": f(dict, required=False),
    "outcome": f(str, required=False),
    "reason": f(str, required=False),
    "failures": f(int, required=False, minimum=0),
}
"""A technician console action or login attempt (agent/core/audit.py, docs/console.md)."""

EVENT_SCHEMAS: dict[str, Schema] = {
    "health": HEALTH, "outage": OUTAGE, "assignment_result": ASSIGNMENT_RESULT, "error": ERROR,
    "swap": SWAP, "security": SECURITY, "audit": AUDIT,
}
"""Event kind -> the schema of its ``data``. Adding a kind means one line here."""


def _excerpt(body: Any) -> str:
    text = json.dumps(body, default=str, sort_keys=True)
    return text[:160] + ("..." if len(text) > 160 else "")


def _check_value(name: str, value: Any, spec: Field) -> str | None:
    """Why ``value`` does not fit ``spec``, or None."""
    if value is None:
        return None if spec.nullable else f"field {name!r} is null"
    if isinstance(value, bool) and bool not in spec.kinds:
        return f"field {name!r} has type bool"
    if not isinstance(value, spec.kinds):
        return f"field {name!r} has type {type(value).__name__}"
    if spec.pattern is not None and not spec.pattern.match(str(value)):
        return f"field {name!r} is malformed"
    if spec.choices is not None and value not in spec.choices:
        return f"field {name!r} is not one of {list(spec.choices)}"
    if spec.minimum is not None and float(value) < spec.minimum:  # type: ignore[arg-type]
        return f"field {name!r} is below {spec.minimum}"
    return None


def problems(body: Any, schema: Schema) -> list[str]:
    """Every way ``body`` breaks ``schema`` (empty: it fits)."""
    if not isinstance(body, dict):
        return [f"not an object but {type(body).__name__}"]
    out = [f"unexpected field {k!r}" for k in sorted(set(body) - set(schema))]
    for name, spec in schema.items():
        if name not in body:
            if spec.required:
                out.append(f"missing field {name!r}")
            continue
        why = _check_value(name, body[name], spec)
        if why:
            out.append(why)
    return out


def _health_rules(data: dict[str, Any]) -> list[str]:
    """Cross-field rules of a health body."""
    out = []
    if data.get("clock_trusted") is True and data.get("since") is None:
        out.append("'since' is null while the clock is trusted")
    if data.get("state") == "throttled" and (data.get("iccid") is None or data.get("kbps") is None):
        out.append("a throttled report must name the SIM (iccid) and the rate (kbps)")
    return out


CROSS_RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {"health": _health_rules}


def validate_event_data(kind: str, data: Any, topic: str | None = None) -> dict[str, Any]:
    """``data`` of an event of ``kind``, checked against its schema; ProtocolError if not."""
    schema = EVENT_SCHEMAS.get(kind)
    if schema is None:
        raise ProtocolError(f"unknown event kind {kind!r}", topic=topic, reason="schema")
    found = problems(data, schema)
    if not found and kind in CROSS_RULES:
        found = CROSS_RULES[kind](data)
    if found:
        raise ProtocolError(f"{kind} event: {'; '.join(found)}: {_excerpt(data)!r}", topic=topic, reason="schema")
    return data

"""Event bodies of the cloud contract, each declared once as data.

The agent validates every event before it becomes durable in its outbox (so a bug on
the device is caught on the device, loudly, not silently dropped at the cloud), the
reference cloud validates every event it ingests with the same tables, and the tests
validate every example in docs/protocol.md with them. One declaration, three users.

A schema is a mapping ``field -> Field``; a body must have every required field, no
field the schema does not name (a misspelt key is an error, not a silently missing
value: that is how the 2020-style "which SIM?" gap stayed open), and each value of the
declared type. ``evidence`` objects stay open: what the classifier saw is free-form.

The contract's single source is docs/schemas/ (one JSON Schema per event kind); these
tables are the device's own copy, since the device carries no JSON Schema library, and
tests/cloud/test_contract.py holds the two to one corpus of good and bad messages.

Patterns are whole-string and ASCII (``[0-9]``, ``\\Z``): Python's ``\\d`` takes other
scripts' digits and its ``$`` matches before a final line break, and a value that reaches
a log line or an AT command must not carry either (docs/protocol.md 3.0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ProtocolError

ICCID_RE = re.compile(r"^89[0-9]{16,18}\Z")
IMSI_RE = re.compile(r"^[0-9]{14,15}\Z")
PLMN_RE = re.compile(r"^[0-9]{5,6}\Z")
"""MCC (3 digits) + MNC (2 or 3): the numeric +COPS format, never the operator's name."""
RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
"""A plan rule's id (docs/protocol.md 4.2), as a health event names it."""
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
UTC_OFFSET = r"[+-](0[0-9]|1[0-4]):[0-5][0-9]"
"""+HH:MM: UTC offsets run from -12:00 to +14:00."""
ISO_OFFSET_RE = re.compile(rf"^{_DATE}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|{UTC_OFFSET})\Z")
"""Wall time with its UTC offset: a time without one is ambiguous across regions."""
DAY_RE = re.compile(rf"^{_DATE}\Z")
MONTH_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])\Z")
TZ_RE = re.compile(rf"^{UTC_OFFSET}\Z")

HEALTH_STATES = ("ok", "throttled", "suspect", "poor_radio", "congested", "no_service", "idle",
                 "modem_recovered")
"""What the classifier (and the recovery ladder) can say of a link; docs/health.md."""
MECHANISMS = ("policer", "shaper")
SWAP_REASONS = ("throttled", "no_service", "command", "allowance", "auth_failed", "boot", "technician")
"""Why a swap started (agent/core/policy.py)."""
SECURITY_REASONS = ("session_taken_over",)
SWAP_PHASES = ("request", "stage", "switch", "attach", "data", "route", "verify", "commit", "rollback")
"""The phases a swap's ``phases_ms`` may time (agent/core/swap.py)."""
ERROR_REASONS = ("malformed", "oversized", "version", "schema", "topic", "expired", "unsolicited", "signature",
                 "algorithm", "wrong_device", "replay", "decrypt", "mismatch", "duplicate", "policy_bounds",
                 "replay_state", "profile_field", "plan", "wrong_sim", "wrong_carrier", "update", "internal")
"""Why the device refused an inbound message (docs/protocol.md 3.3, ``error``)."""
AUDIT_ACTIONS = ("login", "login_failed", "logout", "at", "swap", "modem-reset", "reboot", "trace")
"""A console login or logout, or a privileged command (agent/core/control.py, docs/console.md)."""

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
    "previous": f(str, required=False, nullable=True, choices=HEALTH_STATES),
    "evidence": f(dict),
    "rule": f(str, required=False, nullable=True, pattern=RULE_ID_RE),
    "no_rule_explains": f(bool, required=False, nullable=True),
}
"""A health observation: which SIM, on which network and cell, in which state since when
(wall time with offset, or null while the clock is untrusted, with ``age_s`` always)."""

OUTAGE: Schema = {
    "id": f(int, minimum=0),
    "kind": f(str),
    "cause": f(str),
    "start": f(*NUMBER),
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
    "reason": f(str, choices=ERROR_REASONS),
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
    "action": f(str, choices=AUDIT_ACTIONS),
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

UPDATE_STATUSES = ("offered", "deferred", "refused", "fetched", "installing", "committed", "rolled_back")
"""What became of a release offered to the device (agent/core/updater.py, docs/update.md)."""

UPDATE: Schema = {
    "status": f(str, choices=UPDATE_STATUSES),
    "version": f(str),
    "running": f(str),
    "reason": f(str, required=False),
    "bytes": f(int, required=False, minimum=0),
    "log_tail": f(list, required=False),
}
"""An over-the-air update's progress and outcome; ``log_tail`` only with rolled_back."""

EVENT_SCHEMAS: dict[str, Schema] = {
    "health": HEALTH, "outage": OUTAGE, "assignment_result": ASSIGNMENT_RESULT, "error": ERROR,
    "swap": SWAP, "security": SECURITY, "audit": AUDIT, "update": UPDATE,
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
    if data.get("clock_trusted") is False and data.get("since") is not None:
        out.append("'since' is set while the clock is untrusted")
    throttled = data.get("state") == "throttled"
    if throttled and any(data.get(k) is None for k in ("iccid", "imsi", "kbps")):
        out.append("a throttled report must name the SIM (iccid, imsi) and the rate (kbps)")
    if not throttled and data.get("mechanism") is not None:
        out.append("'mechanism' is set although the state is not throttled")
    return out


def _swap_rules(data: dict[str, Any]) -> list[str]:
    """A swap's phases: the known phase names, each a number of milliseconds >= 0."""
    phases = data.get("phases_ms")
    if not isinstance(phases, dict):
        return []
    out = [f"unknown phase {k!r} in 'phases_ms'" for k in sorted(set(phases) - set(SWAP_PHASES))]
    for name, value in phases.items():
        if isinstance(value, bool) or not isinstance(value, NUMBER) or value < 0:
            out.append(f"phase {name!r} is not a number of milliseconds >= 0")
    return out


CROSS_RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {"health": _health_rules, "swap": _swap_rules}


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

"""The SIM profile the agent loads into the modem's virtual SIM, and its plan.

A ``SimProfile`` holds the SIM's secret keys (Ki, OPc). They live in memory only as
long as needed: the profile is opened from its sealed envelope, handed to the modem,
and dropped. ``repr``/``str`` never show them, so an accidental log line or exception
text cannot leak them; ``public()`` is the form that may go into logs and reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Plan:
    """What the carrier's contract says about this SIM's data (domain.md's plan table), as
    it travels in a sealed profile. Two forms (docs/protocol.md 4.2): the rules form
    (``rules`` set: every clause of the contract, agent/plans/rules.py reads it) and the
    old single-rule form (one cap, one window, one rate), still read."""

    name: str = "unknown"
    cap_bytes: int | None = None
    """Single-rule form: data allowed in one window before throttling; None = no cap."""
    window: str = "month"
    """Single-rule form: "month" (JST calendar month), "day" (JST day), "rolling72h", or "none"."""
    throttle_kbps: int | None = None
    """Single-rule form: rate the carrier polices to once the cap is used up (128, 384 ...);
    of a plan without a cap, the rate it sells (read as its nominal rate)."""
    remaining_bytes: int | None = None
    """Single-rule form: allowance left when the cloud assigned the SIM (the cloud's view)."""
    tz: str | None = None
    """"+09:00"-style zone of the plan's day and month boundaries (None: the config's)."""
    rules: tuple[dict[str, Any], ...] | None = None
    """Rules form: the contract's clauses (window, cap, directions, action, rate)."""
    nominal_kbps: int | None = None
    """Rules form: the rate the plan sells when no rule is hit (the 200 kbps plan)."""
    remaining: dict[str, int] | None = None
    """Rules form: the cloud's bytes left per rule id at ``as_of``."""
    as_of: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.rules is not None:
            out = {"name": self.name, "rules": [dict(r) for r in self.rules], "nominal_kbps": self.nominal_kbps}
            if self.remaining is not None:
                out["remaining"] = dict(self.remaining)
            if self.as_of is not None:
                out["as_of"] = self.as_of
        else:
            out = {"name": self.name, "cap_bytes": self.cap_bytes, "window": self.window,
                   "throttle_kbps": self.throttle_kbps, "remaining_bytes": self.remaining_bytes}
        if self.tz is not None:
            out["tz"] = self.tz
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        if "rules" in d:
            return cls(name=str(d.get("name", "unknown")), tz=str(d["tz"]) if d.get("tz") else None,
                       rules=tuple(dict(r) for r in d["rules"]), nominal_kbps=d.get("nominal_kbps"),
                       remaining=dict(d["remaining"]) if d.get("remaining") is not None else None,
                       as_of=d.get("as_of"))
        return cls(
            name=str(d.get("name", "unknown")),
            cap_bytes=d.get("cap_bytes"),
            window=str(d.get("window", "month")),
            throttle_kbps=d.get("throttle_kbps"),
            remaining_bytes=d.get("remaining_bytes"),
            tz=str(d["tz"]) if d.get("tz") else None,
        )


@dataclass(frozen=True)
class SimProfile:
    """A SIM as loaded into a vSIM slot. ``ki`` and ``opc`` are 16 secret bytes each."""

    iccid: str
    imsi: str
    ki: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    plmn: str = ""
    apn: str = ""
    plan: Plan = field(default_factory=Plan)

    def __post_init__(self) -> None:
        if len(self.ki) != 16 or len(self.opc) != 16:
            # The message names the lengths only, never the bytes.
            raise ValueError(f"Ki and OPc must be 16 bytes (got {len(self.ki)}, {len(self.opc)})")

    def __repr__(self) -> str:
        return f"SimProfile(iccid={self.iccid!r}, imsi={self.imsi!r}, plmn={self.plmn!r}, apn={self.apn!r}, ki=<redacted>, opc=<redacted>)"

    __str__ = __repr__

    @property
    def mcc(self) -> str:
        """Mobile country code (first 3 digits of the IMSI): overseas billing is per MCC."""
        return self.imsi[:3]

    def public(self) -> dict[str, Any]:
        """Everything but the keys: safe for logs, reports and the console."""
        return {"iccid": self.iccid, "imsi": self.imsi, "plmn": self.plmn, "apn": self.apn, "plan": self.plan.to_dict()}


KEY_HEX_RE = re.compile(r"[0-9A-Fa-f]{32,}")
"""A run of 32+ hex digits: the shape of a 128-bit Ki or OPc written out. No legitimate
console answer or audit entry has one (ICCIDs are 19-20 digits, IMSIs 15)."""


def redact_keys(text: str) -> str:
    """Mask anything shaped like a SIM key: the last line of defence before a cable or a log."""
    return KEY_HEX_RE.sub(lambda m: f"<{len(m.group())} hex digits hidden>", text)

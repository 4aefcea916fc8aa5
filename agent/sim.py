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
    """What the carrier's contract says about this SIM's data (domain.md's plan table)."""

    name: str = "unknown"
    cap_bytes: int | None = None
    """Data allowed in one window before throttling; None = no cap (e.g. a 200 kbps plan)."""
    window: str = "month"
    """"month" (JST calendar month), "day" (JST day), "rolling72h", or "none"."""
    throttle_kbps: int | None = None
    """Rate the carrier polices to once the cap is used up (128, 200, 384 ...)."""
    remaining_bytes: int | None = None
    """Allowance left when the cloud assigned the SIM (the cloud's view)."""
    tz: str | None = None
    """"+09:00"-style zone of the plan's day and month boundaries (None: the config's)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "cap_bytes": self.cap_bytes,
            "window": self.window,
            "throttle_kbps": self.throttle_kbps,
            "remaining_bytes": self.remaining_bytes,
        }
        if self.tz is not None:
            out["tz"] = self.tz
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
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

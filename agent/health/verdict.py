"""What the low-speed classifier hands out: state changes, observations, and the active
check it asks for with the answer it gets back.

Plain frozen values, apart from the classifier's rules, so the health task, replay and
the cloud's health event (``event.py``) depend on these and not on how a verdict is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StateChange:
    """A decided state change, with what it rests on."""

    t: float
    """Time of the sample at which the classifier decided (sample clock)."""
    state: str
    rate_kbps: float | None
    evidence: dict[str, Any]
    onset_t: float | None = None
    """When the classifier thinks the condition began (first sample that showed it)."""
    previous: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The replay output line."""
        out: dict[str, Any] = {"t": self.t, "state": self.state, "rate_kbps": self.rate_kbps,
                               "evidence": self.evidence}
        if self.onset_t is not None:
            out["onset_t"] = self.onset_t
        return out

    @property
    def mechanism(self) -> str | None:
        """"policer" or "shaper" for ``throttled``; None otherwise."""
        mech = self.evidence.get("mechanism") if self.state == "throttled" else None
        return mech if mech in ("policer", "shaper") else None


@dataclass(frozen=True)
class Observation:
    """Something worth logging that is not a state: ``suspect`` = a flat rate near a
    throttle rate that no other evidence confirms (an app-limited stream, or a cap the
    agent could not check)."""

    t: float
    kind: str
    rate_kbps: float | None
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The replay output line (``observation`` instead of ``state``)."""
        return {"t": self.t, "observation": self.kind, "rate_kbps": self.rate_kbps, "evidence": self.evidence}


@dataclass(frozen=True)
class ProbeRequest:
    """The classifier asks for one active check: a bounded download burst."""

    t: float
    ceiling_kbps: float
    reason: str
    known_rate_kbps: int | None = None


@dataclass(frozen=True)
class ProbeOutcome:
    """What the active check measured (``kbps`` None: it could not run)."""

    kbps: float | None
    bytes_used: int = 0
    reason: str = ""

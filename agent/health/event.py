"""The health event upstream: one flat shape, built from pure values.

The platform marks a SIM bad from this event, so it names the SIM (ICCID, IMSI) and the
serving network as codes, not names: ``plmn`` is the numeric MCC-MNC ("44010") from
``+COPS`` in numeric format, ``act`` the 27.007 access technology number. ``since`` is
the wall time the state began with its UTC offset, or null while the wall clock is not
trusted (an unset RTC would date it 1970); ``age_s`` is always there, from the
monotonic clock, so the cloud can date it itself.

Keys (the contract's, exactly): state, iccid, imsi, plmn, cell, tac, act, kbps,
mechanism, since, age_s, clock_trusted, previous, evidence, rule, no_rule_explains (the
plan rule the device believes the carrier applied, or that none explains the rate: set
by agent/core/health.py from the SIM's allowance, agent/plans/predict.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from agent.health.verdict import StateChange
from agent.usage.calendar import iso

EVENT_KEYS = ("state", "iccid", "imsi", "plmn", "cell", "tac", "act", "kbps", "mechanism",
              "since", "age_s", "clock_trusted", "previous", "evidence", "rule", "no_rule_explains")

ACT_NUMBERS: dict[str, int] = {
    "gsm": 0, "gsm_compact": 1, "umts": 2, "edge": 3, "hsdpa": 4, "hsupa": 5, "hspa": 6,
    "lte": 7, "ec_gsm_iot": 8, "lte_nb_iot": 9, "5gnr": 11,
}
"""The modem parser's AcT names back to 27.007 <AcT> numbers (E-UTRA 7, NR 11)."""


@dataclass(frozen=True)
class ServingNetwork:
    """Where the SIM is attached, as the modem reports it (any field may be unknown)."""

    plmn: str | None = None
    """Numeric MCC-MNC, e.g. "44010"; None when the modem gave a name or nothing."""
    cell: int | None = None
    tac: int | None = None
    act: int | None = None

    @property
    def mcc(self) -> str | None:
        return self.plmn[:3] if self.plmn else None


def numeric_plmn(oper: str | None) -> str | None:
    """A +COPS <oper> in numeric format ("44010", 5 or 6 digits) or None (a name)."""
    if oper and oper.isdigit() and len(oper) in (5, 6):
        return oper
    return None


def act_number(name: str | None) -> int | None:
    return ACT_NUMBERS.get(name) if name else None


def health_event(change: StateChange, *, sim: dict[str, Any] | None, network: ServingNetwork,
                 now_t: float, wall: float, clock_trusted: bool, tz: tzinfo) -> dict[str, Any]:
    """The event for ``change``; ``now_t`` is the sample clock now and ``wall`` the wall
    time now, so the state's start is dated as wall - (now_t - start)."""
    start = min(change.t, change.onset_t) if change.onset_t is not None else change.t
    age = max(0.0, now_t - start)
    sim = sim or {}
    return {
        "state": change.state,
        "iccid": sim.get("iccid"),
        "imsi": sim.get("imsi"),
        "plmn": network.plmn,
        "cell": network.cell,
        "tac": network.tac,
        "act": network.act,
        "kbps": change.rate_kbps,
        "mechanism": change.mechanism,
        "since": iso(wall - age, tz) if clock_trusted else None,
        "age_s": round(age, 3),
        "clock_trusted": clock_trusted,
        "previous": change.previous,
        "evidence": change.evidence,
        "rule": None,
        "no_rule_explains": False,
    }


def status_event(state: str, *, sim: dict[str, Any] | None, network: ServingNetwork | None, wall: float,
                 clock_trusted: bool, tz: tzinfo, evidence: dict[str, Any]) -> dict[str, Any]:
    """A health event that is not a classifier decision (``modem_recovered``): it begins now."""
    change = StateChange(t=0.0, state=state, rate_kbps=None, evidence=dict(evidence))
    return health_event(change, sim=sim, network=network or ServingNetwork(), now_t=0.0, wall=wall,
                        clock_trusted=clock_trusted, tz=tz)

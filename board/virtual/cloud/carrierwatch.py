"""The platform learns a carrier is down from its routers (docs/protocol.md 3.4, issue 23).

A router that cannot carry its cloud link on its SIM's carrier says so twice: in the
health event (``no_service`` with the PLMN and a cause: ``not_registered``, ``blackhole``,
``pdn_refused``) and in the escape request it sends over its seed SIM (``avoid_plmns``).
This module is the reference cloud's half of that rule, kept apart so it can be read and
tested as the rule it is:

- every report is (device, PLMN, time); a device's later report that the same PLMN works
  (a health event on it in any serving state) withdraws its report;
- a PLMN is **down** while at least ``DOWN_REPORTERS`` different devices have an
  unwithdrawn report younger than ``REPORT_TTL_S``; no SIM of a down PLMN is assigned to
  anyone;
- a single router's report excludes that PLMN only for that router (its own request
  names it): one router in a basement must not take a carrier away from the fleet;
- when the carrier comes back nothing is moved: reports age out or are withdrawn, the
  PLMN's SIMs become assignable again, and routers serving on another carrier stay where
  they are (a swap is a break for the user; the 2020 incident's bulk move overran the
  assignment server). Only the ordinary triggers ever move a router.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOWN_REPORTERS = 2
"""Two routers: one report can be one router's basement, its antenna or its modem; two
different routers on the same carrier at once is the carrier. (A platform with thousands
of routers per carrier would scale this with the carrier's fleet share.)"""
REPORT_TTL_S = 900.0
"""A report counts for 15 minutes: longer than a router's escape takes (the agent's
bound, 120 s by default, plus the swap), short enough that a carrier that is back is
offered again within the quarter hour without anyone having to say so."""
DOWN_CAUSES = ("not_registered", "blackhole", "pdn_refused", "no_data")
"""The health causes that say the carrier cannot carry data (agent/health/classifier.py)."""
SERVING_STATES = ("ok", "throttled", "congested", "idle", "poor_radio")
"""Health states that mean the carrier carries data: a report of one withdraws the
device's down report of that PLMN."""


@dataclass
class CarrierWatch:
    """Down reports per PLMN and the rule over them."""

    reports: dict[str, dict[str, float]] = field(default_factory=dict)
    """PLMN -> device -> wall time of its latest report."""

    def report_down(self, device: str, plmn: str, now: float) -> None:
        self.reports.setdefault(plmn, {})[device] = now

    def report_serving(self, device: str, plmn: str) -> None:
        self.reports.get(plmn, {}).pop(device, None)

    def on_health(self, device: str, data: dict[str, object], now: float) -> None:
        """A health event: a down report, a withdrawal, or nothing to learn."""
        plmn = data.get("plmn")
        if not isinstance(plmn, str):
            return
        state = data.get("state")
        evidence = data.get("evidence")
        cause = evidence.get("cause") if isinstance(evidence, dict) else None
        if state == "no_service" and cause in DOWN_CAUSES:
            self.report_down(device, plmn, now)
        elif state in SERVING_STATES:
            self.report_serving(device, plmn)

    def reporters(self, plmn: str, now: float) -> list[str]:
        """Devices whose report of ``plmn`` still counts."""
        return sorted(d for d, t in self.reports.get(plmn, {}).items() if now - t < REPORT_TTL_S)

    def down(self, now: float) -> set[str]:
        """PLMNs no SIM is assigned from, for anyone."""
        return {plmn for plmn in self.reports if len(self.reporters(plmn, now)) >= DOWN_REPORTERS}

    def excluded_for(self, device: str, avoid: list[str] | tuple[str, ...], now: float) -> set[str]:
        """PLMNs not to assign to ``device``: the fleet's down carriers and those its own
        request asks to avoid."""
        return self.down(now) | {p for p in avoid if isinstance(p, str)}

"""Escaping a dead carrier over the seed SIM: the pure rules (issue 23).

When the SIM in use cannot carry the cloud link (its carrier has no service here, its
core drops everything behind a healthy radio, or it refuses the data context), a swap
requested over that SIM's link cannot leave the router. The router's own bootstrap
("seed") SIM is the control path of last resort: the supervisor switches to it, reaches
the cloud, asks for a SIM *on another carrier* (naming the failing PLMN and the
evidence), and swaps (agent/core/supervisor.py ``escape_carrier``). This module holds
what that path decides, with no I/O and no clock of its own:

- which health causes mean "this carrier cannot carry data" (``CARRIER_DOWN_CAUSES``);
- whether the seed SIM can help at all (it cannot when it is on the failing carrier:
  then the router stays, says so, and tries again after a growing delay);
- how long to wait before the next attempt (``retry_delay``);
- whether an answer from the cloud is acceptable (a SIM of the failing carrier is not);
- the own-bytes budget: what the seed SIM spent on escapes in the last day, against the
  policy's ``escape_budget_bytes``, so no loop of escapes costs more than the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.core.policy import DAY, SwapPolicy

CARRIER_DOWN_CAUSES = ("not_registered", "blackhole", "no_data")
"""The classifier's ``no_service`` causes (agent/health/classifier.py) that say the SIM's
carrier cannot carry data here: no registration, registered with the bearer up but
nothing answering (a black hole), registered with no bearer at all (the data context
refused or gone). A SIM-level refusal (EMM #3 and kin) has its own path
(``supervisor.swap_from_refused_sim``)."""


def carrier_down(cause: object) -> bool:
    """Whether a ``no_service`` cause blames the carrier (the healer's texts, such as
    ``not_registered: searching``, count by their first word)."""
    return isinstance(cause, str) and cause.split(":", 1)[0].strip() in CARRIER_DOWN_CAUSES


def retry_delay(failures: int, policy: SwapPolicy) -> float:
    """The wait after ``failures`` escapes that could not happen (the seed on the same
    carrier, the seed not registering either): the bound itself, doubling, capped at
    ``escape_retry_cap_s``. No jitter is needed here: the cloud never hears of an escape
    that did not happen, and one that did goes through the swap's own jittered back-off."""
    return float(min(policy.escape_retry_cap_s, policy.escape_after_s * 2 ** max(0, failures - 1)))


def seed_can_help(seed_plmn: str | None, failing_plmn: str | None, failures: int) -> bool:
    """The first attempt skips a seed SIM known to be on the failing carrier (switching to
    it costs a break and finds nothing); later ones try it anyway, since an outage may be
    regional or may have ended for the seed first. An unknown PLMN is worth a try."""
    if not seed_plmn or not failing_plmn or seed_plmn != failing_plmn:
        return True
    return failures > 0


def wrong_carrier(plmn: str | None, avoid: Sequence[str]) -> bool:
    """An assignment on a carrier the request asked to avoid: refused (an ``error`` event),
    never loaded. A profile without a PLMN cannot be checked and is taken."""
    return bool(plmn) and plmn in avoid


@dataclass
class EscapeBudget:
    """Seed-SIM bytes spent on escapes, per attempt, over the last day."""

    spent: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, bytes) of each seed session an escape used."""

    def record(self, now: float, nbytes: int) -> None:
        self.spent.append((now, max(0, int(nbytes))))
        self.spent = [(t, b) for t, b in self.spent if now - t < DAY]

    def used(self, now: float) -> int:
        return sum(b for t, b in self.spent if now - t < DAY)

    def exhausted(self, now: float, policy: SwapPolicy) -> bool:
        return self.used(now) >= policy.escape_budget_bytes


@dataclass
class EscapeState:
    """One supervisor's escape in progress (or none): the failing carrier, its evidence,
    how many attempts could not happen, and when the next may start."""

    failing_plmn: str | None = None
    evidence: dict[str, object] = field(default_factory=dict)
    failures: int = 0
    not_before: float = 0.0
    budget: EscapeBudget = field(default_factory=EscapeBudget)

    @property
    def active(self) -> bool:
        return self.failing_plmn is not None

    @property
    def avoid(self) -> list[str]:
        return [self.failing_plmn] if self.failing_plmn else []

    def begin(self, plmn: str | None, evidence: dict[str, object]) -> None:
        if plmn != self.failing_plmn:
            self.failures, self.not_before = 0, 0.0
        self.failing_plmn, self.evidence = plmn, dict(evidence)

    def could_not(self, now: float, policy: SwapPolicy) -> float:
        """An attempt could not happen: the delay until the next one."""
        self.failures += 1
        delay = retry_delay(self.failures, policy)
        self.not_before = now + delay
        return delay

    def due(self, now: float) -> bool:
        return now >= self.not_before

    def done(self) -> None:
        """Serving on another carrier (or the old one came back): nothing to escape."""
        self.failing_plmn, self.evidence, self.failures, self.not_before = None, {}, 0, 0.0

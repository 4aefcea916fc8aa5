"""The allowance of the SIM in use: the ledger, the cloud's view, and plan updates, durable.

One object per daemon (agent/core/metering.py feeds it, the supervisor reads it). What the
cloud told us about each SIM lives in ``allowance.json`` (``agent.store``: atomic, 0600),
written only when the cloud says something new (an assignment, a plan update), so it
costs no flash in steady state:

``{iccid: {"assignment_id", "as_of", "others": {rule: bytes}, "credits": [...],
"version", "update_ids": [...], "plan": a replacement plan or null}}``

The cloud's ``remaining`` is read **once per assignment** (keyed by ``assignment_id``):
a restart at 90 % of a cap resumes from the ledger, never from the assignment's number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any

from agent import store
from agent.clock import Clock
from agent.errors import PlanError
from agent.plans import allowance
from agent.plans.allowance import MAX_ADDONS_PER_MONTH, CloudFacts, Credit, RuleStatus
from agent.plans.ledger import AllowanceLedger
from agent.plans.rules import PlanRules, parse_plan, plan_of
from agent.plans.update import PlanUpdate
from agent.usage.calendar import plan_tz

LOGGER = logging.getLogger(__name__)

MAX_VERSION_STEP = 1 << 16
"""A plan update may be at most this many versions past the last applied (as policies:
agent/cloud/platformsig.py), so a signed mistake cannot freeze a SIM's updates for good."""

KEEP_UPDATE_IDS = 32
"""Update ids remembered per SIM for ``duplicate``: far more than a redelivery can reach
(a command expires in 6 hours, docs/protocol.md 3.7)."""


class Allowance:
    """Per-SIM allowance: ``status(facts)`` gives each rule's used / cap / resets-at."""

    def __init__(self, state_dir: Path, clock: Clock, default_tz: str | None = None):
        self.clock = clock
        self.default_tz = default_tz
        self.ledger = AllowanceLedger(state_dir / "allowance.ledger")
        self._path = state_dir / "allowance.json"
        self.views: dict[str, dict[str, Any]] = store.read_json(self._path, {}) or {}
        if not isinstance(self.views, dict):
            LOGGER.error("allowance view %s unreadable: starting afresh", self._path)
            self.views = {}

    # -- what the cloud says ---------------------------------------------------------------
    def plan(self, facts: Mapping[str, Any] | None) -> PlanRules | None:
        """The plan in force for the SIM of ``facts``: a plan update's, else the assignment's."""
        view = self.views.get(str((facts or {}).get("iccid")), {})
        if view.get("plan"):
            try:
                return parse_plan(view["plan"])
            except PlanError as exc:
                LOGGER.error("stored plan update unreadable (%s): the assignment's plan stands", exc)
        return plan_of(facts)

    def tz(self, facts: Mapping[str, Any] | None) -> tzinfo:
        return plan_tz(dict(facts or {}), self.default_tz)

    def on_sim(self, facts: Mapping[str, Any]) -> None:
        """A SIM became current: take its assignment's ``remaining`` once per assignment."""
        iccid, assignment = str(facts.get("iccid")), facts.get("assignment_id")
        view = self.views.setdefault(iccid, {})
        if assignment is None or view.get("assignment_id") == assignment:
            return
        plan = plan_of(facts)
        now = self.clock.wall()
        view["assignment_id"] = assignment
        view["plan"] = None  # a new assignment's plan supersedes an older update's
        if plan is not None and plan.remaining:
            as_of = plan.as_of if plan.as_of is not None else now
            view["as_of"] = as_of
            view["others"] = allowance.others_from_remaining(plan, dict(plan.remaining), self.ledger, iccid, as_of,
                                                             self.tz(facts))
        else:
            view["as_of"], view["others"] = None, {}
        self._save()

    def apply(self, update: PlanUpdate, current: Mapping[str, Any] | None) -> str:
        """A verified plan update (agent/plans/update.py steps 3-5): "applied" or "duplicate";
        PlanError (reason ``wrong_sim``, ``replay`` or ``plan``) leaves everything as it was."""
        if update.iccid != (current or {}).get("iccid"):
            raise PlanError("plan_update.iccid", "is not the SIM in use", reason="wrong_sim")
        view = self.views.setdefault(update.iccid, {})
        if update.update_id in view.get("update_ids", []):
            return "duplicate"
        held = int(view.get("version", -1))
        if update.version <= held:
            raise PlanError("plan_update.version", f"is not above {held}, the last applied", reason="replay")
        if update.version > max(held, 0) + MAX_VERSION_STEP:
            raise PlanError("plan_update.version", f"is more than {MAX_VERSION_STEP} past {held}")
        tz = self.tz(current)
        credits = self._merged_credits(view, update.credits, tz)
        plan = update.plan or self.plan(current)
        new = dict(view, version=update.version, credits=[c.to_dict() for c in credits],
                   update_ids=[*view.get("update_ids", []), update.update_id][-KEEP_UPDATE_IDS:])
        if update.plan is not None:
            new["plan"] = update.plan.to_dict()
        if update.remaining is not None and plan is not None:
            unknown = [k for k in update.remaining if plan.rule(k) is None]
            if unknown:
                raise PlanError("plan_update.remaining", "names a rule the plan does not have")
            assert update.as_of is not None
            new["as_of"] = update.as_of
            new["others"] = allowance.others_from_remaining(plan, update.remaining, self.ledger, update.iccid,
                                                            update.as_of, tz)
        self.views[update.iccid] = new
        self._save()
        LOGGER.info("plan update %s (version %d) applied to SIM %s: %d credits", update.update_id, update.version,
                    update.iccid, len(update.credits))
        return "applied"

    @staticmethod
    def _merged_credits(view: Mapping[str, Any], new: Iterable[Credit], tz: tzinfo) -> list[Credit]:
        held = [Credit(str(c["id"]), str(c["kind"]), int(c["bytes"]), float(c["bought"]))
                for c in view.get("credits", [])]
        ids = {c.id for c in held}
        merged = held + [c for c in new if c.id not in ids]
        per_month: dict[str, int] = {}
        for c in merged:
            if c.kind == "addon":
                month = allowance.month_of(c.bought, tz)
                per_month[month] = per_month.get(month, 0) + 1
                if per_month[month] > MAX_ADDONS_PER_MONTH:
                    raise PlanError("plan_update.credits", f"holds more than {MAX_ADDONS_PER_MONTH} add-ons in {month}")
        return merged

    def facts(self, iccid: str) -> CloudFacts:
        view = self.views.get(iccid, {})
        credits = tuple(Credit(str(c["id"]), str(c["kind"]), int(c["bytes"]), float(c["bought"]))
                        for c in view.get("credits", []))
        return CloudFacts(view.get("as_of"), dict(view.get("others") or {}), credits)

    # -- what the device counts --------------------------------------------------------------
    def status(self, facts: Mapping[str, Any] | None) -> list[RuleStatus]:
        """Every rule of the SIM's plan, now: used / cap / resets-at (empty: no plan)."""
        plan = self.plan(facts)
        if plan is None or facts is None:
            return []
        iccid = str(facts.get("iccid"))
        return allowance.status(plan, self.ledger, iccid, self.facts(iccid), self.clock.wall(), self.tz(facts))

    def report(self, facts: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """The status file's and the console's rows."""
        tz = self.tz(facts)
        return [s.to_json(tz) for s in self.status(facts)]

    def _save(self) -> None:
        try:
            store.atomic_write_json(self._path, self.views)
        except OSError as exc:
            LOGGER.error("allowance view not saved: %s", exc)

"""When the SIM in use is swapped, and never two swaps at once.

The supervisor's swap wiring, apart from its life cycle: the swap policy's inputs and its
loop (agent/core/policy.py decides, this feeds it), the cloud's ``swap`` orders scheduled
inside their window, the policy the cloud sets (bounded, persisted), and the one lock
around the swap machine (agent/core/swap.py) with the back-off that widens after each
failure. What it reads of the SIM in use and of the traffic comes in as callables, so it
holds no reference to the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent import store
from agent.clock import Clock
from agent.core import escape as esc
from agent.core import policy as pol
from agent.core.status import StatusFile
from agent.core.swap import SimFacts, SwapFailed, SwapMachine
from agent.errors import ProtocolError
from agent.plans import predict
from agent.plans.allowance import RuleStatus

LOGGER = logging.getLogger(__name__)

SERVING_STATES = ("ok", "throttled", "congested", "idle", "poor_radio")
"""Health states in which the SIM's carrier carries data: an escape is over."""
POLICY_TICK_S = 1.0
"""How often the swap policy is evaluated: detection itself takes seconds, so a second
of extra latency is noise, and the evaluation is a few comparisons."""


class SwapControl:
    """The policy loop, cloud orders and the swap lock for one supervisor."""

    def __init__(self, clock: Callable[[], Clock], state_dir: Path, status: StatusFile,
                 current: Callable[[], dict[str, Any] | None], used_on_current: Callable[[], int],
                 traffic_kbps: Callable[[], float],
                 rules: Callable[[], list[RuleStatus]] = list):
        self._clock = clock
        """A getter: the daemon's clock may be replaced before it starts (the lab's
        offset clock, agent/faces/cli/run.py)."""
        self.state_dir = state_dir
        self.status = status
        self._current = current
        self._used_on_current = used_on_current
        self._traffic_kbps = traffic_kbps
        self._rules = rules
        """Each rule's used / cap of the SIM in use (agent/plans/tracker.py): the exact
        allowance the policy acts on; empty without a plan (the assignment's number then)."""
        self.machine: SwapMachine | None = None
        """The swap machine, once the supervisor has made it (it needs the cloud)."""
        self.policy = self._load_policy()
        self._rng = random.Random()
        self.lock = asyncio.Lock()
        self._swap_times: list[float] = []
        self._swap_failures = 0
        self._blocked_until = 0.0
        self._blocked_by = ""
        """The reason of the swap whose failure set ``_blocked_until`` (policy.decide)."""
        self._order: pol.Order | None = None
        self._wake = asyncio.Event()
        """Set when something the policy reads changed (a command, a health state)."""
        self._health_state = ("ok", 0.0)
        self._last_health: dict[str, Any] | None = None
        self.refused_iccid: str | None = None
        """A SIM the network refused: named to the cloud as the one to replace."""
        self.escape = esc.EscapeState()
        """An escape from a dead carrier in progress (agent/core/escape.py)."""
        self.escape_hook: Callable[[], Awaitable[bool]] | None = None
        """The supervisor's escape over the seed SIM (``Supervisor.escape_carrier``)."""
        self._low_since: float | None = None

    @property
    def clock(self) -> Clock:
        return self._clock()

    @property
    def swapping(self) -> bool:
        """A swap is in progress: the link is down on purpose, not an outage."""
        return self.lock.locked()

    def planned(self) -> pol.Planned | None:
        """The non-urgent swap ahead (agent/core/policy.py ``planned``), for the renter's
        notice; None while one runs (``swapping_for_s`` then says for how long)."""
        if self.swapping or self.machine is None:
            return None
        return pol.planned(self.policy, self._inputs())

    def swapping_for_s(self) -> float | None:
        """Seconds since the swap in progress began, or None."""
        if not self.swapping or not self._swap_times:
            return None
        return max(0.0, self.clock.monotonic() - self._swap_times[-1])

    @property
    def allowance_low(self) -> bool:
        """The SIM in use is running out (policy.allowance_low held at the last evaluation):
        what its bytes may be spent on shrinks (an update's download waits)."""
        return self._low_since is not None

    def sim_changed(self) -> None:
        """Another SIM is in use: its data left is measured afresh."""
        self._low_since = None

    async def swap(self, reason: str) -> bool:
        """One swap at a time; failures widen the platform back-off. True if it committed."""
        assert self.machine
        async with self.lock:
            current = self._current()
            old = SimFacts.from_dict(current) if current else None
            # The cloud's order this swap fulfils: only one that came before it began. An
            # order arriving during a swap for another reason (the plan lab: a throttled
            # SIM's swap already asking the cloud, then the cloud's "swap to a 200 kbps SIM")
            # was cleared by that swap, so the cloud's move never happened.
            order = self._order
            self._swap_times.append(self.clock.monotonic())
            self.status.update(state="swapping")
            try:
                await self.machine.swap(reason, old)
            except SwapFailed as exc:
                self._swap_failures += 1
                delay = pol.backoff_delay(self._swap_failures, self.policy, self._rng)
                self._blocked_until, self._blocked_by = self.clock.monotonic() + delay, reason
                LOGGER.warning("swap (%s) failed in %s%s; next attempt in %.0f s at the earliest", reason,
                               exc.phase, ", rolled back" if exc.rolled_back else "", delay)
                return False
            finally:
                self.status.update(state="serving", swaps=self.machine.history[-5:])
            self._swap_failures, self._blocked_until = 0, 0.0
            if self._order is order:
                self._order = None
            self._health_state = ("ok", self.clock.monotonic())
            new = self._current() or {}
            if self.escape.active and not new.get("seed") and new.get("plmn") != self.escape.failing_plmn:
                LOGGER.info("escaped carrier %s: serving on %s (%s)", self.escape.failing_plmn, new.get("iccid"),
                            new.get("plmn") or "PLMN unknown")
                self.escape.done()
            return True

    def _inputs(self) -> pol.Inputs:
        now = self.clock.monotonic()
        current = self._current() or {}
        state, since = self._health_state
        kbps = self._traffic_kbps()
        cause = ((self._last_health or {}).get("evidence") or {}).get("cause")
        inputs = pol.Inputs(now=now, health=state, health_for_s=now - since, traffic_kbps=kbps,
                            order=self._order, on_seed=bool(current.get("seed")),
                            carrier_down=state == "no_service" and esc.carrier_down(cause))
        statuses = self._rules()
        wall = self.clock.wall()
        forecast = predict.first_cap(statuses, kbps * 1000 / 8, wall, self.policy.swap_below_bytes)
        explained = (self._last_health or {}).get("rule")
        if forecast is not None:
            inputs = replace(inputs, remaining_bytes=forecast.remaining, low_below=forecast.low_below,
                             cap_in_s=forecast.seconds, cap_rule=forecast.rule)
        elif not statuses:  # no plan rules known: the assignment's single number, as before
            remaining = (current.get("plan") or {}).get("remaining_bytes")
            if remaining is not None:
                inputs = replace(inputs, remaining_bytes=int(remaining) - self._used_on_current())
        if state == "throttled" and explained:
            inputs = replace(inputs, cap_rule=explained,
                             throttle_resets_in_s=predict.resets_soon(statuses, explained, wall))
        if pol.allowance_low(self.policy, inputs):
            self._low_since = now if self._low_since is None else self._low_since
        else:
            self._low_since = None
        return replace(inputs, low_since=self._low_since)

    async def run(self) -> None:
        """The policy loop: evaluated every POLICY_TICK_S, or at once when woken."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLICY_TICK_S)
            self._wake.clear()
            decision = pol.decide(self.policy, self._inputs(), self._swap_times, self._blocked_until,
                                  self._blocked_by)
            if decision.swap and decision.reason and self._escape_gate(decision.reason):
                LOGGER.info("swap policy: %s (%s)", decision.reason, decision.why)
                if decision.reason == "escape" and self.escape_hook is not None:
                    await self.escape_hook()
                else:
                    await self.swap(decision.reason)

    def _escape_gate(self, reason: str) -> bool:
        """An escape (or, on the seed SIM during one, its next request) waits for its
        retry delay and stops once the day's seed-SIM budget is spent."""
        now = self.clock.monotonic()
        if reason == "escape" and not self.escape.due(now):
            return False
        if (reason == "escape" or (reason == "boot" and self.escape.active)) and \
                self.escape.budget.exhausted(now, self.policy):
            LOGGER.warning("escape from carrier %s held: the seed SIM spent %d bytes on escapes today (budget %d)",
                           self.escape.failing_plmn, self.escape.budget.used(now), self.policy.escape_budget_bytes)
            self.escape.not_before = now + self.policy.escape_retry_cap_s
            return False
        return True

    @property
    def last_health(self) -> dict[str, Any] | None:
        """The health task's last decision (the escape names its cause and cell)."""
        return self._last_health

    def request_evidence(self) -> dict[str, Any]:
        """What the cloud should know about why we ask: the health decision behind it."""
        event = self._last_health or {}
        out = {k: event.get(k) for k in ("state", "kbps", "mechanism", "since", "plmn") if event.get(k) is not None}
        if self.escape.active:  # the failing carrier and why, for the platform's per-PLMN count
            out.update({"failing_plmn": self.escape.failing_plmn, **self.escape.evidence})
        return out

    def on_health(self, event: dict[str, Any]) -> None:
        """The health task's decisions feed the swap policy."""
        self._last_health = event
        self._health_state = (str(event["state"]), self.clock.monotonic() - float(event.get("age_s") or 0.0))
        on_seed = bool((self._current() or {}).get("seed"))
        if self.escape.active and not on_seed and event["state"] in SERVING_STATES:
            LOGGER.info("carrier %s carries data again: no escape needed", self.escape.failing_plmn)
            self.escape.done()
        self._wake.set()

    def order(self, command_id: str, not_before: float | None, not_after: float | None) -> None:
        """The cloud's ``swap``: scheduled at one random moment inside its window (now
        without one)."""
        now, wall = self.clock.monotonic(), self.clock.wall()
        start = max(0.0, (not_before or wall) - wall)
        width = max(0.0, (not_after or wall) - max(wall, not_before or wall))
        order = pol.schedule_order(command_id, now + start, width, self._rng)
        if self._order is None or self._order.command_id != command_id:
            self._blocked_by = ""  # a new command is not held by an earlier one's back-off
        self._order = order
        self._wake.set()
        LOGGER.info("cloud command %s: swap in %.1f s", command_id, order.due - now)

    def _load_policy(self) -> pol.SwapPolicy:
        saved = store.read_json(self.state_dir / "policy.json")
        try:
            return pol.policy_from_dict(saved or {})
        except ProtocolError as exc:
            LOGGER.warning("saved swap policy ignored: %s", exc)
            return pol.SwapPolicy()

    def on_policy(self, body: dict[str, Any]) -> None:
        """``set_policy`` or the retained policy: bounded, persisted, applied at once."""
        try:
            self.policy = pol.policy_from_dict(body, self.policy)
        except ProtocolError as exc:
            LOGGER.warning("policy version %s refused: %s", body.get("version"), exc)
            return
        store.atomic_write_json(self.state_dir / "policy.json", pol.policy_to_dict(self.policy))
        if self.machine:
            self.machine.attach_timeout_s = self.policy.attach_timeout_s
        LOGGER.info("swap policy now %s", pol.policy_to_dict(self.policy))

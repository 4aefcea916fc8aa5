"""The health task: sample the data path, classify, report changes, count own bytes.

It puts the live pieces together with *explicit inputs* (no supervisor object): a radio
reader (``ModemRadio``, through the one ``Modem`` driver), an ``active_sim()`` getter,
an ``emit(kind, data)`` callback for upstream, an optional ``recover(exc)`` for a modem
that stopped answering, an optional ``on_network(network)`` told when the serving PLMN
changes (billing regions), and ``HealthSettings`` (the config values it needs). While the
wall clock is not trusted it asks the network's time (+CCLK?) to vouch for it. The
sampler's I/O lives in ``agent/net`` and ``agent/core/sampler.py``; ``agent/health``
is the pure classifier and the event shape.

Every state change goes upstream as a ``health`` event in the contract's shape
(``agent.health.event``), which is what lets the platform stop assigning a throttled
SIM. ``suspect`` observations are logged and shown on the status, not sent as states.

The agent's own traffic has a budget (issue 10): the reflector echo runs only while the
classifier has traffic to judge (``wants_traffic_probe``); the active check spends from
a per-day budget kept across restarts; and the bytes of both, plus the broker
connection's (from conntrack), are counted per day in ``OwnTraffic``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from agent.clock import JST, Clock
from agent.core.radio import RadioSnapshot
from agent.core.sampler import LiveSampler, RadioReading
from agent.core.tracefile import TraceFile
from agent.errors import AgentError, AtTimeout, PortClosed
from agent.health.classifier import Classifier
from agent.health.event import ServingNetwork, health_event
from agent.health.outage import OutageLog
from agent.health.sample import COLUMNS, Sample
from agent.health.thresholds import PROBE_BYTES
from agent.health.verdict import StateChange
from agent.net.activecheck import run_check
from agent.net.conntrack import ConntrackFlows
from agent.net.reflector import UdpEchoProber
from agent.plans import predict
from agent.plans.rules import PlanRules, plan_of
from agent.plans.tracker import Allowance
from agent.usage.own import OwnTraffic, check_budget_for

LOGGER = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class HealthSettings:
    """The configuration values the health task needs, and nothing else."""

    wan: str
    lan: str | None
    state_dir: Path
    reflector: tuple[str, int] | None = None
    probe: tuple[str, int] | None = None
    broker: tuple[str, int] | None = None
    """The cloud broker: its flow is the agent's own (counted as "mqtt", not demand)."""
    sample_interval_s: float = 1.0
    radio_interval_s: float = 5.0
    record_trace: Path | None = None
    tz: tzinfo = JST
    """Zone for "since" and for the own-traffic day (the plan's; JST by default)."""


OUTAGE_EVIDENCE = ("cause", "probes_lost", "seconds_silent", "up_bytes", "down_bytes", "radio", "plmn_from")
"""The evidence of a ``no_service`` verdict an outage record keeps (issue 23): what tells a
black hole from an outage, in a few numbers."""


class HealthMonitor:
    """``run()`` is one of the supervisor's tasks; the rest is what it may call."""

    def __init__(self, settings: HealthSettings, *, radio: Any, active_sim: Callable[[], dict[str, Any] | None],
                 emit: Emit, clock: Clock, recover: Callable[[BaseException], Awaitable[None]] | None = None,
                 sampler: LiveSampler | None = None, conntrack: ConntrackFlows | None = None,
                 on_network: Callable[[ServingNetwork], None] | None = None,
                 paused: Callable[[], bool] = lambda: False,
                 on_decision: Callable[[dict[str, Any]], None] | None = None,
                 allowance: Allowance | None = None):
        self.settings = settings
        self._radio_reader = radio
        self._active_sim = active_sim
        self._emit = emit
        self._recover = recover
        self._on_network = on_network
        """Told each time the serving PLMN changes (billing regions: the usage meter)."""
        self._paused = paused
        """True while the supervisor's own swap has the link down on purpose: no sample is
        judged then (a swap is not an outage, and not a throttle)."""
        self._on_decision = on_decision
        """Told every reported state (the swap policy reads it)."""
        self.clock = clock
        if sampler is None:
            prober = UdpEchoProber(*settings.reflector) if settings.reflector else None
            conntrack = conntrack or ConntrackFlows()
            for endpoint in (settings.probe, settings.broker):
                if endpoint is not None:
                    conntrack.own(*endpoint)
            sampler = LiveSampler(settings.wan, settings.lan, prober, conntrack)
        self.sampler = sampler
        self._allowance = allowance
        """Each rule's used / cap of the SIM in use (agent/plans/tracker.py), if metered."""
        self.classifier = self._classifier(active_sim())
        self.outages = OutageLog(settings.state_dir, clock)
        self.own = OwnTraffic.load(settings.state_dir / "own_traffic.json", clock, settings.tz)
        self.size_own_budget(active_sim())
        self._radio = RadioReading()
        self._network = ServingNetwork()
        self._last: dict[str, Any] = {"state": None, "kbps": None, "evidence": {}}
        self._trace = self._open_trace(settings.record_trace)
        """The trace being recorded (``TraceFile``), if any."""
        self._origin = clock.monotonic()

    def _plan(self, facts: dict[str, Any] | None) -> PlanRules | None:
        return self._allowance.plan(facts) if self._allowance is not None else plan_of(facts)

    def size_own_budget(self, facts: dict[str, Any] | None) -> None:
        """The active-check budget from the SIM's plan (agent/usage/own.py: the agent's own
        traffic under 1 % of the plan's daily share)."""
        plan = self._plan(facts)
        statuses = self._allowance.status(facts) if self._allowance is not None and facts else []
        self.own.set_budget(check_budget_for(predict.daily_share(plan, statuses, self.clock.wall())))

    def _classifier(self, facts: dict[str, Any] | None) -> Classifier:
        """A classifier that judges slowness against what the SIM's plan says it should
        deliver now: its rules' throttle rates are throttles, its nominal rate is not (a
        200 kbps plan at 200 kbps is doing its job; issue 22)."""
        plan = self._plan(facts)
        return Classifier(plan_rates=predict.throttle_rates(plan), nominal_kbps=predict.nominal_kbps(plan))

    def _open_trace(self, path: Path | None, **bounds: Any) -> TraceFile | None:
        return TraceFile(path, COLUMNS, monotonic=self.clock.monotonic, **bounds) if path is not None else None

    # ---- what the supervisor calls ----------------------------------------------------
    @property
    def network(self) -> ServingNetwork:
        """The serving network as last read (numeric PLMN for billing regions)."""
        return self._network

    def on_sim_change(self, facts: dict[str, Any]) -> None:
        """A new SIM starts with a fresh classifier and its own plan rate."""
        self.classifier = self._classifier(facts)
        self.size_own_budget(facts)

    def summary(self) -> dict[str, Any]:
        suspect = self.classifier.last_suspect
        radio = {"rsrp_dbm": self._radio.rsrp_dbm, "rsrq_db": self._radio.rsrq_db, "sinr_db": self._radio.sinr_db}
        return dict(self._last, suspect=suspect.to_json() if suspect else None, radio=radio,
                    network=dataclasses.asdict(self._network), demand_source=self.sampler.demand_source,
                    own_traffic=self.own.report())

    def start_trace(self, path: Path, *, max_bytes: int | None = None, max_seconds: float | None = None) -> None:
        """Record every sample to ``path`` (CSV, ``pocket-agent replay`` reads it) from now on,
        until stopped or a bound is reached (agent/core/tracefile.py): the console's ``trace
        start``. A trace already running is closed first."""
        self.stop_trace()
        self._trace = self._open_trace(path, max_bytes=max_bytes, max_seconds=max_seconds)

    def stop_trace(self) -> None:
        if self._trace:
            self._trace.close()
            self._trace = None

    # ---- the task ---------------------------------------------------------------------
    async def run(self) -> None:
        radio_due = 0.0
        try:
            while True:
                now = self.clock.monotonic()
                if now >= radio_due:
                    await self._refresh_radio()
                    radio_due = now + self.settings.radio_interval_s
                if not self._paused():
                    await self.step(round(now - self._origin, 3))
                await asyncio.sleep(self.settings.sample_interval_s)
        finally:
            self.own.save()
            await asyncio.to_thread(self.sampler.close)
            self.stop_trace()

    async def step(self, t: float) -> list[StateChange]:
        """One sampling second: sample, classify, report, check if asked, count own bytes."""
        probing = self.classifier.wants_traffic_probe
        sample = await asyncio.to_thread(self.sampler.sample, t, self._radio, probing)
        self._record(sample)
        changes = self.classifier.feed(sample)
        for change in changes:
            await self._report(change, t)
        for obs in self.classifier.take_observations():
            LOGGER.info("health observation: %s", obs.to_json())
        if self.classifier.wants_probe is not None:
            await self._active_check()
        self._count_own()
        return changes

    def _count_own(self) -> None:
        if self.sampler.prober is not None:
            self.own.observe("reflector", self.sampler.prober.own_bytes)
        if self.sampler.flows is not None and self.sampler.flows.available:
            self.own.observe("mqtt", self.sampler.flows.own_bytes)
        self.own.maybe_save()

    async def _active_check(self) -> None:
        """The classifier asked: one bounded download burst, within the day's budget."""
        probe = self.settings.probe
        if probe is None:
            self.classifier.probe_result(None, 0, "no probe endpoint configured")
            return
        self.size_own_budget(self._active_sim())  # a nearly exhausted SIM gets proportionally less
        allowance = min(PROBE_BYTES, self.own.check_allowance())
        result = await asyncio.to_thread(run_check, allowance, probe[0], probe[1], self.clock)
        if allowance > 0:
            self.own.check_spent(result.bytes_used)
        self.classifier.probe_result(result.kbps, result.bytes_used, result.reason)

    async def _refresh_radio(self) -> None:
        try:
            snap: RadioSnapshot = await self._radio_reader.read()
        except (AtTimeout, PortClosed) as exc:
            LOGGER.warning("modem stopped answering (%s): recovering", exc)
            if self._recover is not None:
                await self._recover(exc)
            return
        except AgentError as exc:
            LOGGER.debug("radio reading failed: %s", exc)
            return
        if snap.network.plmn != self._network.plmn and self._on_network is not None:
            self._on_network(snap.network)
        self._radio, self._network = snap.radio, snap.network
        if not self.clock.wall_trusted() and snap.radio.registered:
            await self._radio_reader.vouch_time(self.clock)

    def _record(self, sample: Sample) -> None:
        if self._trace and not self._trace.write(sample.row()):
            self._trace = None  # it ended by itself (tracefile.py's bounds)

    async def _report(self, change: StateChange, now_t: float) -> None:
        evidence = dict(change.evidence, demand_source=self.sampler.demand_source)
        if self.sampler.demand_source != "conntrack" and self.sampler.flows is not None:
            evidence["demand_note"] = f"conntrack unavailable ({self.sampler.flows.reason}): flows from LAN counters"
        change = StateChange(t=change.t, state=change.state, rate_kbps=change.rate_kbps, evidence=evidence,
                             onset_t=change.onset_t, previous=change.previous)
        sim = self._active_sim()
        event = health_event(change, sim=sim, network=self._network, now_t=now_t,
                             wall=self.clock.wall(), clock_trusted=self.clock.wall_trusted(), tz=self.settings.tz)
        event.update(self._explain(event, sim))
        home = (sim or {}).get("plmn")
        if event["state"] == "no_service" and event.get("plmn") is None and home:
            # No registration, so no serving network to name: the SIM's own carrier is the
            # one that fails (issue 23; the platform counts these per PLMN).
            event["plmn"] = home
            event["evidence"] = dict(event["evidence"], plmn_from="sim")
        self._last = {"state": event["state"], "kbps": event["kbps"], "mechanism": event["mechanism"],
                      "evidence": event["evidence"]}
        LOGGER.info("health: %s (rate %s kbps, %s) on SIM %s", event["state"], event["kbps"], event["mechanism"],
                    event["iccid"])
        await self._emit("health", event)
        if self._on_decision is not None:
            self._on_decision(event)
        await self._track_outage(event)

    def _explain(self, event: dict[str, Any], sim: dict[str, Any] | None) -> dict[str, Any]:
        """``rule`` and ``no_rule_explains`` of a health event (docs/health.md): which of the
        plan's rules the device believes the carrier applied, or that none does."""
        if event["state"] != "throttled":
            return {"rule": None, "no_rule_explains": False}
        plan = self._plan(sim)
        statuses = self._allowance.status(sim) if self._allowance is not None else []
        found = predict.explain(event.get("kbps"), statuses, plan is not None and bool(plan.rules or plan.nominal_kbps))
        if found.no_rule_explains:
            LOGGER.warning("health: SIM %s throttled at %s kbps with its counted usage below every cap: no rule "
                           "of its plan explains this rate", event.get("iccid"), event.get("kbps"))
        return {"rule": found.rule, "no_rule_explains": found.no_rule_explains}

    async def _track_outage(self, event: dict[str, Any]) -> None:
        """Open an outage interval on ``no_service``, close it on leaving, and hand every
        closed one to the cloud link's durable outbox (it is sent when the link returns)."""
        if event.get("state") == "no_service":
            evidence = event.get("evidence", {})
            cause = evidence.get("cause") or "no_service"
            detail = {"plmn": event.get("plmn"), "cell": event.get("cell"), "iccid": event.get("iccid"),
                      "evidence": {k: v for k, v in evidence.items() if k in OUTAGE_EVIDENCE}}
            self.outages.start("no_service", str(cause), detail=detail)
            self.outages.amend_detail("no_service", detail)  # the healer may have opened it first
            return
        self.outages.end("no_service")
        pending = self.outages.unreported()
        for outage in pending:
            await self._emit("outage", outage)
        # The outbox holds them durably now; the log need not hand them over again.
        self.outages.mark_reported([o["id"] for o in pending])

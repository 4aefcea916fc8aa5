"""The supervisor's health task: sample the data path, classify, report changes.

It puts the live pieces of ``agent/health`` together: the sampler (WAN/LAN counters from
sysfs, flows from conntrack, RTT/loss from the UDP echo reflector), radio readings from
the modem driver (the supervisor owns the AT port, so radio comes from here, refreshed
every ``radio_interval_s``), the pure classifier, and the outage log. Every state change
goes upstream as a ``health`` event naming the SIM and the serving network, which is what
lets the platform stop assigning a throttled SIM.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from pathlib import Path
from typing import Any

from agent.errors import AgentError, AtTimeout, PortClosed
from agent.health.classifier import Classifier
from agent.health.outage import OutageLog
from agent.health.probe import ProbeBudget, run_check
from agent.health.sample import COLUMNS, Sample
from agent.health.sampler import FlowCounter, LiveSampler, RadioReading, UdpEchoProber

LOGGER = logging.getLogger(__name__)


class HealthMonitor:
    """Owned by the supervisor; ``run()`` is one of its tasks."""

    def __init__(self, sup: Any):
        self.sup = sup
        cfg, profile = sup.cfg, sup.profile
        prober = UdpEchoProber(*cfg.reflector) if cfg.reflector else None
        self.sampler = LiveSampler(profile.data_interface, getattr(profile, "lan_interface", None) or None,
                                   prober, FlowCounter(), radio=self)
        self.classifier = Classifier(plan_rate_kbps=self._plan_rate(sup.current))
        self.outages = OutageLog(sup.state_dir, sup.clock)
        self.budget = ProbeBudget(sup.clock)
        self._radio = RadioReading()
        self._network: dict[str, Any] = {}
        self._last: dict[str, Any] = {"state": "ok", "rate_kbps": None, "evidence": {}}
        self._trace = self._open_trace(cfg.record_trace)
        self._origin = sup.clock.monotonic()

    @staticmethod
    def _plan_rate(facts: dict[str, Any] | None) -> float | None:
        plan = (facts or {}).get("plan") or {}
        return plan.get("throttle_kbps")

    @staticmethod
    def _open_trace(path: Path | None) -> Any:
        if path is None:
            return None
        fh = open(path, "a", newline="")  # noqa: SIM115 - lives as long as the monitor
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        if fh.tell() == 0:
            writer.writeheader()
        return fh, writer

    # ---- what the supervisor calls ----------------------------------------------------
    def read(self) -> RadioReading:
        """The sampler's radio source: the latest reading the driver gave us."""
        return self._radio

    def on_sim_change(self, facts: dict[str, Any]) -> None:
        """A new SIM starts with a fresh classifier and its own plan rate."""
        self.classifier = Classifier(plan_rate_kbps=self._plan_rate(facts))

    def summary(self) -> dict[str, Any]:
        return dict(self._last, probe_budget=self.budget.report())

    # ---- the task ---------------------------------------------------------------------
    async def run(self) -> None:
        radio_due = 0.0
        try:
            while True:
                now = self.sup.clock.monotonic()
                if now >= radio_due:
                    await self._refresh_radio()
                    radio_due = now + self.sup.cfg.radio_interval_s
                sample = await asyncio.to_thread(self.sampler.sample, round(now - self._origin, 3))
                self._record(sample)
                for change in self.classifier.feed(sample):
                    await self._report(change)
                if self.classifier.wants_probe is not None:
                    await self._active_check()
                await asyncio.sleep(self.sup.cfg.sample_interval_s)
        finally:
            await asyncio.to_thread(self.sampler.close)
            if self._trace:
                self._trace[0].close()

    async def _active_check(self) -> None:
        """The classifier asked: one bounded download burst, within the day's budget."""
        probe = self.sup.cfg.probe
        if probe is None:
            self.classifier.probe_result(None, 0, "no probe endpoint configured")
            return
        # run_check never raises: a failure comes back as a measurement with kbps None.
        result = await asyncio.to_thread(run_check, self.budget, probe[0], probe[1], self.sup.clock)
        self.classifier.probe_result(result.kbps, result.bytes_used, result.reason)

    async def _refresh_radio(self) -> None:
        modem = self.sup.modem
        try:
            sig = await modem.signal()
            reg = await modem.registration()
        except (AtTimeout, PortClosed) as exc:
            LOGGER.warning("modem stopped answering (%s): recovering", exc)
            await self.sup.recover_modem(exc)
            return
        except AgentError as exc:
            LOGGER.debug("radio reading failed: %s", exc)
            return
        self._radio = RadioReading(rsrp_dbm=sig.rsrp_dbm, rsrq_db=sig.rsrq_db, sinr_db=sig.sinr_db,
                                   registered=reg.stat in (1, 5))
        self._network = {"cell": reg.ci, "tac": reg.tac if reg.tac is not None else reg.lac, "act": reg.act,
                         "plmn": None}
        try:
            op = await modem.operator()
            self._network["plmn"] = op.oper
        except AgentError:
            pass

    def _record(self, sample: Sample) -> None:
        if self._trace:
            self._trace[1].writerow(sample.row())
            self._trace[0].flush()

    async def _report(self, change: Any) -> None:
        event = change.to_json()
        sim = self.sup.current or {}
        event["sim"] = {"iccid": sim.get("iccid"), "imsi": sim.get("imsi")}
        event["network"] = dict(self._network)
        self._last = {"state": event.get("state"), "rate_kbps": event.get("rate_kbps"),
                      "evidence": event.get("evidence", {})}
        LOGGER.info("health: %s (rate %s kbps) on SIM %s", event.get("state"), event.get("rate_kbps"), sim.get("iccid"))
        await self.sup.cloud.emit("health", event)
        await self._track_outage(event)

    async def _track_outage(self, event: dict[str, Any]) -> None:
        """Open an outage interval on ``no_service``, close it on leaving, and hand every
        closed one to the cloud link's durable outbox (it is sent when the link returns)."""
        if event.get("state") == "no_service":
            cause = event.get("evidence", {}).get("cause") or "no_service"
            self.outages.start("no_service", str(cause))
            return
        self.outages.end("no_service")
        pending = self.outages.unreported()
        for outage in pending:
            await self.sup.cloud.emit("outage", outage)
        # The outbox holds them durably now; the log need not hand them over again.
        self.outages.mark_reported([o["id"] for o in pending])

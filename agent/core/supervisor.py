"""The supervisor: wires the adapters to the logic and owns the daemon's life cycle.

Start-up, in the order a router needs it:

1. open the usage journal and re-seed the meter from its last durable baseline, so the
   bytes that flowed while the agent was down are counted once (agent/usage/);
2. open the modem; if it still carries the SIM this agent last applied, with its data
   context up, **resume** without touching the radio (a restarted agent must not break the
   user's connection); otherwise attach on the bootstrap (seed) SIM;
3. reach the cloud over whichever SIM is up, and, unless resumed, request an assignment,
   open the sealed profile, load it into a free vSIM slot, switch to it, attach, bring the
   data context up and move the default route onto it;
4. serve: sample the data interface every second (meter -> journal -> cloud), report on a
   fixed cadence, classify link health and report changes.

SIGTERM flushes the journal and closes every adapter. Each task is owned here and
cancelled on shutdown; every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from agent import store
from agent.boardprofile import BoardProfile, load_profile
from agent.clock import Clock
from agent.cloud.link import CloudConfig, CloudLink
from agent.config import AgentConfig
from agent.core import exitcodes, failure, heal_wiring  # issue 9
from agent.core.status import StatusFile
from agent.errors import AgentError, ModemError
from agent.modem.driver import Modem
from agent.modem.recovery import RecoveryFailed, RecoveryLadder, reset_line_from_profile
from agent.net.link import WanLink
from agent.net.resolv import write_resolv
from agent.sim import SimProfile
from agent.usage.calendar import parse_tz
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter

LOGGER = logging.getLogger(__name__)

DATA_CID = 1
"""The PDP context the agent uses for user data (cid 1 is every modem's default)."""
REGISTRATION_TIMEOUT = 90.0
"""Seconds to wait for registration after a SIM switch or radio on. LTE attach takes
1-10 s on a healthy network; 3GPP T3410 is 15 s and a UE retries up to five times."""
REGISTRATION_POLL = 0.5
ASSIGNMENT_TIMEOUT = 120.0
"""Seconds for the cloud to answer an assignment request, retry-after waits included."""
SHUTDOWN_DRAIN = 3.0
"""Seconds SIGTERM gives the cloud link to send what is pending before it closes."""
SHUTDOWN_SETTLE = 0.3
"""Seconds for the TCP close handshake to finish before the last counter reading."""
STATUS_EVERY = 2.0
"""Seconds between status-file refreshes (usage and health move every second)."""
REGISTERED = (1, 5)
"""27.007 <stat>: 1 registered, home network; 5 registered, roaming."""


class Supervisor:
    """One per daemon. ``run()`` returns the process exit code."""

    def __init__(self, cfg: AgentConfig, profile: BoardProfile, clock: Clock | None = None):
        self.cfg = cfg
        self.profile = profile
        self.clock = clock or Clock()
        self.status = StatusFile(cfg.status_file)
        self.give_up = failure.GiveUp(self.status)  # issue 9: exit code + reason
        self.state_dir = Path(cfg.state_dir)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.modem: Modem | None = None
        self.ladder: RecoveryLadder | None = None
        self.cloud: CloudLink | None = None
        self.wan = WanLink(profile.data_interface)
        self.journal: UsageJournal | None = None
        self.meter: UsageMeter | None = None
        self.current: dict[str, Any] | None = None
        """Public facts of the SIM in use (never its keys): iccid, imsi, slot, plan, assignment_id."""
        self.health: Any = None
        self.healer: Any = None  # issue 9

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> Supervisor:
        return cls(cfg, load_profile(cfg.board_profile))

    # ---- life cycle -----------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self._start()
            self.status.update(state="serving")
            LOGGER.info("serving on SIM %s", (self.current or {}).get("iccid"))
            await self._stop.wait()
        except (AgentError, OSError) as exc:  # issue 9: honest exit codes
            LOGGER.error("cannot serve: %s: %s", type(exc).__name__, exc)
            self.give_up(failure.code_for(exc), f"{type(exc).__name__}: {exc}")
        finally:
            await self._shutdown()
        return self.give_up.code

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Start a task the supervisor owns; a crash in it is logged and stops the daemon."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            LOGGER.error("task %s died: %r; stopping so the service manager restarts us", task.get_name(), exc)
            self.give_up(exitcodes.FAILURE, f"task {task.get_name()} died: {exc!r}")  # issue 9
            self._stop.set()

    async def _start(self) -> None:
        store.ensure_private_dir(self.state_dir)
        self._lock_fd = failure.hold_state_lock(self.state_dir)  # issue 9: ALREADY_RUNNING (75)
        self.status.update(state="starting", device_id=self.cfg.device_id)
        self._open_usage()
        await self._first_reading()
        self.modem = Modem(self.cfg.modem_port or self.profile.at_port, self.profile.dialect,
                           baud=self.profile.baud)
        await self.modem.open()
        self.ladder = RecoveryLadder(self.modem, reset_line_from_profile(dict(self.profile.reset_line or {})),
                                     clock=self.clock)
        self.cloud = self._make_cloud()
        self.cloud.on_command(self._on_command)
        resumed = await self._resume()
        if not resumed:
            await self._use_seed()
        self.cloud.set_network_available(True)
        await self.cloud.start()
        if not resumed:
            await self.assign("boot")
        self.spawn(self._sample_loop(), "sample")
        self.spawn(self._report_loop(), "report")
        self.spawn(self._status_loop(), "status")
        self._start_health()
        self.healer = heal_wiring.healer_for(self)  # issue 9: self-healing (agent/core/heal.py)
        self.spawn(self.healer.run(), "heal")  # issue 9

    async def _shutdown(self) -> None:
        """Stop tasks, hand the cloud what is pending, then take the *last* sample.

        The final sample comes after the cloud session is closed (and the TCP close has
        settled), so the journal holds every byte this run moved, its own goodbye
        included: after SIGTERM the cloud's total plus the journal's pending records
        equal the carrier's count exactly (tests/lab).
        """
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.cloud:
            if self.meter and self.journal:
                with contextlib.suppress(AgentError, OSError):
                    await self._sample_once()
                    self.journal.flush("shutdown")
            self.cloud.kick()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.cloud.stop(), SHUTDOWN_DRAIN + 2)
            await asyncio.sleep(SHUTDOWN_SETTLE)
        if self.meter and self.journal:
            with contextlib.suppress(AgentError, OSError):
                await self._sample_once()
            with contextlib.suppress(AgentError):
                self.journal.flush("shutdown")
        if self.modem:
            with contextlib.suppress(Exception):
                await self.modem.close()
        if self.journal:
            self.journal.close()
        if not self.give_up.failed:  # issue 9: a failure stays in the status file
            self.status.update(state="stopped")

    # ---- usage ----------------------------------------------------------------------
    def _open_usage(self) -> None:
        self.journal = UsageJournal(self.state_dir / "usage.journal", clock=self.clock,
                                    flush_interval_s=self.cfg.flush_interval_s)
        self.meter = UsageMeter(self.clock, tz=parse_tz(self.cfg.tz_offset),
                                header_bytes=self.profile.link_header_bytes)
        baseline = self.journal.baseline()
        if baseline is not None:
            self.meter.seed(baseline, self.journal.baseline_wall())
            LOGGER.info("usage: resuming from the journal's baseline (ifindex %s)", baseline.ifindex)

    async def _first_reading(self) -> None:
        """Read the counters before this run moves a byte: a fresh journal takes it as its
        baseline; a resumed one accounts the bytes since its last flush to the SIM that
        was in use then (current.json), which the modem still carries."""
        assert self.meter
        last = store.read_json(self._current_file())
        if last:
            self.meter.set_active_sim(last["iccid"], last["imsi"], last["imsi"][:3])
        try:
            await self._sample_once()
        except AgentError as exc:
            LOGGER.warning("first counter reading failed: %s", exc)

    async def _sample_once(self) -> None:
        assert self.meter and self.journal
        counters = await asyncio.to_thread(self.wan.counters)
        deltas = self.meter.sample(counters)
        # The meter's baseline is the reading stamped with the boot id; the journal must
        # store that one, or a restart would take the same boot for a reboot.
        self.journal.add(deltas, self.meter.baseline() or counters, self.clock.wall())

    async def _sample_loop(self) -> None:
        while True:
            try:
                await self._sample_once()
            except AgentError as exc:
                LOGGER.warning("usage sample failed: %s", exc)
            interval = self.cfg.sample_interval_s
            to_boundary = self.meter.next_boundary() - self.clock.wall() if self.meter else interval
            await asyncio.sleep(max(0.0, min(interval, to_boundary)))

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.report_interval_s)
            assert self.cloud
            self.cloud.kick()

    async def _status_loop(self) -> None:
        while True:
            self.status.update(
                sim=self.current,
                cloud={"connected": bool(self.cloud and self.cloud.connected)},
                health=self.health.summary() if self.health else None,
            )
            await asyncio.sleep(STATUS_EVERY)

    # ---- SIMs and the data path -------------------------------------------------------
    def _make_cloud(self) -> CloudLink:
        c = self.cfg.cloud
        config = CloudConfig(device_id=self.cfg.device_id, host=c.host, port=c.port, ca_file=c.ca,
                             cert_file=c.cert, key_file=c.key, sealing_key_file=c.sealing_key,
                             platform_key_file=c.platform_key)
        assert self.journal
        return CloudLink(config, state_dir=self.state_dir / "cloud", clock=self.clock, sources=[self.journal])

    def _current_file(self) -> Path:
        return self.state_dir / "current.json"

    async def _resume(self) -> bool:
        """Keep the SIM and data context a previous run left up, if the modem still has them."""
        assert self.modem and self.meter
        last = store.read_json(self._current_file())
        if not last:
            return False
        try:
            slot, iccid = await self.modem.active_profile()
            if slot != last["slot"] or iccid != last["iccid"]:
                LOGGER.info("modem carries slot %s (%s), not our last SIM: starting afresh", slot, iccid)
                return False
            params = await self.modem.context_params(DATA_CID)
        except ModemError as exc:
            LOGGER.info("cannot resume the last SIM (%s): starting afresh", exc)
            return False
        if params is None or not params.address:
            return False
        await self._route(params, last)
        self._set_current(last)
        LOGGER.info("resumed on SIM %s without touching the radio", iccid)
        return True

    async def _use_seed(self) -> None:
        """Attach on the bootstrap SIM: enough to reach the cloud. If the seed is already
        active with its data context up (an assignment failed before the switch), keep it."""
        assert self.modem
        slot, _ = await self.modem.active_profile()
        if slot != self.profile.seed_slot:
            await self.modem.select_slot(self.profile.seed_slot)
        await self.modem.set_radio(True)
        await self._wait_registered()
        iccid = await self.modem.iccid()
        imsi = await self.modem.imsi()
        facts = {"slot": self.profile.seed_slot, "iccid": iccid, "imsi": imsi, "seed": True,
                 "plan": None, "assignment_id": None}
        if not await self._context_up():
            await self._bring_up_data("", facts)
        else:
            await self._route(await self.modem.context_params(DATA_CID), facts)
        self._set_current(facts)

    async def _context_up(self) -> bool:
        assert self.modem
        states = await self.modem.context_states()
        return any(s.cid == DATA_CID and s.active for s in states)

    async def _wait_registered(self) -> None:
        assert self.modem
        deadline = self.clock.monotonic() + REGISTRATION_TIMEOUT
        while True:
            reg = await self.modem.registration()
            if reg.stat in REGISTERED:
                return
            if self.clock.monotonic() > deadline:
                raise ModemError(f"not registered after {REGISTRATION_TIMEOUT:.0f} s (stat {reg.stat}, "
                                 f"reject cause {reg.reject_cause})")
            await asyncio.sleep(REGISTRATION_POLL)

    async def _bring_up_data(self, apn: str, facts: dict[str, Any] | None = None) -> None:
        assert self.modem
        await self.modem.define_context(DATA_CID, apn)
        await self.modem.activate_context(DATA_CID)
        params = await self.modem.context_params(DATA_CID)
        if params is None or not params.address:
            raise ModemError("data context is up but the modem reports no address")
        await self._route(params, facts)

    async def _route(self, params: Any, facts: dict[str, Any] | None = None) -> None:
        """Move the data interface onto ``params``. With ``facts`` (a SIM switch), the bytes
        up to this instant are sampled for the old SIM and the meter switches to the new
        one in the same step, so no byte is billed to the wrong SIM."""
        if facts is not None:
            await self._sample_once()
            assert self.meter
            self.meter.set_active_sim(facts["iccid"], facts["imsi"], facts["imsi"][:3])
        await asyncio.to_thread(self.wan.apply, params)
        if self.cfg.resolv_file and params.dns:
            write_resolv(self.cfg.resolv_file, list(params.dns))

    def _set_current(self, facts: dict[str, Any]) -> None:
        assert self.meter
        self.current = facts
        self.meter.set_active_sim(facts["iccid"], facts["imsi"], facts["imsi"][:3])
        store.atomic_write_json(self._current_file(), facts)
        self.status.update(sim=facts)
        if self.health is not None:
            self.health.on_sim_change(facts)

    def _free_slot(self) -> int:
        active = (self.current or {}).get("slot")
        return next(s for s in self.profile.vsim_slots if s != active)

    async def assign(self, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Ask the cloud for a SIM and move onto it; on failure fall back to the seed SIM."""
        assert self.cloud
        assignment = await self.cloud.request_assignment(
            reason, current_iccid=(self.current or {}).get("iccid"), evidence=evidence, timeout=ASSIGNMENT_TIMEOUT)
        await self.apply(assignment)

    async def apply(self, assignment: Any) -> None:
        """Load, switch, attach, route. The old SIM's final bytes are journaled first."""
        assert self.modem and self.journal and self.cloud
        profile: SimProfile = assignment.profile
        slot = self._free_slot()
        LOGGER.info("applying assignment %s: SIM %s into slot %d", assignment.assignment_id, profile.iccid, slot)
        await self._sample_once()
        self.journal.flush("switch")
        try:
            await self.modem.load_profile(slot, profile)
            # The session to the broker is bound to the old SIM's address, which goes away
            # with the switch: pause the link rather than let it find out by keepalive.
            self.cloud.set_network_available(False)
            await self.modem.select_slot(slot)
            await self._wait_registered()
            facts = {"slot": slot, "iccid": profile.iccid, "imsi": profile.imsi, "seed": False,
                     "plan": profile.plan.to_dict(), "assignment_id": assignment.assignment_id}
            await self._bring_up_data(profile.apn, facts)
        except ModemError as exc:
            LOGGER.error("assignment %s failed: %s", assignment.assignment_id, exc)
            await self.cloud.report_assignment_result(assignment.assignment_id, False, str(exc))
            await self._use_seed()
            self.cloud.set_network_available(True)
            raise
        self.cloud.set_network_available(True)
        self._set_current(facts)
        self.journal.flush("switch")  # the old SIM's final bytes, durable before we report
        del profile  # the keys are in the modem now; drop our reference
        await self.cloud.report_assignment_result(assignment.assignment_id, True, "attached")

    async def recover_modem(self, cause: BaseException) -> None:
        """A modem that stopped answering climbs the recovery ladder (retry, reopen, radio
        off/on, power-cycle); if even that fails the daemon stops so its service manager
        restarts it, rather than hang."""
        assert self.ladder
        try:
            step = await (self.healer.modem_trouble(cause) if self.healer else self.ladder.recover(cause))  # issue 9
        except RecoveryFailed as exc:
            LOGGER.error("modem did not recover: %s", exc)
            self.give_up(exitcodes.MODEM_LOST, f"modem: {exc}")  # issue 9
            self._stop.set()
            return
        self.status.update(modem_recovery=self.ladder.counters())
        if self.cloud:
            await self.cloud.emit("health", {"state": "modem_recovered", "rate_kbps": None,
                                             "evidence": {"step": step, "cause": type(cause).__name__,
                                                          "ladder": self.ladder.counters()}})

    def _on_command(self, command: Any) -> None:
        """Cloud orders. ``report`` drains the usage journal now; ``swap`` and
        ``set_policy`` belong to the hot-swap issue and are logged, not yet acted on."""
        if command.action == "report":
            assert self.meter and self.journal and self.cloud
            asyncio.get_running_loop().create_task(self._report_now())
        else:
            LOGGER.warning("command %s (%s) is not supported by this agent version yet",
                           command.command_id, command.action)

    async def _report_now(self) -> None:
        assert self.journal and self.cloud
        await self._sample_once()
        self.journal.flush("request")
        self.cloud.kick()

    # ---- health ---------------------------------------------------------------------
    def _start_health(self) -> None:
        """Link-health classification (agent/core/health.py) when its parts are configured."""
        try:
            from agent.core.health import HealthMonitor
        except ImportError:  # pragma: no cover - the monitor ships with the health issue
            return
        self.health = HealthMonitor(self)
        self.spawn(self.health.run(), "health")


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

Stopping (SIGTERM from systemd or procd, SIGINT from a shell) is honoured in every
phase, start-up included, within ``STOP_BUDGET_S``: start-up runs as a task that the stop
cancels at its next await (a registration poll, an AT command, the assignment wait), then
the shutdown flushes the journal and closes every adapter, each step bounded. A swap cut
short by the stop is neither finished nor rolled back here: its phase is on disk
(agent/core/swap.py), the old SIM's bytes are flushed, and the next start finishes or
undoes it exactly as after a crash (docs/swap.md, "Stopped during a swap"). Each task is
owned here and cancelled on shutdown; every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from agent import store
from agent.boardprofile import BoardProfile, load_profile
from agent.clock import Clock
from agent.cloud import renewal as cert_renewal
from agent.cloud.link import CloudConfig, CloudLink
from agent.config import AgentConfig
from agent.core import escape as esc
from agent.core import failure, heal_wiring  # issue 9
from agent.core.exitcodes import ExitCode
from agent.core.health import HealthMonitor, HealthSettings
from agent.core.metering import Metering
from agent.core.radio import ModemRadio, vouch_network_time
from agent.core.status import StatusFile, service_line
from agent.core.swap import Hooks, SimFacts, SwapMachine, is_registered
from agent.core.swap_control import SwapControl
from agent.core.update_wiring import updater_for
from agent.core.updater import Updater
from agent.errors import AgentError, AssignmentUnavailable, ModemError, PlanError, ProtocolError
from agent.health.event import status_event
from agent.modem.driver import Modem
from agent.modem.recovery import RecoveryFailed, RecoveryLadder, reset_line_from_profile
from agent.net.link import WanLink
from agent.net.reach import udp_echo
from agent.net.resolv import write_resolv
from agent.sdnotify import Notifier, ProgressWatchdog
from agent.usage.calendar import parse_tz
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter
from agent.usage.reporting import ReportGate, ReportPolicy
from agent.version import describe_short

LOGGER = logging.getLogger(__name__)

DATA_CID = 1
"""The PDP context the agent uses for user data (cid 1 is every modem's default)."""
REGISTRATION_TIMEOUT = 90.0
"""Seconds to wait for registration after a SIM switch or radio on. LTE attach takes
1-10 s on a healthy network; 3GPP T3410 is 15 s and a UE retries up to five times."""
REGISTRATION_POLL = 0.5
ASSIGNMENT_TIMEOUT = 120.0
"""Seconds for the cloud to answer an assignment request, retry-after waits included."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""systemd and procd stop a service with SIGTERM; a technician at a shell sends SIGINT."""
STOP_BUDGET_S = 3.0
"""The stop contract (packaging/README.md): from the stop signal to the exit, in any phase.
A router's own shutdown (a reboot, a package upgrade) waits for the agent; the unit's
``TimeoutStopSec=20`` is only the backstop after which systemd kills. The bounds below
share it: START_CANCEL_S + TASKS_CANCEL_S + CLOUD_STOP_S + SHUTDOWN_SETTLE = 2.5 s, and
the last reading, the journal's fsync and the modem's close take milliseconds."""
START_CANCEL_S = 0.5
"""Start-up unwinding after the stop cancels it: cancellation lands at its next await at
once; the bound keeps a step that swallows it from eating the stop budget."""
CANCEL_GRACE_S = 0.1
"""How long a cancelled task may take in its ``finally`` (close a socket, save a file)
before its cancellation is repeated."""
CANCEL_REPEAT_S = 0.05
"""Then the cancellation is repeated this often. One can be lost: Python 3.11's
``asyncio.wait_for`` swallows a cancellation that arrives just as the future it waits on
completes (CPython gh-86296, fixed in 3.12; Debian 12 and OpenWrt 23.05 ship 3.11). An AT
answer arriving with the SIGTERM is exactly that, and start-up then slept on into its next
registration poll (measured: the stop took 0.5 s more in two runs of five)."""
TASKS_CANCEL_S = 0.4
"""The same for the serving tasks (a task's ``finally`` may close a socket or save a file)."""
CLOUD_STOP_S = 1.3
"""The cloud link's goodbye (the retained offline state, PUBACK awaited for up to
``GOODBYE_WAIT_S`` = 1 s in agent/cloud/session.py) and its disconnect. A record not
acknowledged by then stays in the journal and goes up after the next start."""
SHUTDOWN_SETTLE = 0.3
"""Seconds for the TCP close handshake to finish before the last counter reading."""
SWAP_HISTORY_FILE = "swaps.json"
"""The swap machine's recent results (agent/core/swap.py ``HISTORY_KEEP``), in the state
directory: the renter's page says what the last swap did after a restart too."""
STATUS_EVERY = 2.0
"""Seconds between status-file refreshes (usage and health move every second)."""
SEED_ESCAPE_REGISTRATION_S = 30.0
"""During an escape from a dead carrier, how long the seed SIM may take to register
before the attempt is given up (and the old SIM selected again): an attach on a working
network takes 1-10 s; a seed that has not registered in 30 s is on a dead network too,
and every second here is a second the router listens on neither SIM."""


async def cancel_and_wait(tasks: list[asyncio.Task[Any]], bound: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait, at most ``bound`` seconds, until they end; returns those
    still running. A cancellation is repeated (after CANCEL_GRACE_S, then every
    CANCEL_REPEAT_S) because one can be lost on the way: see CANCEL_REPEAT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    pending = {task for task in tasks if not task.done()}
    wait = CANCEL_GRACE_S
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(wait, left))
        wait = CANCEL_REPEAT_S
    return pending


class Supervisor:
    """One per daemon. ``run()`` returns the process exit code."""

    def __init__(self, cfg: AgentConfig, profile: BoardProfile, clock: Clock | None = None):
        self.cfg = cfg
        self.profile = profile
        self.clock = clock or Clock(strict=True)  # issue 10: wall time trusted only when a source vouched
        self.status = StatusFile(cfg.status_file)
        self.give_up = failure.GiveUp(self.status)  # issue 9: exit code + reason
        self.state_dir = Path(cfg.state_dir)
        self._stop = asyncio.Event()
        self._stop_asked: float | None = None
        """When a stop was asked for (monotonic), for the log line that measures the stop."""
        self._tasks: list[asyncio.Task[Any]] = []
        self.modem: Modem | None = None
        self.ladder: RecoveryLadder | None = None
        self.cloud: CloudLink | None = None
        self.wan = WanLink(profile.data_interface)
        self.usage: Metering | None = None
        """The usage path (agent/core/metering.py); ``journal`` and ``meter`` are its."""
        self.journal: UsageJournal | None = None
        self.meter: UsageMeter | None = None
        self.current: dict[str, Any] | None = None
        """Public facts of the SIM in use (never its keys): iccid, imsi, slot, plan, assignment_id."""
        self.health: HealthMonitor | None = None
        self.swaps: SwapMachine | None = None
        self.swap_control = SwapControl(lambda: self.clock, self.state_dir, self.status,
                                        current=lambda: self.current,
                                        used_on_current=lambda: self.usage.used_on_current if self.usage else 0,
                                        traffic_kbps=lambda: self.usage.traffic_kbps if self.usage else 0.0,
                                        rules=self._rules)
        """When to swap, one swap at a time (agent/core/swap_control.py)."""
        self.swap_control.escape_hook = self.escape_carrier
        self.seed_plmn: str | None = None
        """The seed SIM's carrier, learnt when it last registered (agent/core/escape.py)."""
        self._escape_own_mark = 0
        """Own bytes counted when the escape in progress left for the seed SIM."""
        self.watchdog = ProgressWatchdog(Notifier(None), None)
        """Service-manager hooks (agent/sdnotify.py); run.py installs the real one."""
        self.status.on_change = lambda data: self._announce()
        self.consoled: Any = None  # console (issue 12): control socket + technician console
        self.page: Any = None
        """The renter's status page server (agent/core/paged.py), when it is on."""
        self.report_gate: ReportGate | None = None
        """Issue 10: usage goes upstream when there is usage to report, or as a heartbeat."""
        self.healer: Any = None  # issue 9
        self.updater: Updater | None = None
        """Over-the-air updates (agent/core/updater.py), once the cloud link exists."""
        self.restart_for_update = False
        """Set when an update is installed: run.py starts afresh after the shutdown."""

    def allowance_report(self) -> list[dict[str, Any]]:
        """Each plan rule of the SIM in use: used / cap / resets-at (the status file and the
        console's ``usage``; docs/console.md)."""
        if self.usage is None or self.usage.allowance is None or not self.current:
            return []
        return self.usage.allowance.report(self.current)

    def _rules(self) -> list[Any]:
        """Each plan rule's used / cap of the SIM in use (agent/plans/tracker.py)."""
        if self.usage is None or self.usage.allowance is None or not self.current:
            return []
        return self.usage.allowance.status(self.current)

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> Supervisor:
        return cls(cfg, load_profile(cfg.board_profile))

    # ---- life cycle -----------------------------------------------------------------
    async def run(self, stopped_before: Callable[[], str | None] = lambda: None) -> int:
        """Start, serve until asked to stop (or until the daemon gives up), shut down.

        Start-up is a task raced against the stop, so SIGTERM during the registration wait,
        the assignment wait or a swap ends the agent within ``STOP_BUDGET_S``, not after
        the step's own timeout (issue 28, finding 5). ``stopped_before`` names a stop
        signal that came before this loop handled them (agent/faces/cli/run.py); it is
        read after the handlers are in place, so no signal falls between the two."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        early = stopped_before()
        if early is not None:
            self.request_stop(f"{early} before start-up")
        try:
            if await self._start_unless_stopped():
                self.status.update(state="serving")
                LOGGER.info("serving on SIM %s", (self.current or {}).get("iccid"))
                self.watchdog.serving(self._service_line())
                await self._stop.wait()
        except (AgentError, OSError) as exc:  # issue 9: honest exit codes
            LOGGER.error("cannot serve: %s: %s", type(exc).__name__, exc)
            self.give_up(failure.code_for(exc), f"{type(exc).__name__}: {exc}")
        finally:
            if self.restart_for_update:  # not STOPPING=1: the process execs into the update, it does
                # not exit, and systemd would wait for an exit and kill it (TimeoutStopSec=)
                self.watchdog.line.offer("restarting into an installed update")
            else:
                self.watchdog.stopping()
            await self._shutdown()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        return self.give_up.code

    def _service_line(self) -> str | None:
        outages = self.health.outages.open_now() if self.health is not None else []
        return service_line(self.status.data, outages)

    def _announce(self) -> None:
        """Offer ``systemctl status``'s line for the state now (sent when it changed, at
        most once per STATUS_MIN_INTERVAL_S). Runs inside every status update, the 2-s
        refresh included, which also sends a held line once its interval is over."""
        try:
            self.watchdog.line.offer(self._service_line())
        except Exception:  # a report only: a swap or a give-up must not fail on it
            LOGGER.exception("could not compose the service status line")

    def heal_changed(self, summary: dict[str, Any]) -> None:
        """The healer finished a pass (agent/core/heal_wiring.py)."""
        self.status.data["heal"] = summary
        self._announce()

    def request_stop(self, why: str = "request") -> None:
        """Stop the daemon (a stop signal, or run.py for one that came before the loop)."""
        if self._stop.is_set():
            LOGGER.info("%s: already stopping", why)
            return
        LOGGER.info("%s: stopping", why)
        self._stop_asked = time.monotonic()
        self._stop.set()

    def fail(self, code: int, reason: str) -> None:
        """Give up with ``code`` and stop: the stop comes first, so nothing that goes wrong
        while the failure is recorded can leave the daemon running (issue 20, finding 13)."""
        self._stop.set()
        self.give_up(code, reason)

    async def _start_unless_stopped(self) -> bool:
        """Run start-up until it ends or a stop is asked for; True if it ended.

        A stop cancels start-up wherever it waits. What it had opened is closed by
        ``_shutdown`` (each adapter is a field, set once opened); a swap it was in stays
        on disk for the next start (agent/core/swap.py)."""
        if self._stop.is_set():  # asked before start-up began: nothing to open, nothing to undo
            return False
        start = asyncio.get_running_loop().create_task(self._start(), name="start")
        stop = asyncio.get_running_loop().create_task(self._stop.wait(), name="stop-wait")
        try:
            await asyncio.wait((start, stop), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            start.cancel()
            raise
        finally:
            stop.cancel()
        if start.done():
            start.result()  # start-up's own error, for run() to turn into an exit code
            return not self._stop.is_set()
        LOGGER.info("stopped during start-up: cancelling it")
        if await cancel_and_wait([start], START_CANCEL_S):
            LOGGER.warning("start-up did not unwind within %.1f s; shutting down beside it", START_CANCEL_S)
        elif not start.cancelled() and start.exception() is not None:
            LOGGER.info("start-up ended with %r while stopping", start.exception())
        return False

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
            self.fail(failure.code_for(exc), f"{type(exc).__name__}: {exc}")

    async def _start(self) -> None:
        store.ensure_private_dir(self.state_dir)
        self.status.update(state="starting", device_id=self.cfg.device_id, pid=os.getpid(), version=describe_short())
        # ---- console (issue 12): up first, so a technician can see a daemon stuck starting
        from agent.core import consoled
        self.consoled = await consoled.start(self)
        # ---- end console
        from agent.core import paged  # issue 25: the renter's page (its code loads only when on)
        self.page = await paged.start(self)
        self._open_usage()
        await self._first_reading()
        self.modem = Modem(self.cfg.modem_port or self.profile.at_port, self.profile.dialect,
                           baud=self.profile.baud)
        await self.modem.open()
        if self.modem.remote is not None:  # issue 24: the host slots filled before anything reads them
            from agent.core import rsimboot
            await rsimboot.restore(self.modem.remote, self.cfg, self.state_dir, self.profile.seed_slot)
        self.ladder = RecoveryLadder(self.modem, reset_line_from_profile(dict(self.profile.reset_line or {})),
                                     clock=self.clock)
        self.cloud = self._make_cloud()
        self.cloud.on_command(self._on_command)
        self.cloud.on_policy(self.swap_control.on_policy)
        self.updater = updater_for(self)  # issue 26: before the session starts, so its leaf is subscribed
        if self.consoled:  # console (issue 12): technician keys rotate with the cloud's policy
            self.consoled.attach_cloud(self.cloud)
        self.swaps = self.swap_control.machine = self._make_swaps()
        finished = await self.swaps.resume()  # a swap a crash cut short: finished or undone
        if finished is not None:
            self._set_current(finished.to_dict())
        resumed = finished is not None or await self._resume()
        if not resumed:
            # The last run's address may still be on the data interface (it died without
            # releasing; the modem lost that context since): off before another bearer
            # comes up, or the router would send with an address the carrier drops.
            await asyncio.to_thread(self.wan.release)
            await self._use_seed()
        await vouch_network_time(self.modem, self.clock)  # issue 10: NITZ before billing or expiry checks
        self.cloud.set_network_available(True)
        await self.cloud.start()
        assert self.usage
        self.spawn(self.usage.run(lambda: (self.current or {}).get("iccid"), self.cfg.sample_interval_s,
                                  lambda: self.watchdog.mark()), "sample")
        self.spawn(self._report_loop(), "report")
        self.spawn(self._status_loop(), "status")
        renewal = cert_renewal.attach(self.cloud, self.cfg.cloud.cert, self.cfg.cloud.host, self.cfg.cloud.port)
        if renewal is not None:  # issue 13: certificate renewal over MQTT, once a day when due
            self.spawn(cert_renewal.run_periodically(renewal), "cert-renewal")
        self._start_health()
        self.healer = heal_wiring.healer_for(self)  # issue 9: self-healing (agent/core/heal.py)
        self.spawn(self.healer.run(), "heal")
        if (self.current or {}).get("seed"):
            await self.swap_control.swap("boot")
        self.spawn(self.swap_control.run(), "policy")
        self.spawn(self.updater.run(), "update")

    async def _shutdown(self) -> None:
        """Stop tasks, hand the cloud what is pending, then take the *last* sample.

        The final sample comes after the cloud session is closed (and the TCP close has
        settled), so the journal holds every byte this run moved, its own goodbye
        included: after SIGTERM the cloud's total plus the journal's pending records
        equal the carrier's count exactly (tests/lab). Every step is bounded so the whole
        fits ``STOP_BUDGET_S`` whatever phase the daemon was in.
        """
        for task in await cancel_and_wait(self._tasks, TASKS_CANCEL_S):
            LOGGER.warning("task %s did not end within %.1f s of its cancellation", task.get_name(), TASKS_CANCEL_S)
        if self.cloud:
            if self.meter and self.journal:
                with contextlib.suppress(AgentError, OSError):
                    await self._sample_once()
                    self.journal.flush("shutdown")
            if self.report_gate:
                self.report_gate.open_now("shutdown")
            self.cloud.kick()
            try:
                await asyncio.wait_for(self.cloud.stop(), CLOUD_STOP_S)
            except Exception as exc:  # noqa: BLE001 - a goodbye that fails must not stop the shutdown
                LOGGER.info("cloud link did not close cleanly: %r", exc)
            await asyncio.sleep(SHUTDOWN_SETTLE)
        if self.meter and self.journal:
            with contextlib.suppress(AgentError, OSError):
                await self._sample_once()
            with contextlib.suppress(AgentError):
                self.journal.flush("shutdown")
            if self.usage:
                self.usage.save_used()
        if self.consoled:  # console (issue 12)
            await self.consoled.stop()
        if self.modem:
            self._keep_cards()
            with contextlib.suppress(Exception):
                await self.modem.close()
        if self.journal:
            self.journal.close()
        if self.usage:
            self.usage.commit_allowance()
        if not self.give_up.failed:  # issue 9: a failure stays in the status file
            try:
                self.status.update(state="stopped")
            except OSError as exc:  # a report only: the stop itself went well
                LOGGER.warning("could not record the stop in the status file: %s", exc)
        if self._stop_asked is not None:  # the stop contract's figure, for a field log
            LOGGER.info("shut down %.2f s after the stop was asked for (budget %.0f s)",
                        time.monotonic() - self._stop_asked, STOP_BUDGET_S)

    # ---- usage ----------------------------------------------------------------------
    def _open_usage(self) -> None:
        self.usage = Metering.open(self.state_dir, self.clock, self.wan, flush_interval_s=self.cfg.flush_interval_s,
                                   heartbeat_s=self.cfg.heartbeat_s, tz_offset=self.cfg.tz_offset,
                                   header_bytes=self.profile.link_header_bytes)
        self.journal, self.meter = self.usage.journal, self.usage.meter

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
        assert self.usage
        await self.usage.sample((self.current or {}).get("iccid"))

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.report_interval_s)
            assert self.cloud and self.report_gate
            if self.report_gate.due():
                self.cloud.kick()

    def _keep_cards(self) -> None:
        """A remote-SIM board's SQN states to the encrypted card store after the cards
        accepted an AUTHENTICATE (agent/core/rsimboot.py); a failed write is logged and
        retried on the next pass (a card whose stored state is behind still accepts the
        carrier's next vector: docs/remote-sim.md)."""
        if self.modem is None or self.modem.remote is None:
            return
        try:
            self.modem.remote.sync()
        except (AgentError, OSError) as exc:
            LOGGER.error("remote SIM: SQN state not kept: %s", exc)

    async def _status_loop(self) -> None:
        while True:
            self._keep_cards()
            self.status.update(
                sim=self.current,
                cloud={"connected": bool(self.cloud and self.cloud.connected),
                       "usage_acks": self.cloud.stats.usage_acks if self.cloud else 0},
                update=self.updater.summary() if self.updater else None,
                health=self.health.summary() if self.health else None,
                allowance=self.allowance_report(),
            )
            await asyncio.sleep(STATUS_EVERY)

    # ---- SIMs and the data path -------------------------------------------------------
    def _make_cloud(self) -> CloudLink:
        config = CloudConfig.from_section(self.cfg.device_id, self.cfg.cloud)
        assert self.journal
        self.report_gate = ReportGate(self.journal, self.clock, ReportPolicy(
            min_interval_s=self.cfg.report_interval_s, heartbeat_s=self.cfg.heartbeat_s))
        return CloudLink(config, state_dir=self.state_dir / "cloud", clock=self.clock, sources=[self.report_gate])

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

    async def _use_seed(self, timeout: float = REGISTRATION_TIMEOUT) -> None:
        """Attach on the bootstrap SIM: enough to reach the cloud. If the seed is already
        active with its data context up (an assignment failed before the switch), keep it."""
        assert self.modem
        slot, _ = await self.modem.active_profile()
        if slot != self.profile.seed_slot:
            await self.modem.select_slot(self.profile.seed_slot)
        await self.modem.set_radio(True)
        await self._wait_registered(timeout)
        iccid = await self.modem.iccid()
        imsi = await self.modem.imsi()
        self.seed_plmn = (await ModemRadio(self.modem).read()).network.plmn or self.seed_plmn
        facts = {"slot": self.profile.seed_slot, "iccid": iccid, "imsi": imsi, "seed": True,
                 "plan": None, "assignment_id": None, "plmn": self.seed_plmn or ""}
        if not await self._context_up():
            await self._bring_up_data("", facts)
        else:
            await self._route(await self.modem.context_params(DATA_CID), facts)
        self._set_current(facts)

    async def _context_up(self) -> bool:
        assert self.modem
        states = await self.modem.context_states()
        return any(s.cid == DATA_CID and s.active for s in states)

    async def _wait_registered(self, timeout: float = REGISTRATION_TIMEOUT) -> None:
        assert self.modem
        deadline = self.clock.monotonic() + timeout
        while True:
            reg = await self.modem.registration()
            if is_registered(reg):
                return
            if self.clock.monotonic() > deadline:
                raise ModemError(f"not registered after {timeout:.0f} s (stat {reg.stat}, "
                                 f"reject cause {reg.reject_cause})")
            await asyncio.sleep(REGISTRATION_POLL)

    async def _bring_up_data(self, apn: str, facts: dict[str, Any] | None = None) -> None:
        assert self.modem
        if facts is not None:  # meter first, bearer second (agent/core/swap.py, ``_data``)
            await self._sample_once()
            assert self.usage
            self.usage.bill_to(facts)
        await self.modem.define_context(DATA_CID, apn)
        await self.modem.activate_context(DATA_CID)
        params = await self.modem.context_params(DATA_CID)
        if params is None or not params.address:
            raise ModemError("data context is up but the modem reports no address")
        await self._route(params)

    async def _route(self, params: Any, facts: dict[str, Any] | None = None) -> None:
        """Move the data interface onto ``params``. With ``facts`` (a SIM switch), the bytes
        up to this instant are sampled for the old SIM and the meter switches to the new
        one in the same step, so no byte is billed to the wrong SIM."""
        if facts is not None:
            await self._sample_once()
            assert self.usage
            self.usage.bill_to(facts)
        await asyncio.to_thread(self.wan.apply, params)
        if self.cfg.resolv_file and params.dns:
            write_resolv(self.cfg.resolv_file, list(params.dns))

    def _set_current(self, facts: dict[str, Any]) -> None:
        assert self.usage
        if (self.current or {}).get("iccid") != facts.get("iccid"):
            self.swap_control.sim_changed()
        self.usage.now_current(facts.get("iccid"))  # another SIM counts from zero; a resumed one goes on
        self.current = facts
        self.usage.bill_to(facts)
        if self.usage.allowance is not None:
            self.usage.allowance.on_sim(facts)
        store.atomic_write_json(self._current_file(), facts)
        self.status.update(sim=facts, allowance=self.allowance_report())  # never the old SIM's rows
        if self.health is not None:
            self.health.on_sim_change(facts)

    # ---- swaps --------------------------------------------------------------------------
    def _make_swaps(self) -> SwapMachine:
        assert self.modem and self.cloud
        cloud, control = self.cloud, self.swap_control
        hooks = Hooks(
            request=self._request_sim,
            account=self._account,
            route=self._route_only,
            verify=self._reachable,
            unroute=self._unroute,
            cloud_pause=lambda up: cloud.set_network_available(up, own=True),
            report=self.emit,
            result=cloud.report_assignment_result,
        )
        return SwapMachine(self.modem, hooks, self.state_dir / "swap.json", slots=tuple(self.profile.vsim_slots),
                           clock=self.clock, attach_timeout_s=control.policy.attach_timeout_s,
                           history_file=self.state_dir / SWAP_HISTORY_FILE)

    async def _request_sim(self, reason: str, iccid: str | None) -> Any:
        """The swap's request: the cloud is asked for a SIM, on another carrier during an
        escape (``avoid_plmns``); an answer on the carrier being escaped is refused, with
        an ``error`` event, and the swap fails into its back-off (issue 23)."""
        assert self.cloud
        control = self.swap_control
        avoid = control.escape.avoid
        assignment = await self.cloud.request_assignment(
            reason, current_iccid=control.refused_iccid or iccid, evidence=control.request_evidence(),
            timeout=ASSIGNMENT_TIMEOUT, avoid_plmns=avoid or None)
        plmn = getattr(assignment.profile, "plmn", "")
        if esc.wrong_carrier(plmn, avoid):
            detail = f"assignment {assignment.assignment_id} is on carrier {plmn}, the one being escaped"
            LOGGER.error("refusing %s", detail)
            await self.cloud.report_assignment_result(assignment.assignment_id, False, f"wrong_carrier: {plmn}")
            await self.emit("error", {"reason": "wrong_carrier", "topic": None,
                                      "assignment_id": assignment.assignment_id, "detail": detail})
            raise AssignmentUnavailable(f"cloud assigned a SIM of the failing carrier {plmn}", reason="refused")
        return assignment

    async def _account(self, facts: SimFacts) -> None:
        """The old SIM's bytes up to this instant, durable; then the new SIM is metered."""
        assert self.journal
        await self._sample_once()
        self.journal.flush("switch")
        assert self.usage
        if (self.current or {}).get("seed") and self.swap_control.escape.active:
            # The agent's own bytes (echoes, the cloud session) this escape spent on the
            # seed SIM, against the day's budget (escape.py). Not the seed's whole count:
            # the LAN's traffic rides the seed SIM too while the router is on it.
            self.swap_control.escape.budget.record(self.clock.monotonic(), self.own_bytes() - self._escape_own_mark)
        self.usage.commit_allowance()
        if self.report_gate:  # the old SIM's final usage goes up as soon as the link is back
            self.report_gate.open_now("switch")
        self._set_current(facts.to_dict())

    async def _unroute(self) -> None:
        """Before the bearer goes: the paused cloud session says goodbye on it, then address
        and route come off the data interface (agent/core/swap.py, ``switch``)."""
        assert self.cloud
        await self.cloud.quiesce()
        await asyncio.to_thread(self.wan.release)

    async def _route_only(self, params: Any) -> None:
        await asyncio.to_thread(self.wan.apply, params)
        if self.cfg.resolv_file and params.dns:
            write_resolv(self.cfg.resolv_file, list(params.dns))

    async def _reachable(self) -> bool:
        """Real reachability over the new bearer: the reflector answers (or, without one,
        the broker takes us back)."""
        assert self.cloud
        if self.cfg.reflector:
            return await asyncio.to_thread(udp_echo, *self.cfg.reflector)
        return await self.cloud.wait_connected(10.0)

    async def request_swap(self, reason: str) -> dict[str, Any]:
        """Swap now (technician console, tests); returns the swap's result record."""
        await self.swap_control.swap(reason)
        return self.swaps.history[-1] if self.swaps and self.swaps.history else {}

    @property
    def swapping(self) -> bool:
        """A swap is in progress: the link is down on purpose, not an outage."""
        return self.swap_control.swapping

    async def reset_modem(self, reason: str) -> dict[str, Any]:
        """Reboot the baseband on request (the technician console's ``modem-reset``) and let
        the healer bring registration and data back, as after any modem reboot."""
        assert self.modem
        LOGGER.warning("modem reset requested (%s)", reason)
        async with self.swap_control.lock:  # never in the middle of a swap
            await self.modem.reset(wait=True)
        if self.healer is not None:
            self.healer.wake(f"modem reset ({reason})")
        return {"reset": True, "reason": reason}

    async def swap_from_refused_sim(self, cause: str) -> None:
        """The network refuses the SIM in use (issue 9's healer saw a permanent EMM cause):
        fall back to the seed SIM to reach the cloud, then swap from there, naming the
        refused SIM so the cloud picks another."""
        if self.swapping:  # a decision taken during our own swap is stale: the machine rolls back
            return
        refused = dict(self.current or {})
        if refused.get("seed") and self.swap_control.escape.active:
            # On the seed SIM in an escape: the swap policy asks again, with the platform's
            # back-off and within the escape's byte budget; a second loop here would not.
            return
        LOGGER.warning("SIM %s refused by the network (%s): swapping over the seed SIM", refused.get("iccid"), cause)
        if not refused.get("seed"):
            await asyncio.to_thread(self.wan.release)  # nothing leaves with the refused SIM's address
            assert self.cloud
            self.cloud.set_network_available(False, own=True)
            await self._use_seed()
            self.cloud.set_network_available(True)
        self.swap_control.refused_iccid = refused.get("iccid")
        try:
            await self.swap_control.swap("auth_failed")
        finally:
            self.swap_control.refused_iccid = None

    async def escape_carrier(self) -> bool:
        """The SIM's carrier has carried nothing for the policy's ``escape_after_s``: reach
        the cloud over the seed SIM and swap to a SIM of another carrier (issue 23;
        agent/core/escape.py has the rules). True if it is serving on another carrier.

        When the seed SIM is on the failing carrier too, the router stays where it is, says
        so, and tries again after a growing delay; when the seed does not register, the old
        SIM is selected again (its carrier may come back first) with the same delay. A
        cloud that answers with nothing leaves the router on the seed SIM, where the swap
        policy asks again with its back-off, within the day's seed-SIM byte budget."""
        if self.swapping or self.modem is None or self.cloud is None:
            return False
        control = self.swap_control
        old = dict(self.current or {})
        if old.get("seed"):
            return False
        event = control.last_health or {}
        failing = old.get("plmn") or event.get("plmn")
        evidence = {"cause": (event.get("evidence") or {}).get("cause"), "cell": event.get("cell"),
                    "since": event.get("since")}
        control.escape.begin(failing, {k: v for k, v in evidence.items() if v is not None})
        now = self.clock.monotonic()
        if not esc.seed_can_help(self.seed_plmn, failing, control.escape.failures):
            delay = control.escape.could_not(now, control.policy)
            LOGGER.warning("carrier %s carries nothing (%s) and the seed SIM is on it too: staying on %s, "
                           "next try in %.0f s", failing, evidence["cause"], old.get("iccid"), delay)
            self.status.update(escape={"failing_plmn": failing, "state": "seed_on_same_carrier", "retry_in_s": delay})
            return False
        LOGGER.warning("carrier %s has carried nothing (%s): escaping over the seed SIM", failing, evidence["cause"])
        self._escape_own_mark = self.own_bytes()
        self.status.update(escape={"failing_plmn": failing, "state": "escaping"})
        async with control.lock:  # the healer and the health monitor pause: the link goes down on purpose
            await asyncio.to_thread(self.wan.release)
            # Not our own pause: a carrier's failure strikes every router on it at once, so
            # their escapes come back together and reconnect inside the fleet's resume
            # window (pacing ``resume_window_s``), not all in the same second.
            self.cloud.set_network_available(False)
            try:
                await self._use_seed(SEED_ESCAPE_REGISTRATION_S)
            except (AgentError, OSError) as exc:  # the modem, or the data interface (NetError)
                delay = control.escape.could_not(self.clock.monotonic(), control.policy)
                LOGGER.warning("escape from %s: the seed SIM does not get through either (%s): back to %s, "
                               "next try in %.0f s", failing, exc, old.get("iccid"), delay)
                self.status.update(escape={"failing_plmn": failing, "state": "seed_down", "retry_in_s": delay})
                await self._back_to(old)
                return False
            self.cloud.set_network_available(True)
        control.refused_iccid = old.get("iccid")
        try:
            ok = await control.swap("no_service")
        finally:
            control.refused_iccid = None
        self.status.update(escape={"failing_plmn": failing, "state": "escaped" if ok else "on_seed"})
        return ok

    def own_bytes(self) -> int:
        """The agent's own bytes counted so far today, every source (agent/usage/own.py)."""
        own = getattr(self.health, "own", None)
        if own is None:
            return 0
        return sum(own.days.get(own.today(), {}).values())

    async def _back_to(self, facts: dict[str, Any]) -> None:
        """Select a SIM still loaded in its slot again after an escape that could not
        happen; the healer brings registration and data back when its carrier returns."""
        assert self.modem
        try:
            await self.modem.select_slot(int(facts["slot"]))
            await self.modem.set_radio(True)
        except ModemError as exc:
            LOGGER.warning("could not select slot %s again: %s", facts.get("slot"), exc)
        self._set_current(facts)
        if self.healer is not None:
            self.healer.wake("escape_returned")

    def swap_history(self) -> list[dict[str, Any]]:
        return list(self.swaps.history) if self.swaps else []

    async def emit(self, kind: str, data: dict[str, Any]) -> None:
        """An event upstream; a body that breaks the contract is our bug: logged, not sent."""
        if self.cloud is None:
            return
        try:
            await self.cloud.emit(kind, data)
        except ProtocolError as exc:
            LOGGER.error("not sending a %s event that breaks the contract: %s", kind, exc)

    async def recover_modem(self, cause: BaseException) -> None:
        """A modem that stopped answering climbs the recovery ladder (retry, reopen, radio
        off/on, power-cycle); if even that fails the daemon stops so its service manager
        restarts it, rather than hang."""
        assert self.ladder
        try:
            step = await (self.healer.modem_trouble(cause) if self.healer else self.ladder.recover(cause))  # issue 9
        except RecoveryFailed as exc:
            LOGGER.error("modem did not recover: %s", exc)
            self.fail(ExitCode.MODEM_LOST, f"modem: {exc}")
            return
        self.status.update(modem_recovery=self.ladder.counters())
        await self.emit("health", status_event(
            "modem_recovered", sim=self.current, network=self.health.network if self.health else None,
            wall=self.clock.wall(), clock_trusted=self.clock.wall_trusted(), tz=parse_tz(self.cfg.tz_offset),
            evidence={"step": step, "cause": type(cause).__name__, "ladder": self.ladder.counters()}))

    def _on_command(self, command: Any) -> None:
        """Cloud orders: ``report`` drains the usage journal now; ``swap`` is scheduled inside
        its window and ``set_policy`` changes the limits (agent/core/swap_control.py)."""
        if command.action == "report":
            self.spawn(self._report_now(), f"report-{command.command_id}")
        elif command.action == "swap":
            self.swap_control.order(command.command_id, command.not_before, command.not_after)
        elif command.action == "set_policy" and command.policy is not None:
            self.swap_control.on_policy(command.policy)
        elif command.action == "plan_update" and command.plan_update is not None:
            self._plan_update(command)
        elif command.action == "update" and self.updater is not None:  # issue 26: a release offered
            self.updater.offer(command.command_id, command.manifest)

    def _plan_update(self, command: Any) -> None:
        """A checked plan update (agent/plans/update.py) for the SIM in use; one for another
        SIM, an old version or more add-ons than the contract allows is refused whole and
        reported as an ``error`` event naming the field."""
        assert self.usage and self.usage.allowance
        try:
            outcome = self.usage.allowance.apply(command.plan_update, self.current)
        except PlanError as exc:
            LOGGER.warning("plan update %s refused (%s): %s", command.command_id, exc.reason, exc)
            self.spawn(self.emit("error", {"reason": exc.reason, "topic": None, "detail": str(exc)[:300]}),
                       f"plan-update-error-{command.command_id}")
            return
        LOGGER.info("plan update %s: %s", command.command_id, outcome)
        self.status.update(allowance=self.usage.allowance.report(self.current))

    async def _report_now(self) -> None:
        assert self.journal and self.cloud
        await self._sample_once()
        self.journal.flush("request")
        if self.report_gate:
            self.report_gate.open_now("request")
        self.cloud.kick()

    # ---- health ---------------------------------------------------------------------
    def _start_health(self) -> None:
        """Link-health classification (agent/core/health.py), with explicit inputs."""
        assert self.modem and self.cloud and self.meter
        settings = HealthSettings(
            wan=self.profile.data_interface, lan=getattr(self.profile, "lan_interface", None) or None,
            state_dir=self.state_dir, reflector=self.cfg.reflector, probe=self.cfg.probe,
            broker=(self.cfg.cloud.host, self.cfg.cloud.port), sample_interval_s=self.cfg.sample_interval_s,
            radio_interval_s=self.cfg.radio_interval_s, record_trace=self.cfg.record_trace,
            tz=parse_tz(self.cfg.tz_offset))
        meter = self.meter
        self.health = HealthMonitor(settings, radio=ModemRadio(self.modem), active_sim=lambda: self.current,
                                    emit=self.emit, clock=self.clock, recover=self.recover_modem,
                                    on_network=lambda net: meter.set_serving_mcc(net.mcc),  # billing regions
                                    paused=lambda: self.swapping, on_decision=self.swap_control.on_health,
                                    allowance=self.usage.allowance if self.usage else None)
        self.spawn(self.health.run(), "health")

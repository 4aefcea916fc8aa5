"""Self-healing: the data path comes back by itself, at the least disruptive step that works.

Routers in bags, cars and mountain huts have nobody to reboot them (domain.md). After a
fault the ``Healer`` brings the router back to serving with the cheapest step that
works, climbing only when the cheaper one did not:

1. **re-activate the data context** (``+CGACT``: one ESM round trip, under a second):
   after the network deactivated it (``+CGEV: NW PDN DEACT``), after a re-attach, after a
   modem reboot;
2. **wait for the modem to re-attach by itself** (it does, after a cell outage), then
   **re-attach** (radio off/on) if it stays unregistered without a reject;
3. **re-open the port** and the rest of the recovery ladder (agent/modem/recovery.py)
   when the modem stops answering; a port that vanished is re-opened through the board
   profile's *stable* path (a udev ``/dev/serial/by-id`` link, the lab's ``modem.pty``),
   so a modem that re-enumerated under a new name is found again;
4. **ask for another SIM** (``request_swap``) when the network refuses the SIM itself
   (an EMM cause that no retry can cure, such as #3 "illegal UE": its keys fail
   authentication);
5. give up with an honest exit code (``MODEM_LOST``) only when the modem is gone for
   good, so the service manager restarts the daemon.

It is level-triggered: URCs (``+CGEV``, ``+CEREG``, ``RDY``) and kernel link events only
wake it; each pass reads the modem's actual state and acts on that, so a missed or
reordered URC cannot leave the router offline, and a periodic pass catches what no event
announced. Every wait is bounded; every retry is jittered (full jitter) and limited
(3GPP's attach back-off punishes hammering: TS 24.301 §5.5.1.2.6).

Each interval without service goes to the outage log with its cause (registration reject
with the EMM cause, data context deactivated or rejected with the ESM cause from
``+CEER``, no signal, modem unresponsive, broker unreachable) and is handed to the cloud
when the link returns.

Inputs are explicit (the modem driver, the ladder, the WAN link, the outage log, and
async callbacks into the supervisor), so the swap state machine can re-wire it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent.clock import Clock
from agent.cloud.backoff import Backoff
from agent.core import exitcodes
from agent.errors import (
    AgentError,
    AtCommandError,
    AtTimeout,
    ModemError,
    NetError,
    ParseError,
    PortClosed,
)
from agent.health.outage import OutageLog
from agent.modem import parse
from agent.modem.recovery import RecoveryFailed

LOGGER = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0
"""Seconds between passes when nothing wakes the healer: two AT queries (registration and
context state) every 2 s are a few hundred bytes on the AT port, and bound how late a
fault no URC announced is noticed."""
WAKE_DEBOUNCE = 0.05
"""After a wake-up, gather the burst of URCs that usually come together (a detach brings
+CEREG and +CGEV lines within milliseconds) into one pass."""
PING_TIMEOUT = 2.0
"""An ``AT`` probe needs no network: 2 s is generous even for a loaded baseband."""
BUSY_CODES = frozenset({14, 515})
"""+CME ERROR 14 "SIM busy" / 515 "init in progress": the modem is alive, only busy."""

REACTIVATE_BACKOFF = (0.5, 30.0)
"""Full-jitter back-off between context activations (base, cap): the first retry within
half a second, then no faster than 24.301's T3396-style throttling tolerates; a network
that keeps rejecting is asked at most every 30 s."""
REATTACH_AFTER = 30.0
"""Seconds unregistered (searching, no reject) before the radio is cycled: a modem finds
a returning cell by itself within a few seconds; 30 s of searching means it is stuck."""
REATTACH_BACKOFF = (60.0, 720.0)
"""Radio cycles back off from 1 min to 12 min (24.301 T3402's default): cycling faster
only earns the network's attach back-off."""
SWAP_BACKOFF = (5.0, 600.0)
"""Swap requests after a refused SIM back off from 5 s to 10 min."""
PORT_RETURN_TIMEOUT = 30.0
"""After the ladder failed, seconds to keep re-opening the stable port path: a USB modem
that crashed re-enumerates in 10-20 s (EC25), a hub reset takes a few more."""
PORT_RETRY = (0.5, 4.0)
"""Back-off (base, cap) between re-open attempts while waiting for the port."""
BROKER_GRACE = 15.0
"""Seconds without a broker session (data path up) before it counts as an outage: a
reconnect after a drop waits up to 10 s on purpose (agent/cloud/backoff.py)."""
NO_SIGNAL_RSRP = -125.0
"""Below this RSRP (dBm) there is no usable cell: an unregistered modem has "no signal"."""

PERMANENT_EMM = frozenset({3, 6, 7, 8})
"""EMM causes that condemn the SIM, not the moment (TS 24.301 §5.5.1.2.5): #3 illegal UE
(authentication failed), #6 illegal ME, #7 EPS services not allowed, #8 EPS and non-EPS
services not allowed. Retrying the same SIM cannot help: the swap machinery must."""
HEALER_CAUSES = ("registration_rejected", "no_signal", "not_registered", "modem_rebooted")
"""Causes the healer writes for ``no_service``; anything else came from the classifier."""
CLASSIFIER_ONLY_CAUSES = ("blackhole",)
"""``no_service`` causes only the traffic classifier sees (registered, the bearer up,
nothing answering): the healer neither names nor ends them."""
NETWORK_EVENTS = frozenset({"nw_pdn_deact", "nw_deact_pdp", "nw_detach", "reject"})
"""+CGEV events by which the network took the data context away (27.007 §10.1.19)."""
MODEM_EVENTS = frozenset({"me_pdn_deact", "me_deact_pdp", "me_detach"})
"""+CGEV events by which the modem dropped it (usually the consequence of a detach)."""
CAUSE_RE = re.compile(r"(EMM|ESM)\D{0,12}?(\d{1,3})", re.IGNORECASE)
"""Pulls "EMM cause #15" / "ESM cause: 33" out of a vendor's +CEER text."""


@dataclass
class HealCounters:
    """What the healer did; the status file and health reports carry it."""

    passes: int = 0
    reactivations: int = 0
    reactivation_failures: int = 0
    reattaches: int = 0
    swaps: int = 0
    port_waits: int = 0
    last_step: str | None = None
    last_cause: str | None = None
    events: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self), events=dict(self.events))


@dataclass
class _Retry:
    """One bounded, jittered retry schedule (a step is not tried before ``not_before``)."""

    backoff: Backoff
    not_before: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.not_before

    def failed(self, now: float) -> None:
        self.not_before = now + self.backoff.next_delay()

    def reset(self) -> None:
        self.backoff.reset()
        self.not_before = 0.0


class Healer:
    """One per daemon; ``run()`` is one of the supervisor's tasks."""

    def __init__(
        self,
        modem: Any,
        ladder: Any,
        wan: Any,
        *,
        outages: OutageLog,
        clock: Clock,
        reactivate_data: Callable[[], Awaitable[None]],
        reattach: Callable[[], Awaitable[None]],
        release_data: Callable[[], Awaitable[None]],
        request_swap: Callable[[str], Awaitable[None]],
        give_up: Callable[[int, str], None],
        report_outages: Callable[[list[dict[str, Any]]], Awaitable[None]],
        on_seed: Callable[[], bool] = lambda: False,
        cloud_connected: Callable[[], bool] = lambda: True,
        network_available: Callable[[bool], None] = lambda up: None,
        on_change: Callable[[dict[str, Any]], None] = lambda summary: None,
        paused: Callable[[], bool] = lambda: False,
        rng: random.Random | None = None,
        check_interval: float = CHECK_INTERVAL,
        port_return_timeout: float = PORT_RETURN_TIMEOUT,
        data_cid: int = 1,
    ):
        self.modem = modem
        self.ladder = ladder
        self.wan = wan
        self.outages = outages
        self.clock = clock
        self._reactivate = reactivate_data
        self._reattach = reattach
        self._release_data = release_data
        self._request_swap = request_swap
        self._paused = paused
        """True while the supervisor's own swap has the modem: registration and data are
        down on purpose then, and the swap machine owns the recovery (it rolls back)."""
        self._give_up = give_up
        self._report = report_outages
        self._on_seed = on_seed
        self._cloud_connected = cloud_connected
        self._network_available = network_available
        self._on_change = on_change
        self.rng = rng or random.Random()
        self.check_interval = check_interval
        self.port_return_timeout = port_return_timeout
        self.data_cid = data_cid
        self.stats = HealCounters()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reactivation = _Retry(Backoff(*REACTIVATE_BACKOFF, rng=self.rng))
        self._radio = _Retry(Backoff(*REATTACH_BACKOFF, rng=self.rng))
        self._swap = _Retry(Backoff(*SWAP_BACKOFF, rng=self.rng))
        self._unregistered_since: float | None = None
        self._broker_lost_since: float | None = None
        self._pdn_event: str | None = None
        """The last +CGEV that took the data context down (its cause, until it is back)."""
        self._data_up = True
        self._rebooted = False
        self.gave_up = False
        modem.subscribe("+CGEV:", self._on_cgev)
        modem.subscribe("+CEREG:", self._on_wake_urc)
        modem.subscribe("+CGREG:", self._on_wake_urc)
        modem.subscribe("RDY", self._on_ready)

    # ---- events: they only wake the loop ---------------------------------------------
    def wake(self, why: str) -> None:
        self.stats.events[why] = self.stats.events.get(why, 0) + 1
        self._wake.set()

    def _on_wake_urc(self, line: str) -> None:
        self.wake(line.split(":", 1)[0].lstrip("+").lower())

    def _on_ready(self, line: str) -> None:
        self._rebooted = True  # the cause of what follows: contexts and registration are gone
        self.wake("rdy")

    def _on_cgev(self, line: str) -> None:
        try:
            event = parse.parse_cgev(line)
        except ParseError as exc:
            LOGGER.warning("unreadable +CGEV %r: %s", line, exc)
            return
        network_said = event.event in NETWORK_EVENTS
        if network_said or (event.event in MODEM_EVENTS and self._pdn_event is None):
            # The network's word beats the modem's (a detach's ME PDN DEACT follows it).
            self._pdn_event = f"{event.event} (+CGEV: {line.split(':', 1)[1].strip()})"
        self.wake("cgev")

    async def watch_link(self) -> None:
        """Kernel link events of the data interface (carrier lost, interface gone)."""
        try:
            async for event in self.wan.events():
                LOGGER.info("%s: link %s", event.ifname, event.kind)
                self.wake(f"link_{event.kind}")
        except NetError as exc:  # no netlink (unit tests, odd kernels): the periodic pass covers it
            LOGGER.warning("link events unavailable: %s", exc)

    # ---- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Pass after pass until cancelled; one pass never raises."""
        watcher = asyncio.get_running_loop().create_task(self.watch_link(), name="heal-link")
        try:
            while not self.gave_up:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_pass_in())
                if self._wake.is_set():
                    await asyncio.sleep(WAKE_DEBOUNCE)
                self._wake.clear()
                if self._paused():
                    continue
                await self.check()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    def _next_pass_in(self) -> float:
        """Until the next pass: the check interval, or sooner when a retry falls due."""
        wait = self.check_interval
        if not self._data_up:
            due = self._reactivation.not_before - self.clock.monotonic()
            wait = min(wait, max(WAKE_DEBOUNCE, due))
        return wait

    async def check(self) -> str:
        """One pass: find the first thing broken and take the cheapest step on it.
        Returns what it found ("ok", "modem", "registration", "data", "gave_up")."""
        async with self._lock:
            self.stats.passes += 1
            try:
                try:
                    found = await self._pass()
                except (AtTimeout, PortClosed) as exc:  # silent mid-pass: the same as a failed ping
                    await self.modem_trouble(exc)
                    found = "modem"
            except RecoveryFailed as exc:
                found = await self._modem_lost(exc)
            except AgentError as exc:  # one failed pass is retried at the next one
                LOGGER.warning("heal pass failed: %s: %s", type(exc).__name__, exc)
                found = "error"
            self._on_change(self.summary())
            return found

    async def _pass(self) -> str:
        if not await self._modem_answers():
            return "modem"
        reg = await self.modem.registration()
        if not reg.registered:
            await self._unregistered(reg)
            return "registration"
        self._registered()
        if not await self._data_active():
            await self._data_down()
            return "data"
        await self._data_ok()
        await self._broker()
        if self._on_seed() and self._swap.due(self.clock.monotonic()):
            await self._swap_sim("on the bootstrap SIM after a failed swap")
        return "ok"

    # ---- step: the modem answers ------------------------------------------------------
    async def _modem_answers(self) -> bool:
        try:
            await self.modem.ping(timeout=PING_TIMEOUT)
        except AtCommandError as exc:
            if exc.code in BUSY_CODES:
                LOGGER.info("modem busy (+CME ERROR %s): next pass", exc.code)
                return False
            raise
        except ModemError as exc:  # AtTimeout, PortClosed
            await self.modem_trouble(exc)
            return False
        return True

    async def modem_trouble(self, cause: BaseException) -> str:
        """The modem stopped answering: climb the ladder, then wait for a vanished port
        to come back through the stable path; give up only after that."""
        self._outage_start("modem_unresponsive", f"modem_unresponsive: {type(cause).__name__}: {cause}")
        try:
            step = await self.ladder.recover(cause)
        except RecoveryFailed as exc:
            if not await self._wait_for_port():
                raise RecoveryFailed(f"{exc}; port did not return within {self.port_return_timeout:.0f} s") from exc
            step = "port_return"
        self.stats.last_step = step
        LOGGER.warning("modem answers again (step %s)", step)
        self.outages.end("modem_unresponsive")
        self.wake("modem_back")
        return step

    async def _wait_for_port(self) -> bool:
        """Re-open the stable port path with jittered back-off until it answers (bounded)."""
        self.stats.port_waits += 1
        backoff = Backoff(*PORT_RETRY, rng=self.rng)
        deadline = self.clock.monotonic() + self.port_return_timeout
        while self.clock.monotonic() < deadline:
            await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - self.clock.monotonic())))
            try:
                await self.modem.reopen()
                await self.modem.ping(timeout=PING_TIMEOUT)
                return True
            except ModemError as exc:
                LOGGER.info("port %s not back yet: %s", getattr(self.modem, "port", "?"), exc)
        return False

    async def _modem_lost(self, exc: BaseException) -> str:
        self.gave_up = True
        self._give_up(exitcodes.MODEM_LOST, f"modem lost: {exc}")
        return "gave_up"

    # ---- step: registration -----------------------------------------------------------
    async def _unregistered(self, reg: parse.Registration) -> None:
        now = self.clock.monotonic()
        if self._unregistered_since is None:
            self._unregistered_since = now
        await self._data_lost()
        if reg.stat == 3:
            cause = reg.reject_cause if reg.reject_cause is not None else await self._ceer_cause("EMM")
            text = f"registration_rejected: EMM cause #{cause}" if cause is not None else "registration_rejected"
            self._outage_start("no_service", text)
            self.outages.amend_cause("no_service", text)  # a reject says more than "searching" did
            if cause in PERMANENT_EMM and not self._on_seed() and self._swap.due(now):
                await self._swap_sim(text)
            return
        why = "modem_rebooted (RDY)" if self._rebooted else await self._no_service_cause()
        self._outage_start("no_service", why)
        opened = self.outages.open_interval("no_service") or {}
        if not str(opened.get("cause", "")).startswith(HEALER_CAUSES):
            # Opened by the traffic classifier, which cannot see why: the modem can.
            self.outages.amend_cause("no_service", why)
        if now - self._unregistered_since >= REATTACH_AFTER and self._radio.due(now):
            self._radio.failed(now)  # schedule the next cycle however this one goes
            self.stats.reattaches += 1
            self.stats.last_step = "reattach"
            LOGGER.warning("unregistered for %.0f s: re-attaching (radio off/on)", now - self._unregistered_since)
            await self._reattach()

    async def _no_service_cause(self) -> str:
        try:
            sig = await self.modem.signal()
        except AgentError:
            return "not_registered"
        if sig.rsrp_dbm is None or sig.rsrp_dbm < NO_SIGNAL_RSRP:
            return "no_signal"
        return "not_registered: searching"

    async def _swap_sim(self, why: str) -> None:
        now = self.clock.monotonic()
        self._swap.failed(now)  # paced whether it works or not; reset once serving
        self.stats.swaps += 1
        self.stats.last_step = "swap"
        LOGGER.warning("the network refuses this SIM (%s): asking for another", why)
        try:
            await self._request_swap(f"sim_refused: {why}")
        except AgentError as exc:
            LOGGER.warning("swap did not complete: %s (next try in %.0f s)", exc,
                           self._swap.not_before - self.clock.monotonic())

    def _registered(self) -> None:
        if self._unregistered_since is not None:
            LOGGER.info("registered again after %.1f s", self.clock.monotonic() - self._unregistered_since)
        self._unregistered_since = None
        self._radio.reset()
        self._end_no_service()

    def _end_no_service(self) -> None:
        """Registered (and the context up): the outage the modem can see is over. Not a
        black hole's: the modem reports all well through one, and only the traffic
        classifier, which saw nothing answer, can tell when it ends (issue 23)."""
        opened = self.outages.open_interval("no_service") or {}
        if str(opened.get("cause", "")).startswith(CLASSIFIER_ONLY_CAUSES):
            return
        self.outages.end("no_service")

    # ---- step: the data context -------------------------------------------------------
    async def _data_active(self) -> bool:
        states = await self.modem.context_states()
        return any(s.cid == self.data_cid and s.active for s in states)

    async def _data_down(self) -> None:
        await self._data_lost()
        if self._rebooted:
            # The modem restarted (RDY): registration and every context went with it. A pass
            # can see the context gone before the registration is (seen on a loaded machine),
            # and the outage is still the reboot's, not a context the network took away.
            self._outage_start("no_service", "modem_rebooted (RDY)")
        now = self.clock.monotonic()
        network_said = self._pdn_event is not None and not self._pdn_event.startswith("me_")
        if network_said:
            self._outage_start("no_data", f"pdn_deactivated: {self._pdn_event}")
        if not self._reactivation.due(now):
            return
        self.stats.reactivations += 1
        self.stats.last_step = "reactivate"
        try:
            await self._reactivate()
        except AtCommandError as exc:
            self.stats.reactivation_failures += 1
            self._reactivation.failed(self.clock.monotonic())
            cause = await self._ceer_cause("ESM")
            text = f"pdn_rejected: ESM cause #{cause}" if cause is not None else f"pdn_rejected: {exc}"
            self._outage_start("no_data", text)
            self.outages.amend_cause("no_data", text)  # a deactivation, then refused: the refusal is why it lasts
            LOGGER.warning("data context refused (%s); next try in %.1f s", text,
                           self._reactivation.not_before - self.clock.monotonic())
            return
        except (ModemError, NetError) as exc:
            self.stats.reactivation_failures += 1
            self._reactivation.failed(self.clock.monotonic())
            LOGGER.warning("re-activation failed: %s", exc)
            return
        LOGGER.info("data context re-activated")
        await self._data_ok()

    async def _data_lost(self) -> None:
        """The bearer is gone: take its address and route off the data interface, so
        nothing leaves with an address the carrier no longer admits (it would be counted
        as sent and never billed), and the LAN learns at once that there is no route."""
        self._broker_lost_since = None  # no data path: not the broker's fault
        if self._data_up:
            self._data_up = False
            self._network_available(False)
            try:
                await self._release_data()
            except AgentError as exc:
                LOGGER.warning("could not release the data interface: %s", exc)

    async def _data_ok(self) -> None:
        self._reactivation.reset()
        if not self._on_seed():
            self._swap.reset()
        self._pdn_event = None
        self._rebooted = False
        if not self._data_up:
            self._data_up = True
            self._network_available(True)
        self.outages.end("no_data")
        self._end_no_service()
        self.outages.end("modem_unresponsive")

    # ---- the broker --------------------------------------------------------------------
    async def _broker(self) -> None:
        now = self.clock.monotonic()
        if self._cloud_connected():
            self._broker_lost_since = None
            self.outages.end("broker_unreachable")
            pending = self.outages.unreported()
            if pending:
                await self._report(pending)
            return
        if self._broker_lost_since is None:
            self._broker_lost_since = now
        elif now - self._broker_lost_since >= BROKER_GRACE:
            self._outage_start("broker_unreachable", "broker_unreachable", ago=now - self._broker_lost_since)

    # ---- helpers -------------------------------------------------------------------------
    def _outage_start(self, kind: str, cause: str, ago: float = 0.0) -> None:
        self.stats.last_cause = cause
        self.outages.start(kind, cause, ago)

    async def _ceer_cause(self, family: str) -> int | None:
        """The EMM or ESM cause number in the modem's +CEER report, if it gives one."""
        try:
            resp = await self.modem.command("AT+CEER")
            text = parse.parse_ceer("\n".join(resp.lines)).reason
        except AgentError as exc:
            LOGGER.debug("no +CEER: %s", exc)
            return None
        for kind, number in CAUSE_RE.findall(text):
            if kind.upper() == family:
                return int(number)
        return None

    def summary(self) -> dict[str, Any]:
        return self.stats.as_dict() | {"data_up": self._data_up}

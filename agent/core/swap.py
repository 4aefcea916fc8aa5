"""The SIM's life as a state machine: one swap, staged like a safe update.

Phases, in order (each persisted through agent/store.py before it starts, so a SIGKILL or
a power cut in any phase resumes or rolls back cleanly on the next start):

``request``  ask the cloud for a SIM (skipped when one was prefetched while serving)
``stage``    load the sealed profile into the idle vSIM slot, still serving on the old one
``switch``   the break starts: pause the cloud link, take the route off the data interface
             (nothing is sent into a bearer that is going), select the slot, read the
             ICCID back (some modems answer OK to a switch they did not do)
``attach``   wait for registration: URC-driven, with a slow poll as the safety net
``data``     account the old SIM's last bytes and hand the meter to the new SIM (durably),
             *then* define and activate the data context, read its address: the old
             bearer went with the switch, so every byte the new one carries is the new
             SIM's, a late packet to an address the carrier hands out again included
``route``    move address and default route: the break ends here
``verify``   real reachability: the reflector answers or the broker takes us back
``commit``   the old SIM's final usage flushed, the result with every phase's duration
             upstream
``rollback`` (on failure after ``switch``) back to the old slot, which still holds the old
             profile: never leave the user with nothing when the old SIM still worked

The start-up path is the same machine: from the seed SIM, the first assignment is a swap
with reason ``boot``. No radio off/on anywhere: a slot switch is enough on every vSIM
modem we know, and a radio cycle costs seconds of cell search.

What is persisted is public (ICCID, IMSI, slot, plan, APN): a profile's Ki and OPc live
only in the modem and, for the few milliseconds of ``stage``, in memory. On a remote-SIM
modem the slots are the agent's own host-side cards (agent/modem/rsimslots.py): the keys
live in those cards, in this process, and never cross the AT line; the phases are the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import store, testhooks
from agent.clock import JST, Clock
from agent.errors import AgentError, ModemError
from agent.modem.driver import Modem

LOGGER = logging.getLogger(__name__)

PHASES = ("request", "stage", "switch", "attach", "data", "route", "verify", "commit")
BREAK_PHASES = ("switch", "attach", "data", "route")
"""Phases during which the user has no data path."""
DATA_CID = 1
"""The PDP context for user data (cid 1 is every modem's default)."""
REGISTERED = (1, 5)
"""27.007 <stat>: 1 registered, home network; 5 registered, roaming. The one definition."""
DENIED = 3
REGISTRATION_POLL_S = 1.0
"""Safety-net poll while waiting for the registration URC (some firmware drops URCs
while busy); the URC normally wakes the wait within milliseconds."""
VERIFY_TIMEOUT_S = 5.0
"""Bound on the post-switch reachability check: a working bearer answers an echo within
one RTT (tens of ms on LTE); 5 s allows a slow first packet through a cold NAT."""
HOLD_ENV = "POCKET_AGENT_SWAP_HOLD"
"""Lab fault hook, ``PHASE:SECONDS``: after a swap persists PHASE it waits SECONDS before
doing it, so a test can SIGKILL the agent inside any phase, however short it is
(docs/virtual-board.md). A test hook (agent/testhooks.py): a packaged build ignores it.
Unset: costs one dictionary look-up per phase."""
ROLLBACK_ATTACH_S = 60.0
"""Re-attaching to the old SIM's network: it worked a minute ago, so twice a normal
attach bound before we give up and let the healer take over."""


def hold_from_env() -> dict[str, float]:
    """The swap-hold test hook, if this build honours test hooks and it is set."""
    return _parse_hold(testhooks.get(HOLD_ENV) or "")


def _parse_hold(text: str) -> dict[str, float]:
    phase, _, seconds = text.partition(":")
    try:
        return {phase: float(seconds)} if phase in PHASES else {}
    except ValueError:
        return {}


def is_registered(reg: Any) -> bool:
    """The one definition of "registered" the agent uses."""
    return getattr(reg, "stat", None) in REGISTERED


@dataclass(frozen=True)
class SimFacts:
    """Public facts of a SIM in a slot (never its keys)."""

    slot: int
    iccid: str
    imsi: str
    seed: bool = False
    plan: dict[str, Any] | None = None
    assignment_id: str | None = None
    apn: str = ""
    plmn: str = ""
    """The SIM's carrier (MCC-MNC from its profile): what an escape from a dead carrier
    names and avoids (agent/core/escape.py)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimFacts:
        return cls(int(d["slot"]), str(d["iccid"]), str(d["imsi"]), bool(d.get("seed", False)),
                   d.get("plan"), d.get("assignment_id"), str(d.get("apn") or ""), str(d.get("plmn") or ""))


@dataclass(frozen=True)
class SwapRecord:
    """A swap in flight: what is on disk between phases."""

    swap_id: str
    reason: str
    phase: str
    old: SimFacts | None
    new: SimFacts | None = None
    started_wall: float | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"swap_id": self.swap_id, "reason": self.reason, "phase": self.phase,
                "old": self.old.to_dict() if self.old else None, "new": self.new.to_dict() if self.new else None,
                "started_wall": self.started_wall, "phases_ms": dict(self.phases_ms)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SwapRecord:
        return cls(str(d["swap_id"]), str(d["reason"]), str(d["phase"]),
                   SimFacts.from_dict(d["old"]) if d.get("old") else None,
                   SimFacts.from_dict(d["new"]) if d.get("new") else None,
                   d.get("started_wall"), dict(d.get("phases_ms") or {}))


class SwapFailed(AgentError):
    """A swap did not reach ``commit``; ``rolled_back`` says whether the old SIM serves."""

    def __init__(self, message: str, *, phase: str, rolled_back: bool):
        super().__init__(message)
        self.phase = phase
        self.rolled_back = rolled_back


@dataclass
class Hooks:
    """What the machine needs from the daemon, as explicit callables."""

    request: Callable[[str, str | None], Awaitable[Any]]
    """(reason, current iccid) -> an opened Assignment (``.profile``, ``.assignment_id``)."""
    account: Callable[[SimFacts], Awaitable[None]]
    """Bill bytes so far to the old SIM, then make ``facts`` the metered SIM, durably."""
    route: Callable[[Any], Awaitable[None]]
    """Move address, default route and DNS onto the context parameters."""
    verify: Callable[[], Awaitable[bool]]
    """Is the internet reachable over the new bearer (reflector echo)?"""
    unroute: Callable[[], Awaitable[None]]
    """Take address and default route off the data interface before the bearer goes: what
    the LAN sends meanwhile is refused at the router (fast failure for its TCP), not
    transmitted into a dead bearer where the device would count bytes the carrier never
    carries."""
    cloud_pause: Callable[[bool], None]
    """False before the switch, True (own switch: reconnect at once) after the route."""
    report: Callable[[str, dict[str, Any]], Awaitable[None]]
    """Emit an event upstream (durable outbox)."""
    result: Callable[[str, bool, str], Awaitable[None]]
    """Report an assignment result (releases the cloud's admission slot)."""


HISTORY_KEEP = 20
"""Swap results kept (memory and ``swaps.json``): the console's ``swaps`` shows them and the
page the newest; 20 is more than a day at the default hourly limit, about 10 kB on flash."""


def load_history(path: Path | None) -> list[dict[str, Any]]:
    """The swap results a previous run kept; a missing or unreadable file is an empty
    history (logged by agent.store), an element that is not a record is dropped."""
    if path is None:
        return []
    data = store.read_json(path, [])
    if not isinstance(data, list):
        LOGGER.error("swap history %s is not a list: starting afresh", path)
        return []
    return [row for row in data if isinstance(row, dict)][-HISTORY_KEEP:]


class SwapMachine:
    """One per daemon. ``swap()`` runs a whole swap; ``resume()`` finishes one a crash cut."""

    def __init__(self, modem: Modem, hooks: Hooks, state_file: Path, *, slots: tuple[int, ...],
                 clock: Clock | None = None, attach_timeout_s: float = 30.0, history_file: Path | None = None):
        self.modem = modem
        self.hooks = hooks
        self.state_file = Path(state_file)
        self.slots = tuple(slots)
        self.clock = clock or Clock()
        self.attach_timeout_s = attach_timeout_s
        self.history_file = Path(history_file) if history_file is not None else None
        self.history: list[dict[str, Any]] = load_history(self.history_file)
        """Recent results (the console's ``swaps``, the renter's "last swap"), newest last;
        kept in ``history_file`` across restarts, at most ``HISTORY_KEEP``."""
        self._reg_event = asyncio.Event()
        self._counter = 0
        self._current: SwapRecord | None = None
        self._hold = hold_from_env()
        for prefix in ("+CEREG", "+CGREG", "+CREG"):
            modem.subscribe(prefix, lambda _line: self._reg_event.set())

    # ---- persistence ----------------------------------------------------------------
    def pending(self) -> SwapRecord | None:
        data = store.read_json(self.state_file)
        return SwapRecord.from_dict(data) if data else None

    def _save(self, rec: SwapRecord) -> None:
        store.atomic_write_json(self.state_file, rec.to_dict())

    def _clear(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def _save_history(self) -> None:
        """One small write per swap (at most the policy's hourly limit): the renter's page
        says what happened after a restart too, and the console's ``swaps`` keeps its rows.
        A failed write loses only the record, never the swap."""
        if self.history_file is None:
            return
        try:
            store.atomic_write_json(self.history_file, self.history)
        except OSError as exc:
            LOGGER.error("swap history not saved: %s", exc)

    def _new_id(self) -> str:
        self._counter += 1
        return f"s-{int(self.clock.wall())}-{self._counter}"

    # ---- the swap ---------------------------------------------------------------------
    async def swap(self, reason: str, old: SimFacts | None, assignment: Any = None) -> SimFacts:
        """Move from ``old`` to a new SIM (``assignment`` if prefetched). Returns the new SIM's
        facts; raises SwapFailed (after rolling back when the switch had happened)."""
        rec = SwapRecord(self._new_id(), reason, "request", old,
                         started_wall=self.clock.wall() if self.clock.wall_trusted() else None)
        try:
            rec, assignment = await self._timed(rec, "request", self._request(rec, assignment))
        except (AgentError, OSError) as exc:
            await self._fail(self._current, exc)
            raise
        profile = assignment.profile
        slot = self._free_slot(old)
        new = SimFacts(slot, profile.iccid, profile.imsi, False, profile.plan.to_dict(),
                       assignment.assignment_id, profile.apn, profile.plmn)
        rec = replace(rec, new=new)
        try:
            rec, _ = await self._timed(rec, "stage", self.modem.load_profile(slot, profile))
        except (AgentError, OSError) as exc:
            await self._fail(self._current, exc)
            raise
        finally:
            del profile, assignment  # the keys are in the modem now (or nowhere): drop our references
        try:
            rec = await self._forward(rec, from_phase="switch")
        except (AgentError, OSError, TimeoutError) as exc:
            await self._fail(self._current, exc)  # always raises SwapFailed
            raise
        return new

    async def _request(self, rec: SwapRecord, assignment: Any) -> Any:
        if assignment is not None:
            return assignment
        return await self.hooks.request(rec.reason, rec.old.iccid if rec.old else None)

    def _free_slot(self, old: SimFacts | None) -> int:
        active = old.slot if old else None
        return next(s for s in self.slots if s != active)

    async def _timed(self, rec: SwapRecord, phase: str, work: Awaitable[Any]) -> tuple[SwapRecord, Any]:
        """Persist ``phase`` as started, run it, record its duration (even when it fails)."""
        rec = replace(rec, phase=phase)
        self._save(rec)
        self._current = rec
        if phase in self._hold:
            LOGGER.warning("holding swap phase %s for %.1f s (%s)", phase, self._hold[phase], HOLD_ENV)
            await asyncio.sleep(self._hold[phase])
        t0 = time.monotonic()
        try:
            value = await work
        finally:
            rec = replace(rec, phases_ms={**rec.phases_ms, phase: round((time.monotonic() - t0) * 1000, 1)})
            self._current = rec
        return rec, value

    async def _forward(self, rec: SwapRecord, from_phase: str) -> SwapRecord:
        """Run the phases from ``from_phase`` (``switch`` or ``attach``) through ``commit``."""
        new = rec.new
        assert new is not None
        if from_phase == "switch":
            rec, _ = await self._timed(rec, "switch", self._switch(new))
        rec, _ = await self._timed(rec, "attach", self._wait_registered(self.attach_timeout_s))
        rec, params = await self._timed(rec, "data", self._data(new))
        rec, _ = await self._timed(rec, "route", self._route(params))
        rec, _ = await self._timed(rec, "verify", self._verify())
        return await self._commit(rec)

    async def _switch(self, new: SimFacts) -> None:
        self.hooks.cloud_pause(False)
        await self.hooks.unroute()
        self._reg_event.clear()
        await self.modem.select_slot(new.slot)
        slot, iccid = await self.modem.active_profile()
        if slot != new.slot or iccid != new.iccid:
            raise ModemError(f"modem answered OK to the switch but carries slot {slot} ({iccid}), "
                             f"not slot {new.slot} ({new.iccid})")

    async def _wait_registered(self, timeout: float) -> Any:
        """Registered on the active SIM within ``timeout``; a registration reject fails fast."""
        deadline = self.clock.monotonic() + timeout
        while True:
            self._reg_event.clear()
            reg = await self.modem.registration()
            if is_registered(reg):
                return reg
            if reg.stat == DENIED:
                # 27.007 stat 3: the network refused this SIM (e.g. EMM #3 after failed
                # authentication). Waiting does not help; rolling back does.
                raise ModemError(f"registration denied (EMM cause {reg.reject_cause if reg.reject_cause is not None else 'not reported'})")
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise ModemError(f"not registered after {timeout:.0f} s (stat {reg.stat})")
            try:
                await asyncio.wait_for(self._reg_event.wait(), min(REGISTRATION_POLL_S, left))
            except TimeoutError:
                pass

    async def _data(self, new: SimFacts) -> Any:
        """Meter first, bearer second. Handing the meter over after the context was up (as
        ``route`` did) billed what the new bearer carried meanwhile to the old SIM: nobody
        sends to a fresh address, but carriers hand addresses out again, and a server still
        retransmitting to one reaches the device as soon as its bearer is up (measured in
        the lab, where pool SIMs keep their address: a 76-byte packet, and seconds of
        window when the agent was killed in ``route``)."""
        await self.hooks.account(new)
        return await self._data_up(new.apn)

    async def _data_up(self, apn: str) -> Any:
        """The data context up (idempotent: an active context is kept, since modems refuse
        to redefine one, and a resumed swap may find it up already)."""
        states = await self.modem.context_states()
        if not any(st.cid == DATA_CID and st.active for st in states):
            await self.modem.define_context(DATA_CID, apn)
            await self.modem.activate_context(DATA_CID)
        params = await self.modem.context_params(DATA_CID)
        if params is None or not params.address:
            raise ModemError("data context is up but the modem reports no address")
        return params

    async def _route(self, params: Any = None) -> None:
        await self.hooks.route(params)
        self.hooks.cloud_pause(True)

    async def _verify(self) -> None:
        try:
            ok = await asyncio.wait_for(self.hooks.verify(), VERIFY_TIMEOUT_S)
        except TimeoutError:
            ok = False
        if not ok:
            raise ModemError(f"no reachability over the new SIM within {VERIFY_TIMEOUT_S:.0f} s")

    async def _commit(self, rec: SwapRecord) -> SwapRecord:
        """The platform learns the assignment took (releasing its admission slot), then the
        swap's record with every phase's duration goes upstream."""
        assert rec.new is not None
        rec, _ = await self._timed(rec, "commit", self._result(rec, True, "serving on the new SIM"))
        await self._event(rec, ok=True, rolled_back=False, detail="serving on the new SIM")
        self._clear()
        return rec

    async def _result(self, rec: SwapRecord, ok: bool, detail: str) -> None:
        if rec.new is not None and rec.new.assignment_id:
            await self.hooks.result(rec.new.assignment_id, ok, detail)

    async def _report(self, rec: SwapRecord, *, ok: bool, rolled_back: bool, detail: str) -> None:
        await self._result(rec, ok, detail)
        await self._event(rec, ok=ok, rolled_back=rolled_back, detail=detail)

    async def _event(self, rec: SwapRecord, *, ok: bool, rolled_back: bool, detail: str) -> None:
        new = rec.new
        breaks = [v for k, v in rec.phases_ms.items() if k in BREAK_PHASES]
        data = {"swap_id": rec.swap_id, "reason": rec.reason, "ok": ok, "rolled_back": rolled_back,
                "from_iccid": rec.old.iccid if rec.old else None, "to_iccid": new.iccid if new else None,
                "assignment_id": new.assignment_id if new else None,
                "started": (datetime.fromtimestamp(rec.started_wall, JST).isoformat(timespec="seconds")
                            if rec.started_wall is not None else None),
                "phases_ms": dict(rec.phases_ms), "break_ms": round(sum(breaks), 1) if breaks else None,
                "detail": detail[:300]}
        self.history = [*self.history, data][-HISTORY_KEEP:]
        self._save_history()
        LOGGER.info("swap %s (%s): %s in %s", rec.swap_id, rec.reason, "ok" if ok else detail,
                    {k: f"{v:.0f} ms" for k, v in rec.phases_ms.items()})
        await self.hooks.report("swap", data)

    # ---- failure and rollback ---------------------------------------------------------
    async def _fail(self, rec: SwapRecord | None, exc: BaseException) -> None:
        assert rec is not None
        LOGGER.error("swap %s failed in %s: %s", rec.swap_id, rec.phase, exc)
        phase = rec.phase
        if rec.old is None or phase in ("request", "stage"):
            await self._report(rec, ok=False, rolled_back=False, detail=f"{phase}: {exc}")
            self._clear()
            raise SwapFailed(str(exc), phase=phase, rolled_back=False) from exc
        rolled = await self._rollback(rec)
        await self._report(rec, ok=False, rolled_back=rolled, detail=f"{phase}: {exc}")
        self._clear()
        raise SwapFailed(str(exc), phase=phase, rolled_back=rolled) from exc

    async def _rollback(self, rec: SwapRecord) -> bool:
        """Back to the old slot (its profile is still loaded there). True if it serves."""
        old = rec.old
        assert old is not None
        rec = replace(rec, phase="rollback")
        self._save(rec)
        t0 = time.monotonic()
        try:
            self.hooks.cloud_pause(False)
            await self.hooks.unroute()
            slot, _ = await self.modem.active_profile()
            if slot != old.slot:
                await self.modem.select_slot(old.slot)
            await self._wait_registered(ROLLBACK_ATTACH_S)
            await self.hooks.account(old)  # meter first, bearer second (``_data``)
            params = await self._data_up(old.apn)
            await self.hooks.route(params)
            self.hooks.cloud_pause(True)
            return True
        except (AgentError, OSError) as exc:
            LOGGER.error("rollback to SIM %s failed: %s", old.iccid, exc)
            return False
        finally:
            rec.phases_ms["rollback"] = round((time.monotonic() - t0) * 1000, 1)

    # ---- after a crash ----------------------------------------------------------------
    async def resume(self) -> SimFacts | None:
        """Finish or undo a swap a crash interrupted. Returns the SIM that serves now, or
        None when there was nothing to resume (or the old SIM never stopped serving)."""
        rec = self.pending()
        if rec is None:
            return None
        LOGGER.warning("swap %s was interrupted in phase %s: recovering", rec.swap_id, rec.phase)
        if rec.new is None or rec.phase in ("request", "stage"):
            # Before the switch the old SIM never stopped serving: nothing to undo.
            await self._report(rec, ok=False, rolled_back=False, detail=f"interrupted in {rec.phase} (restart)")
            self._clear()
            return None
        if rec.phase == "commit":
            await self._commit(rec)
            return rec.new
        try:
            if rec.phase == "rollback":
                raise ModemError("a rollback was interrupted")
            slot, iccid = await self.modem.active_profile()
            if slot != rec.new.slot or iccid != rec.new.iccid:
                raise ModemError(f"modem carries slot {slot}, not the new SIM's slot {rec.new.slot}")
            rec = await self._forward(rec, from_phase="attach")
            return rec.new
        except (AgentError, OSError, TimeoutError) as exc:
            try:
                await self._fail(self._current or rec, exc)
            except SwapFailed as failed:
                return rec.old if failed.rolled_back else None
        return None

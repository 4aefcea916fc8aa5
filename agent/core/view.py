"""``SupervisorView``: the control socket's provider, reading the running supervisor.

It reads only what the supervisor makes public: its status file contents, ``current``
(the SIM's public facts), the health monitor's summary and outage history, the usage
journal's pending records, and the supervisor's single ``Modem`` for identity and signal
(the AT channel serialises every command, so the console's questions queue behind the
daemon's own and never open a second port). Changes go through the supervisor's own
methods (``request_swap``; the lead's swap rewrite adds it and ``swap_history``: where
they are missing the answer is "not available in this build").

Every answer is a plain dict of public facts. Nothing here can reach a SIM's Ki or OPc:
the supervisor drops the profile once it is in the modem, and ``current`` holds public
facts only, which ``_public_sim`` whitelists once more.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from agent import store
from agent.core import tracefile
from agent.core.audit import AuditLog
from agent.core.control import Caller
from agent.core.daygraph import BUCKET_S, DayGraph
from agent.core.logins import STATE_FILE, Authenticator, LoginDesk
from agent.errors import AgentError, AtCommandError, ControlError, ModemError
from agent.modem import answer
from agent.modem.commands import KNOWN
from agent.plans import shown
from agent.usage.calendar import parse_tz

LOGGER = logging.getLogger(__name__)

DATA_CID = 1
"""The PDP context the supervisor uses for user data (agent.core.supervisor.DATA_CID)."""
LOG_RING = 500
"""Log lines kept in memory for ``log [N]`` (commands.LOG_MAX): ~60 kB."""
THROUGHPUT_EVERY = 2.0
"""Seconds between the view's own readings of the data interface's counters: "throughput
now" is the rate over the last two seconds (one netlink read each, negligible), so the
first ``status`` after plugging in already has a figure and never waits for one."""
STORAGE_PROBE_EVERY = 300.0
"""Seconds between two real write probes of ``selftest``'s "state writable": a renter
pressing selftest in a loop costs the flash at most one small write every 5 minutes."""
UNSET_ADDRESSES = ("0.0.0.0", "0:0:0:0:0:0:0:0", "::")
"""What +CGPADDR prints for a context without an address (after a modem reboot)."""
SIM_PUBLIC = ("iccid", "imsi", "slot", "seed", "plan", "assignment_id")
EXPECTED_BREAK_S = 6.0
"""A swap's break when this run has not measured one yet: the virtual modem's slot switch,
attach and data context take 5.8 s and the agent's whole break measured 5.9 s (README)."""
ICCID_TAIL = 4
"""Digits of the ICCID a renter may see (the end printed on the SIM's label, enough to tell
two SIMs apart on a support call; the whole number is the operator's inventory)."""
REG_WORDS = {0: "not registered, not searching", 1: "registered (home)", 2: "searching", 3: "denied",
             4: "unknown", 5: "registered (roaming)"}
"""3GPP TS 27.007 <stat> in words."""

RSRP_WORDS = ((-80.0, "excellent"), (-90.0, "good"), (-100.0, "fair"), (-110.0, "poor"))
"""RSRP thresholds (dBm) as operators' coverage maps and most router UIs draw them;
below -110 dBm an LTE link barely holds. SINR below 0 dB caps the rating at poor."""


def signal_rating(rsrp_dbm: float | None, sinr_db: float | None) -> str:
    if rsrp_dbm is None:
        return "no signal"
    words = next((w for limit, w in RSRP_WORDS if rsrp_dbm >= limit), "no signal")
    if sinr_db is not None and sinr_db < 0 and words in ("excellent", "good", "fair"):
        return "poor"
    return words


class LogRing(logging.Handler):
    """The newest ``LOG_RING`` formatted log lines, for the console's ``log``."""

    def __init__(self, size: int = LOG_RING):
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except (TypeError, ValueError):  # a log line that cannot be formatted is not worth a crash
            self.handleError(record)


def _public_sim(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: facts[k] for k in SIM_PUBLIC if k in facts} if facts else None


class SupervisorView:
    """One per daemon; the methods are the ops of ``agent.core.control.OPS``."""

    def __init__(self, sup: Any, *, audit: AuditLog, technicians_file: Path,
                 reboot_command: list[str] | None = None):
        self.sup = sup
        self.audit_log = audit
        self.technicians_file = Path(technicians_file)
        self.reboot_command = reboot_command
        self.logins = LoginDesk(str(sup.cfg.device_id), self.technicians_file, self.audit,
                                authenticator=Authenticator(Path(sup.state_dir) / "console" / STATE_FILE))
        self.ring = LogRing()
        logging.getLogger().addHandler(self.ring)
        self._rate: dict[str, float | None] = {"rx_kbps": None, "tx_kbps": None}
        self._storage: tuple[float, bool, str] | None = None
        """The last storage probe: (monotonic time, ok, detail)."""
        self._last_counters: tuple[float, int, int] | None = None
        self.day_graph = DayGraph(parse_tz(sup.cfg.tz_offset))
        """Today's throughput for the renter's page, fed by the same 2-s counter reading."""

    def close(self) -> None:
        logging.getLogger().removeHandler(self.ring)

    # ---- helpers ----------------------------------------------------------------------
    def _modem(self) -> Any:
        if self.sup.modem is None:
            raise ControlError("the modem is not open yet", reason="not_available")
        return self.sup.modem

    async def run(self) -> None:
        """The view's one task (owned by the supervisor): keep "throughput now" fresh."""
        while True:
            try:
                await self.read_throughput()
            except Exception:  # a console nicety must never stop the daemon (supervisor.spawn would)
                LOGGER.exception("console view: throughput reading failed")
            await asyncio.sleep(THROUGHPUT_EVERY)

    async def read_throughput(self) -> None:
        try:
            c = await asyncio.to_thread(self.sup.wan.counters)
        except (AgentError, OSError):
            self._rate, self._last_counters = {"rx_kbps": None, "tx_kbps": None}, None
            return
        now = time.monotonic()
        self.day_graph.feed(self.sup.clock.wall(), c.rx_bytes + c.tx_bytes)
        last, self._last_counters = self._last_counters, (now, c.rx_bytes, c.tx_bytes)
        if last is not None and now > last[0]:
            dt = now - last[0]
            self._rate = {"rx_kbps": max(0, c.rx_bytes - last[1]) * 8 / 1000 / dt,
                          "tx_kbps": max(0, c.tx_bytes - last[2]) * 8 / 1000 / dt}

    def _classification(self) -> dict[str, Any]:
        if self.sup.health is None:
            return {"state": "unknown", "rate_kbps": None, "why": "link health is not being classified"}
        s = self.sup.health.summary()
        ev = s.get("evidence") or {}
        why = ev.get("reason") or ev.get("cause") or ", ".join(f"{k} {v}" for k, v in ev.items()
                                                               if not isinstance(v, dict | list))
        return {"state": s.get("state"), "rate_kbps": s.get("rate_kbps"), "why": why or "no change seen"}

    async def _radio(self) -> dict[str, Any]:
        modem = self._modem()
        sig = await modem.signal()
        reg = await modem.registration()
        return {"rsrp_dbm": sig.rsrp_dbm, "rsrq_db": sig.rsrq_db, "sinr_db": sig.sinr_db, "rssi_dbm": sig.rssi_dbm,
                "rating": signal_rating(sig.rsrp_dbm, sig.sinr_db), "technology": reg.act,
                "registration": REG_WORDS.get(reg.stat, str(reg.stat)), "registered": reg.stat in (1, 5),
                "reject_cause": reg.reject_cause, "cell": reg.ci}

    # ---- read-only ops ----------------------------------------------------------------
    async def device(self) -> dict[str, Any]:
        return {"device_id": self.sup.cfg.device_id, "state": self.sup.status.data.get("state")}

    async def status(self) -> dict[str, Any]:
        out: dict[str, Any] = await self.device()
        out["sim"] = _public_sim(self.sup.current)
        out["cloud"] = {"connected": bool(self.sup.cloud and self.sup.cloud.connected)}
        out["classification"] = self._classification()
        out["throughput"] = dict(self._rate)
        out["allowance"] = self._allowance()
        out["update"] = self.sup.updater.summary() if self.sup.updater is not None else None  # issue 26
        try:
            radio = await self._radio()
            op = await self._modem().operator()
            addresses = await self._modem().addresses(DATA_CID)
        except (ModemError, ControlError) as exc:
            out.update(signal={"rating": "unknown"}, operator=None, technology=None, address=None,
                       modem_error=str(exc))
            return out
        out["signal"] = {k: radio[k] for k in ("rsrp_dbm", "rsrq_db", "sinr_db", "rssi_dbm", "rating")}
        out.update(operator=op.oper, technology=radio["technology"] or op.act, registration=radio["registration"],
                   address=next((a for a in addresses if a not in UNSET_ADDRESSES), None))
        return out

    def _allowance(self) -> list[dict[str, Any]]:
        """Every rule of the SIM's plan with its use now, when it resets and when the current
        rate would reach it (agent/plans/shown.py): the console's ``status`` and the renter's
        page read these rows, from the tracker the swap policy acts on."""
        current = self.sup.current
        tracker = getattr(self.sup.usage, "allowance", None)
        if not current or tracker is None:
            return []
        rate = float(getattr(self.sup.usage, "traffic_kbps", 0.0) or 0.0)
        return shown.rows(tracker.plan(current), tracker.status(current), rate * 1000 / 8, self.sup.clock.wall())

    async def renter(self) -> dict[str, Any]:
        """What the person holding the router may see (agent/faces/page), from what the
        daemon already knows: no AT command, so a page reload never queues behind the
        modem. No ICCID in full, no IMSI, no key, no cloud address."""
        sup, wall = self.sup, self.sup.clock.wall()
        summary = sup.health.summary() if sup.health is not None else {}
        radio = summary.get("radio") or {}
        evidence = summary.get("evidence") or {}
        outage = next((o for o in reversed(sup.health.outages.history()) if o.get("end") is None), None) \
            if sup.health is not None else None
        current = sup.current or {}
        control = sup.swap_control
        planned = control.planned()
        history = sup.swap_history()
        breaks = [h["break_ms"] for h in history if h.get("ok") and h.get("break_ms")]
        last = history[-1] if history else None
        rate = [v for v in self._rate.values() if v is not None]
        return {
            "wall": wall, "wall_trusted": sup.clock.wall_trusted(), "tz": sup.cfg.tz_offset,
            "state": sup.status.data.get("state"),
            "health": {"state": summary.get("state"), "kbps": summary.get("kbps"),
                       "cause": evidence.get("cause") or evidence.get("below")},
            "no_service_since": outage.get("start") if outage else None,
            "signal": {"rsrp_dbm": radio.get("rsrp_dbm"), "sinr_db": radio.get("sinr_db"),
                       "rating": signal_rating(radio.get("rsrp_dbm"), radio.get("sinr_db"))},
            "network": {"plmn": (summary.get("network") or {}).get("plmn")},
            "sim": {"iccid_tail": str(current.get("iccid") or "")[-ICCID_TAIL:] or None,
                    "seed": bool(current.get("seed")), "plan": ((current.get("plan") or {}).get("name"))},
            "rules": self._allowance(),
            "swap": {"in_progress_s": control.swapping_for_s(),
                     "expected_break_s": round(breaks[-1] / 1000, 1) if breaks else EXPECTED_BREAK_S,
                     "planned": {"reason": planned.reason, "in_s": round(planned.in_s, 1),
                                 "at_lull": planned.at_lull} if planned else None,
                     "last": {k: last.get(k) for k in ("reason", "ok", "rolled_back", "break_ms", "started")}
                     if last else None},
            "throughput": {"now_kbps": round(sum(rate), 1) if rate else None, "bucket_s": BUCKET_S,
                           "day": self.day_graph.day, "today_kbps": self.day_graph.kbps()},
        }

    async def modem(self) -> dict[str, Any]:
        ident = await self._modem().identity()
        return {"manufacturer": ident.manufacturer, "model": ident.model, "firmware": ident.revision,
                "imei": ident.imei, "dialect": self.sup.profile.dialect,
                "port": self.sup.cfg.modem_port or self.sup.profile.at_port}

    async def signal(self) -> dict[str, Any]:
        return await self._radio()

    async def sim(self) -> dict[str, Any]:
        state = await self._modem().sim_state()
        return {"active": _public_sim(self.sup.current), "sim_state": state,
                "vsim_slots": list(self.sup.profile.vsim_slots), "seed_slot": self.sup.profile.seed_slot}

    async def usage(self) -> dict[str, Any]:
        """What this device metered and still holds (the cloud keeps the full totals)."""
        sims: dict[str, dict[str, Any]] = {}
        today = self.sup.clock.now().date().isoformat()
        month = today[:7]
        journal = self.sup.journal
        pending = journal.pending(100000) if journal else []
        for _, body in pending:
            row = sims.setdefault(body["iccid"], {"iccid": body["iccid"], "imsi": body["imsi"], "today_bytes": 0,
                                                  "month_bytes": 0, "unreported_bytes": 0})
            moved = int(body["rx_bytes"]) + int(body["tx_bytes"])
            row["unreported_bytes"] += moved
            row["today_bytes"] += moved if body["day"] == today else 0
            row["month_bytes"] += moved if body["month"] == month else 0
        return {"day": today, "month": month, "scope": "metered on this device, not yet acknowledged by the cloud",
                "sims": list(sims.values()), "rules": self._rules()}

    def _rules(self) -> list[dict[str, Any]]:
        """The SIM in use's plan rules (used / cap / resets-at), where the supervisor keeps them."""
        report = getattr(self.sup, "allowance_report", None)
        return list(report()) if report is not None else []

    async def health(self) -> dict[str, Any]:
        monitor = self.sup.health
        return {"now": self._classification(),
                "outages": monitor.outages.history() if monitor is not None else [],
                "modem_recovery": self.sup.status.data.get("modem_recovery")}

    async def swaps(self) -> dict[str, Any]:
        history = getattr(self.sup, "swap_history", None)
        if history is None:
            raise ControlError("swap history is not available in this build", reason="not_available")
        return {"swaps": list(history())}

    async def log(self, n: int) -> dict[str, Any]:
        return {"lines": list(self.ring.lines)[-max(1, min(n, LOG_RING)):]}

    async def technicians(self) -> dict[str, Any]:
        return store.read_json(self.technicians_file) or {"version": 0, "keys": []}

    async def trace(self, action: str) -> dict[str, Any]:
        monitor = self.sup.health
        if monitor is None or not hasattr(monitor, "start_trace"):
            raise ControlError("detection traces are not available in this build", reason="not_available")
        if action == "start":
            directory = store.ensure_private_dir(self.sup.state_dir / "traces")
            monitor.stop_trace()  # before making room: the running trace may be the oldest
            tracefile.make_room(directory)
            path = directory / time.strftime("trace-%Y%m%d-%H%M%S.csv")
            monitor.start_trace(path, max_bytes=tracefile.CONSOLE_MAX_BYTES, max_seconds=tracefile.CONSOLE_MAX_SECONDS)
            return {"recording": True, "file": str(path), "stops_after_minutes": tracefile.CONSOLE_MAX_SECONDS / 60,
                    "stops_after_bytes": tracefile.CONSOLE_MAX_BYTES, "traces_kept": tracefile.CONSOLE_KEEP}
        if action == "stop":
            monitor.stop_trace()
            return {"recording": False}
        raise ControlError("trace start|stop", reason="bad_request")

    async def selftest(self) -> dict[str, Any]:
        checks = [await self._check(name, fn) for name, fn in (
            ("modem answers", self._t_modem), ("SIM ready", self._t_sim), ("registered", self._t_registered),
            ("data up", self._t_data), ("broker reachable", self._t_broker), ("clock trustworthy", self._t_clock),
            ("state writable", self._t_storage))]
        return {"checks": checks, "passed": sum(c["ok"] for c in checks)}

    @staticmethod
    async def _check(name: str, fn: Any) -> dict[str, Any]:
        try:
            ok, detail = await fn()
        except (AgentError, OSError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        return {"name": name, "ok": bool(ok), "detail": detail}

    async def _t_modem(self) -> tuple[bool, str]:
        await self._modem().ping()
        return True, "answers AT"

    async def _t_sim(self) -> tuple[bool, str]:
        state = await self._modem().sim_state()
        return state == "READY", f"+CPIN: {state}"

    async def _t_registered(self) -> tuple[bool, str]:
        reg = await self._modem().registration()
        cause = f", reject cause {reg.reject_cause}" if reg.reject_cause else ""
        return reg.stat in (1, 5), f"{REG_WORDS.get(reg.stat, reg.stat)}{cause}"

    async def _t_data(self) -> tuple[bool, str]:
        addresses = [a for a in await self._modem().addresses(DATA_CID) if a not in UNSET_ADDRESSES]
        up = await asyncio.to_thread(self.sup.wan.is_up)
        where = addresses[0] if addresses else "none"
        return bool(addresses) and up, f"address {where}, {self.sup.profile.data_interface} {'up' if up else 'down'}"

    async def _t_broker(self) -> tuple[bool, str]:
        connected = bool(self.sup.cloud and self.sup.cloud.connected)
        return connected, "connected" if connected else "not connected"

    async def _t_clock(self) -> tuple[bool, str]:
        trusted = self.sup.clock.wall_trusted()
        return trusted, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.sup.clock.wall())) + \
            ("" if trusted else " (not yet synchronised)")

    async def _t_storage(self) -> tuple[bool, str]:
        """A real write (temp, fsync, rename), at most once per ``STORAGE_PROBE_EVERY``:
        anyone at the cable may run ``selftest``, and each probe is a flash write."""
        now = time.monotonic()
        if self._storage is not None and now - self._storage[0] < STORAGE_PROBE_EVERY:
            at, ok, detail = self._storage
            return ok, f"{detail} (checked {now - at:.0f} s ago)"
        probe = self.sup.state_dir / ".console-selftest"
        try:
            await asyncio.to_thread(store.atomic_write, probe, b"ok")
            probe.unlink()
            ok, detail = True, f"{self.sup.state_dir} writable"
        except OSError as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self._storage = (now, ok, detail)
        return ok, detail

    # ---- logins (agent/core/logins.py) ------------------------------------------------
    async def login_challenge(self, caller: Caller) -> dict[str, Any]:
        return await self.logins.challenge(caller)

    async def login(self, caller: Caller, signature: str) -> dict[str, Any]:
        return await self.logins.login(caller, signature)

    async def logout(self, caller: Caller, reason: str) -> dict[str, Any]:
        return await self.logins.logout(caller, reason)

    # ---- the audit trail (written by the daemon only: not an op) -----------------------
    async def audit(self, entry: dict[str, Any]) -> dict[str, Any]:
        record = self.audit_log.append(entry)
        if self.sup.cloud is not None:
            try:
                await self.sup.cloud.emit("audit", record)
            except AgentError as exc:
                LOGGER.warning("audit entry not queued upstream: %s", exc)
        LOGGER.info("console audit: %s", {k: record.get(k) for k in ("action", "technician", "outcome")})
        return {"recorded": True}

    # ---- privileged ops (the control server checked the caller and audits them) -------
    async def at(self, command: str) -> dict[str, Any]:
        why = KNOWN.refusal(command)  # the one gate, whatever dialect the board runs
        if why:
            raise ControlError(why, reason="refused")
        try:
            resp = await self._modem().command(command)
        except AtCommandError as exc:
            return {"lines": (exc.raw or "").splitlines()[:-1], "final": (exc.raw or str(exc)).splitlines()[-1]}
        return {"lines": list(resp.lines), "final": resp.final, "decoded": answer.decode(resp)}

    async def swap(self, reason: str) -> dict[str, Any]:
        request = getattr(self.sup, "request_swap", None)
        if request is None:
            raise ControlError("swap on request is not available in this build", reason="not_available")
        result = request(reason)
        if asyncio.iscoroutine(result):
            result = await result
        return {"requested": True, "result": result if isinstance(result, dict | str | None) else str(result)}

    async def modem_reset(self) -> dict[str, Any]:
        """Through the supervisor only: a bare +CFUN=1,1 would leave the data context down
        with nobody bringing it back (the lab shows exactly that), so without the
        supervisor's ``reset_modem`` this build refuses rather than break the link."""
        reset = getattr(self.sup, "reset_modem", None)
        if reset is None:
            raise ControlError("modem reset is not available in this build (the agent could not bring data "
                               "back afterwards); restart the agent or power-cycle the router instead",
                               reason="not_available")
        result = reset("technician")
        if asyncio.iscoroutine(result):
            result = await result
        return {"reset": True, "result": result if isinstance(result, dict | str | None) else str(result)}

    async def reboot(self) -> dict[str, Any]:
        if not self.reboot_command:
            raise ControlError("reboot is not configured on this board ([console] reboot_command)",
                               reason="not_available")
        LOGGER.warning("console: rebooting the router (%s)", " ".join(self.reboot_command))
        await asyncio.create_subprocess_exec(*self.reboot_command, start_new_session=True,
                                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, env=dict(os.environ))
        return {"rebooting": True}

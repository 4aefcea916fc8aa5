"""The virtual modem's command set and radio/SIM/PDP state (runs on the modem thread).

One handler per command family, chosen from a table; each returns the response lines
(final result code included) and the modelled latency in seconds. Syntax follows 3GPP
TS 27.007 and V.250; the vSIM extension follows docs/vsim-at.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from agent.modem.errcodes import CME_ERRORS
from board.virtual.modem import milenage
from board.virtual.modem.data import DataCommands
from board.virtual.modem.ident import TEST_FORMS, IdentityCommands
from board.virtual.modem.model import (
    ATTACH_LATENCY,
    BOOT_LATENCY,
    COMMAND_LATENCY,
    CONTEXT_LATENCY,
    RADIO_OFF_LATENCY,
    RADIO_ON_LATENCY,
    SLOT_SWITCH_LATENCY,
    CarrierReject,
    Handler,
    RadioConditions,
    Result,
    SlotSim,
    split_args,
)
from board.virtual.modem.quectel import QuectelCommands
from board.virtual.modem.rsim import RemoteSimBaseband
from board.virtual.modem.simfs import SimFiles
from board.virtual.modem.sms import SmsCommands

if TYPE_CHECKING:
    from board.virtual.modem.device import VirtualModem

SEED_SLOT = 0
"""Slot 0 holds the bootstrap SIM from the config; it cannot be overwritten."""

BEARER_ID_BASE = 5
"""EPS bearer ids 5..15 (TS 24.007); the default bearer of cid n gets 4+n."""

VENDOR_CME_TEXT: dict[int, str] = {515: "please wait, init or command processing in progress"}
"""Vendor +CME ERROR codes beyond 27.007's table (agent/modem/errcodes.py): Quectel's 515."""

ESM_TO_CME = {33: 133, 29: 149}
"""ESM reject cause (TS 24.301) -> +CME ERROR code; anything else is 148."""

@dataclass
class Context:
    pdp_type: str
    apn: str
    params: dict[str, Any] | None = None


class CommandSet:
    """State + handlers. Only ever touched from the modem thread."""

    def __init__(self, modem: VirtualModem):
        self.m = modem
        cfg = modem.config
        self.slots: dict[int, SlotSim] = {SEED_SLOT: cfg.seed}
        self.active_slot = SEED_SLOT
        self.echo = True
        self.cmee = 1
        self.cfun = 0
        self.reg_n = {"CREG": 0, "CGREG": 0, "CEREG": 0}
        self.stat = 0
        self.reject_cause: int | None = None
        self.attached = False
        self._attach_gen = 0
        self.contexts: dict[int, Context] = {1: Context("IP", cfg.seed.apn)}
        self.sregs: dict[int, int] = {3: 13, 4: 10, 5: 8, 7: 50}
        self.cops_format = 0
        self.table: dict[str, Handler] = {
            "+CGMI": self._cgmi, "+CGMM": self._cgmm, "+CGMR": self._cgmr, "+CGSN": self._cgsn,
            "+CMEE": self._cmee, "+CFUN": self._cfun, "+CIMI": self._cimi, "+CSQ": self._csq, "+CESQ": self._cesq, "+COPS": self._cops,
            "+CGDCONT": self._cgdcont, "+CGACT": self._cgact, "+CGPADDR": self._cgpaddr,
            "+CGCONTRDP": self._cgcontrdp, "+CGATT": self._cgatt, "+CCLK": self._cclk,
            "+VSIMLOAD": self._vsimload, "+VSIMSEL": self._vsimsel, "+VSIMLIST": self._vsimlist,
            "+VSIMDEL": self._vsimdel, "+VSINR": self._vsinr,
        }
        for name in ("CREG", "CGREG", "CEREG"):
            self.table["+" + name] = _reg_handler(self, name)
        self.sink: Callable[[bytes], bytes] | None = None
        """While set, bytes from the port go here instead of the command line (online data
        mode of a data call); it returns the bytes that follow its end."""
        self.ident = IdentityCommands(self)
        self.table.update(self.ident.handlers())
        self.simfs = SimFiles(self)
        self.table.update(self.simfs.handlers())
        self.data = DataCommands(self)
        self.table.update(self.data.handlers())
        self.sms = SmsCommands(self)
        self.table.update(self.sms.handlers())
        self.quectel = QuectelCommands(self)
        self.table.update(self.quectel.handlers())
        self.rsim = RemoteSimBaseband(self) if cfg.remote_sim else None
        """The remote-SIM personality: the card is the host's (docs/remote-sim.md)."""
        if self.rsim is not None:
            self.table.update(self.rsim.handlers())

    # -- helpers ---------------------------------------------------------------------
    def cme(self, code: int) -> str:
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2:
            return f"+CME ERROR: {CME_ERRORS.get(code) or VENDOR_CME_TEXT.get(code, 'unknown')}"
        return f"+CME ERROR: {code}"

    def _err(self, code: int, latency: float | None = None) -> Result:

        return [self.cme(code)], COMMAND_LATENCY if latency is None else latency

    @staticmethod
    def _ok(lines: list[str] | None = None, latency: float | None = None) -> Result:

        return [*(lines or []), "OK"], COMMAND_LATENCY if latency is None else latency

    @property
    def eol(self) -> bytes:
        """V.250 response framing: S3 then S4 (CR LF unless changed with ATS3=/ATS4=)."""
        return bytes((self.sregs.get(3, 13), self.sregs.get(4, 10)))

    def lte_allowed(self) -> bool:
        """The virtual cell is LTE: a mode without E-UTRAN (+WS46 12/22/29, Quectel
        nwscanmode 1/2) finds no cell, as a real EC25 would on an LTE-only network."""
        return self.ident.s.ws46 not in (12, 22, 29) and self.quectel.nwscanmode not in (1, 2)

    def signal_bars(self) -> int:
        """The +CIND/+CIEV "signal" indicator (0-5) from RSRP."""
        if self.cfun != 1:
            return 0
        return max(0, min(5, int((self.m.conditions.rsrp_dbm + 125) // 8)))

    def cgev(self, event: str) -> None:
        """A +CGEV URC, when +CGEREP asks for them."""
        if self.ident.cgev_enabled():
            self.m.urc(f"+CGEV: {event}")

    @property
    def sim(self) -> SlotSim | None:
        if self.rsim is not None:
            return self.rsim.sim
        return self.slots.get(self.active_slot)

    def random_urc(self) -> str:
        """A truthful, harmless URC for random injection (signal bars, access tech)."""
        return self.m.rng.choice([f"+CIEV: 2,{self.signal_bars()}", '+QIND: "act","LTE"'])

    # -- dispatch --------------------------------------------------------------------
    def execute(self, text: str) -> Result:
        body = text[2:]
        if body[:1].upper() == "D":
            return self.data.dial(body[1:])
        if not body.startswith(("+", "^")):
            return self._basic(body)
        m = re.match(r"^([+^][A-Z0-9]+)(=\?|\?|=(.*))?$", body, re.IGNORECASE)
        if not m:
            return self._err(50) if self.cmee else (["ERROR"], 0.0)
        name = m.group(1).upper()
        handler = self.table.get(name)
        if handler is None:
            return ["ERROR"], 0.0
        suffix = m.group(2)
        kind = "exec" if suffix is None else "test" if suffix == "=?" else "query" if suffix == "?" else "set"
        if kind == "test" and name in TEST_FORMS:
            return self._ok(TEST_FORMS[name])  # ranges, never current values
        try:
            return handler(kind, m.group(3) or "")
        except (ValueError, IndexError):
            return self._err(50)

    def _basic(self, body: str) -> Result:
        """V.250 basic commands, concatenated (``ATE0``, ``ATS7=5S7?``, ``ATI``, ``ATZ``)."""
        lines: list[str] = []
        pos = 0
        token = re.compile(
            r"E([01])|S(\d+)=(\d+)|S(\d+)\?|V1|Q0|X[0-4]?|&C[01]?|&D[0-2]?|Z0?|I0?|&F0?|&W0?|H0?|O0?",
            re.IGNORECASE,
        )
        while pos < len(body):
            m = token.match(body, pos)
            if not m:
                return ["ERROR"], 0.0
            word = m.group(0).upper()
            if m.group(1):
                self.echo = m.group(1) == "1"
            elif m.group(2):
                self.sregs[int(m.group(2))] = int(m.group(3)) % 256
            elif m.group(4):
                lines.append(f"{self.sregs.get(int(m.group(4)), 0):03d}")
            elif word in ("I", "I0"):
                cfg = self.m.config  # the EC25's ATI: manufacturer, model, revision
                lines += [cfg.manufacturer, cfg.model, f"Revision: {cfg.revision}"]
            elif word[0] in "HO":
                return self.data.hangup() if word[0] == "H" else self.data.online()
            elif word[0] == "Z" or word[:2] == "&F":
                self.echo, self.cmee = True, 1  # back to the stored (factory) profile
                self.ident.reset()
            pos = m.end()
        return self._ok(lines)

    # -- identity --------------------------------------------------------------------
    def _cgmi(self, kind: str, args: str) -> Result:
        return self._ok([self.m.config.manufacturer])

    def _cgmm(self, kind: str, args: str) -> Result:
        return self._ok([self.m.config.model])

    def _cgmr(self, kind: str, args: str) -> Result:
        return self._ok([self.m.config.revision])

    def _cgsn(self, kind: str, args: str) -> Result:
        return self._ok([self.m.config.imei])

    def _cmee(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self._ok([f"+CMEE: {self.cmee}"])
        if kind == "set":
            value = int(args)
            if value not in (0, 1, 2):
                return self._err(50)
            self.cmee = value
        return self._ok()

    def _cimi(self, kind: str, args: str) -> Result:
        sim = self.sim
        if sim is None:
            return self._err(10)
        return self._ok([sim.imsi])

    # -- radio -----------------------------------------------------------------------
    def _cfun(self, kind: str, args: str) -> Result:

        if kind == "query":
            return self._ok([f"+CFUN: {self.cfun}"])
        if kind == "test":
            return self._ok(["+CFUN: (0,1,4),(0,1)"])
        parts = [p.strip() for p in args.split(",")]
        fun = int(parts[0])
        if fun not in (0, 1, 4):
            return self._err(50)
        if len(parts) > 1 and parts[1] == "1":
            self.m.schedule(0.01, self.reboot)
            return self._ok(latency=0.0)
        latency = RADIO_ON_LATENCY if fun == 1 and self.cfun != 1 else RADIO_OFF_LATENCY
        if fun == self.cfun:
            latency = 0.0
        self.cfun = fun
        self.ident.report_indicators()  # the signal indicator follows the radio at once
        self.m.schedule(latency, self.reevaluate)
        return self._ok(latency=latency)

    def set_conditions(self, cond: RadioConditions) -> None:
        self.m.conditions = cond
        self.reevaluate()
        self.ident.report_indicators()

    def _set_stat(self, stat: int, cause: int | None = None) -> None:
        if stat == self.stat and cause == self.reject_cause:
            return
        self.stat, self.reject_cause = stat, cause
        if stat == 3 and cause is not None:  # +CEER then names the reject, as real modems do
            self.data.ceer = f"EMM cause #{cause}: registration rejected"
        self.ident.report_indicators()
        for name, n in self.reg_n.items():
            if n > 0:
                self.m.urc(f"+{name}: {self._reg_fields(name, n)}")

    def _reg_fields(self, name: str, n: int) -> str:
        fields = [str(self.stat)]
        if n >= 2 and self.stat in (1, 5):
            fields += ['"1A2B"', '"01A2D001"', "7"]
        if n >= 3 and self.reject_cause is not None:
            if len(fields) == 1:
                fields += ['""', '""', ""]
            fields += ["0", str(self.reject_cause)]
        return ",".join(fields)

    def reevaluate(self) -> None:
        """Registration follows radio function, SIM and radio conditions."""

        sim, cond = self.sim, self.m.conditions
        if not self.simfs.ready:  # no SIM, or its PIN not entered yet
            sim = None
        if self.cfun != 1 or sim is None or not cond.registered or not self.lte_allowed() \
                or sim.plmn in cond.down_plmns:
            self._detach()
            self._set_stat(0 if self.cfun != 1 or sim is None else 2)
            return
        if cond.reject_cause is not None:
            self._detach()
            self._set_stat(3, cond.reject_cause)
            return
        if self.attached:
            return
        self._set_stat(2)
        self._attach_gen += 1
        gen = self._attach_gen
        self.m.schedule(ATTACH_LATENCY, lambda: self._attach(gen))

    def _attach(self, gen: int) -> None:
        sim = self.sim
        if gen != self._attach_gen or sim is None or self.cfun != 1 or self.attached:
            return
        if not self.m.conditions.registered or sim.plmn in self.m.conditions.down_plmns:
            return
        if self.rsim is not None:  # AKA through the host's card: the result comes later
            self.rsim.attach(gen)
            return
        self.attach_result(gen, self.m.carrier.attach(sim.imsi, sim.plmn, self._challenge(sim)))

    @property
    def attach_gen(self) -> int:
        """The number of the attach in progress; a result for an older one is dropped."""
        return self._attach_gen

    def attach_result(self, gen: int, cause: int | None) -> None:
        """The carrier accepted (None) or rejected (EMM cause) attach number ``gen``."""
        sim = self.sim
        if gen != self._attach_gen or sim is None or self.attached:
            return
        if cause is not None:
            self._set_stat(3, cause)
            if self.rsim is None:
                self.m.urc(f'+VSIMSTAT: {self.active_slot},"REJECTED",{cause}')
            return
        self.attached = True
        self._set_stat(5 if sim.imsi[:5] != sim.plmn else 1)

    @staticmethod
    def _challenge(sim: SlotSim) -> Callable[[bytes], bytes]:
        def answer(rand: bytes) -> bytes:

            return milenage.res(sim.ki, sim.opc, rand)

        return answer

    def _detach(self) -> None:
        """The network releases the bearers, then the modem reports each context gone
        (+CGEV after the carrier acted, as for a network deactivation): a host that acts
        on the URC finds the data path already closed."""
        self._attach_gen += 1
        sim = self.sim
        dropped = [cid for cid, ctx in sorted(self.contexts.items()) if ctx.params is not None]
        for cid in dropped:
            self.contexts[cid].params = None
        if self.attached and sim is not None:
            self.m.carrier.detach(sim.imsi)
        self.attached = False
        for cid in dropped:
            self.cgev(f"ME PDN DEACT {cid}")

    def _csq_value(self) -> int:
        if self.cfun != 1:
            return 99
        rssi_dbm = self.m.conditions.rsrp_dbm + 28  # RSRP + 10log10(12 x 50 RB)
        return int(max(0, min(31, (rssi_dbm + 113) // 2)))

    def _csq(self, kind: str, args: str) -> Result:
        return self._ok([f"+CSQ: {self._csq_value()},99"])

    def _cesq(self, kind: str, args: str) -> Result:
        if self.cfun != 1:
            return self._ok(["+CESQ: 99,99,255,255,255,255"])
        c = self.m.conditions
        rsrq = int(max(0, min(34, round((c.rsrq_db + 20) * 2))))
        rsrp = int(max(0, min(97, round(c.rsrp_dbm + 141))))
        return self._ok([f"+CESQ: 99,99,255,255,{rsrq},{rsrp}"])

    def _vsinr(self, kind: str, args: str) -> Result:
        if self.cfun != 1:
            return self._err(30)
        return self._ok([f"+VSINR: {self.m.conditions.sinr_db:.1f}"])

    def _cops(self, kind: str, args: str) -> Result:
        sim = self.sim
        if kind == "query":
            if self.stat not in (1, 5) or sim is None:
                return self._ok(["+COPS: 0"])
            name = sim.plmn if self.cops_format == 2 else self.m.config.operator_name
            return self._ok([f'+COPS: 0,{self.cops_format},"{name}",7'])
        if kind == "test":

            plmn = sim.plmn if sim else "44010"
            name = self.m.config.operator_name
            return self._ok([f'+COPS: (2,"{name}","LAB","{plmn}",7),,(0-4),(0-2)'], ATTACH_LATENCY)
        parts = [p.strip() for p in args.split(",")]
        if len(parts) >= 2 and parts[1]:
            self.cops_format = int(parts[1])
        return self._ok()

    def _cgatt(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self._ok([f"+CGATT: {int(self.attached)}"])
        return self._ok()

    def _cclk(self, kind: str, args: str) -> Result:
        if self.stat not in (1, 5):
            return self._err(30)  # no NITZ without a network
        jst = datetime.fromtimestamp(self.m.network_time(), timezone(timedelta(hours=9)))
        return self._ok([f'+CCLK: "{jst:%y/%m/%d,%H:%M:%S}+36"'])

    # -- packet data -----------------------------------------------------------------
    def _cgdcont(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self._ok(
                [f'+CGDCONT: {cid},"{c.pdp_type}","{c.apn}","0.0.0.0",0,0'
                 for cid, c in sorted(self.contexts.items())]
            )
        if kind == "test":
            return self._ok(['+CGDCONT: (1-15),"IP",,,(0-2),(0-4)'])
        parts = split_args(args)
        cid = int(parts[0])
        if not 1 <= cid <= 15:
            return self._err(50)
        if len(parts) == 1:
            self.contexts.pop(cid, None)
            return self._ok()
        pdp_type = parts[1] or "IP"
        if pdp_type not in ("IP", "IPV6", "IPV4V6"):
            return self._err(50)
        ctx = self.contexts.get(cid)
        if ctx is not None and ctx.params is not None:
            return self._err(3)  # cannot redefine an active context
        self.contexts[cid] = Context(pdp_type, parts[2] if len(parts) > 2 else "")
        return self._ok()

    def _cgact(self, kind: str, args: str) -> Result:

        if kind == "query":
            return self._ok(
                [f"+CGACT: {cid},{int(c.params is not None)}" for cid, c in sorted(self.contexts.items())]
            )
        parts = split_args(args)
        state, cid = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1
        ctx, sim = self.contexts.get(cid), self.sim
        if ctx is None or state not in (0, 1):
            return self._err(50)
        if state == 0:
            if ctx.params is not None and sim is not None:
                self.m.carrier.deactivate(sim.imsi, cid)
            ctx.params = None
            return self._ok(latency=CONTEXT_LATENCY / 2)
        code = self.activate(cid)
        if code is not None:
            return self._err(code, CONTEXT_LATENCY if code != 30 else None)
        return self._ok(latency=CONTEXT_LATENCY)

    def activate(self, cid: int) -> int | None:
        """Bring context ``cid`` up with the carrier: None, or the +CME ERROR code (the
        failure is kept for +CEER)."""

        ctx, sim = self.contexts.get(cid), self.sim
        if ctx is None:
            return 50
        if not self.attached or sim is None:
            self.data.failed(30, None)
            return 30
        if ctx.params is not None:
            return None
        try:
            ctx.params = self.m.carrier.activate(sim.imsi, cid, ctx.apn or sim.apn)
        except CarrierReject as exc:
            code = ESM_TO_CME.get(exc.cause, 148)
            self.data.failed(code, exc.cause)
            return code
        return None

    def _cgpaddr(self, kind: str, args: str) -> Result:
        if kind == "test":  # the cids that are defined
            return self._ok([f"+CGPADDR: ({','.join(map(str, sorted(self.contexts)))})"])
        asked = self._asked_contexts(args)
        if asked is None:
            return self._err(50)
        return self._ok([f'+CGPADDR: {cid},"{ctx.params["address"] if ctx.params else "0.0.0.0"}"'
                         for cid, ctx in asked])

    def _asked_contexts(self, args: str) -> list[tuple[int, Context]] | None:
        """The contexts a read names (all defined ones when it names none); None when a
        named cid is not defined (27.007: ERROR 50, incorrect parameters)."""
        cids = [int(a) for a in split_args(args)] if args else sorted(self.contexts)
        if any(cid not in self.contexts for cid in cids):
            return None
        return [(cid, self.contexts[cid]) for cid in cids]

    def _cgcontrdp(self, kind: str, args: str) -> Result:
        if kind == "test":  # the cids that are active
            active = [cid for cid, c in sorted(self.contexts.items()) if c.params is not None]
            return self._ok([f"+CGCONTRDP: ({','.join(map(str, active))})"])
        asked = self._asked_contexts(args)
        if asked is None:
            return self._err(50)
        lines = []
        for cid, ctx in asked:
            if ctx.params is None:
                continue
            p = ctx.params
            dns = list(p.get("dns", [])) + ["0.0.0.0", "0.0.0.0"]
            lines.append(
                f'+CGCONTRDP: {cid},{BEARER_ID_BASE - 1 + cid},"{ctx.apn}",'
                f'"{p["address"]}.{_mask(int(p["prefix"]))}","{p["gateway"]}",'
                f'"{dns[0]}","{dns[1]}","","",0,0,{int(p.get("mtu", 1500))}'
            )
        return self._ok(lines)

    # -- vSIM extension (docs/vsim-at.md) --------------------------------------------
    def _vsimload(self, kind: str, args: str) -> Result:
        if kind != "set":
            return self._err(50) if kind != "test" else self._ok(
                [f"+VSIMLOAD: ({','.join(map(str, self.m.config.vsim_slots))})"]
            )
        parts = split_args(args)
        if len(parts) != 7:
            return self._err(50)
        slot = int(parts[0])
        iccid, imsi, ki, opc, plmn, apn = parts[1:]
        if slot == SEED_SLOT or slot == self.active_slot:
            return self._err(3)
        if slot not in self.m.config.vsim_slots or not _valid_sim(iccid, imsi, ki, opc, plmn):
            return self._err(50)

        self.slots[slot] = SlotSim(iccid, imsi, bytes.fromhex(ki), bytes.fromhex(opc), plmn, apn)
        self.m.urc(f'+VSIMSTAT: {slot},"LOADED"')
        return self._ok(latency=0.05)

    def _vsimsel(self, kind: str, args: str) -> Result:

        if kind == "query":
            sim = self.sim
            return self._ok([f'+VSIMSEL: {self.active_slot},"{sim.iccid if sim else ""}"'])
        if kind == "test":
            return self._ok([f"+VSIMSEL: ({','.join(map(str, (SEED_SLOT, *self.m.config.vsim_slots)))})"])
        if kind != "set":
            return self._err(50)
        slot = int(args.strip())
        if slot not in self.slots:
            return self._err(10)
        if slot == self.active_slot:
            return self._ok()
        self._detach()
        self._set_stat(0)
        self.active_slot = slot
        self.m.schedule(SLOT_SWITCH_LATENCY, self._after_switch)
        return self._ok(latency=SLOT_SWITCH_LATENCY)

    def _after_switch(self) -> None:
        self.m.urc(f'+VSIMSTAT: {self.active_slot},"ACTIVE"')
        self.reevaluate()

    def _vsimlist(self, kind: str, args: str) -> Result:
        lines = [
            f'+VSIMLIST: {slot},"{s.iccid}","{s.imsi}",{int(slot == self.active_slot)}'
            for slot, s in sorted(self.slots.items())
        ]
        return self._ok(lines)

    def _vsimdel(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self._ok([f"+VSIMDEL: ({','.join(map(str, self.m.config.vsim_slots))})"])
        slot = int(args.strip())
        if slot == SEED_SLOT or slot == self.active_slot:
            return self._err(3)
        if slot not in self.slots:
            return self._err(10)
        del self.slots[slot]
        self.m.urc(f'+VSIMSTAT: {slot},"EMPTY"')
        return self._ok()

    # -- power -----------------------------------------------------------------------
    def power_on(self, boot_urcs: bool = True) -> None:
        """Cold start: volatile state back to defaults; slots and the selection persist."""
        self.echo, self.cmee, self.cfun, self.cops_format = True, 1, 0, 0
        self.ident.reset()
        self.data.reset()
        self.sms.reset()
        self.quectel.reset()
        self.reg_n = {"CREG": 0, "CGREG": 0, "CEREG": 0}
        self.stat, self.reject_cause, self.attached = 0, None, False
        for ctx in self.contexts.values():
            ctx.params = None
        self.simfs.power_on()
        if self.rsim is not None:
            self.rsim.power_on()
        if boot_urcs:
            self.m.urc("RDY")
        if self.m.config.radio_on_at_boot:
            self.cfun = 1
            if boot_urcs:
                self.m.urc("+CFUN: 1")
                self.m.urc(f"+CPIN: {self.simfs.cpin_status()}")
            self.reevaluate()

    def reboot(self) -> None:
        """Lose everything volatile, go quiet for the boot time, then say hello."""

        self.m.reboots += 1
        self.data.reset()  # a data call ends with the power
        self.m._hang_until = 0.0  # a power cycle cures a hung baseband
        self._detach()
        if self.rsim is not None:
            self.rsim.end_session()  # the card loses power with the module
        self.stat, self.cfun = 0, 0
        self.m._queue.clear()
        self.m._busy_until = time.monotonic() + BOOT_LATENCY * self.m.config.time_scale
        self.m.schedule(BOOT_LATENCY, self.power_on)


def _reg_handler(cs: CommandSet, name: str) -> Handler:
    """+CREG/+CGREG/+CEREG share one grammar: =<n> sets URC mode, ? reports."""
    def handler(kind: str, args: str) -> Result:
        if kind == "query":
            return cs._ok([f"+{name}: {cs.reg_n[name]},{cs._reg_fields(name, cs.reg_n[name])}"])
        if kind == "test":
            return cs._ok([f"+{name}: (0-3)"])
        n = int(args.strip() or "0")
        if n not in (0, 1, 2, 3):
            return cs._err(50)
        cs.reg_n[name] = n
        return cs._ok()

    return handler


def _mask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def _valid_sim(iccid: str, imsi: str, ki: str, opc: str, plmn: str) -> bool:
    hex32 = re.compile(r"^[0-9A-Fa-f]{32}$")
    return bool(
        re.fullmatch(r"\d{18,20}F?", iccid)
        and re.fullmatch(r"\d{6,15}", imsi)
        and hex32.match(ki)
        and hex32.match(opc)
        and re.fullmatch(r"\d{5,6}", plmn)
    )

"""SMS and USSD as an EC25 offers them (3GPP TS 27.005, 23.040; 27.007 +CUSD).

Why a data router needs them: carriers tell a SIM that its data cap is used up with a
text message ("you have used your 3 GB; speed is now limited to 128 kbps"), and answer a
balance USSD (``*100#``) with what is left. A router that reads them has evidence of a
throttle that does not depend on measuring the throughput. The lab's carrier sends such
a notice (``pocket-lab sms``); this module receives it the way the modem's host sees it:
stored in the SIM's or the modem's memory, announced with ``+CMTI`` (or routed with
``+CMT``) as ``+CNMI`` asks, read with ``+CMGL``/``+CMGR`` in PDU or text mode, deleted with
``+CMGD``.

PDU mode (``+CMGF=0``, the power-up default) carries SMS-DELIVER TPDUs (TS 23.040 9.2.2.1)
with the service centre address in front, the GSM 7-bit default alphabet when the text
allows it and UCS2 otherwise. Sending (+CMGS) is not offered: the carrier notices come in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from agent.modem.errcodes import CMS_ERRORS
from board.virtual.modem.model import COMMAND_LATENCY, Handler, Result, split_args

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9))
"""The virtual network's time zone (the lab's carriers are Japanese: MCC 440)."""

SMSC = "+819000000100"
"""Service centre address of the virtual network (EF_SMSP); a number that routes nowhere."""

MEMORY_SIZE = {"SM": 50, "ME": 255}
"""Message slots: on the SIM (a USIM's EF_SMS commonly has 30-50 records) and in the
modem (the EC25's "ME" store holds 255)."""
MEMORIES = ("SM", "ME")

STAT_TEXT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")
"""27.005 <stat> 0..3 in text mode; 4 / "ALL" lists them all."""

CMS_MEMORY_FAILURE = 320
CMS_INVALID_INDEX = 321
CMS_MEMORY_FULL = 322
CMS_SMSC_UNKNOWN = 330
CMS_OPERATION_NOT_ALLOWED = 302

USSD_LATENCY = 1.5
"""Seconds from +CUSD's OK to the network's answer: a USSD dialogue round trip to the
HLR/USSD gateway takes one to a few seconds."""
USSD_DCS = 15
"""Data coding scheme of USSD strings: 15 = GSM 7-bit, language unspecified (23.038)."""

DEFAULT_USSD: dict[str, str] = {
    "*100#": "Data plan active. Check your remaining data at *101#.",
    "*101#": "Remaining data: see your plan. Speed limits apply after the cap.",
}
"""What the virtual network answers when its carrier has no ``ussd`` of its own."""

GSM7_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,:;!?'\"()%&+-*/=<>#\n\r")
"""Characters whose GSM 7-bit default alphabet code equals their ASCII code (23.038 6.2.1)."""


@dataclass
class Message:
    """One stored SMS-DELIVER."""

    sender: str
    text: str
    when: datetime
    stat: int = 0  # 0 unread, 1 read


@dataclass
class SmsState:
    """Settings the host changes (volatile) and the ME store (the modem's flash)."""

    cmgf: int = 0
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    cpms: tuple[str, str, str] = ("ME", "ME", "ME")
    csca: str = SMSC
    csmp: tuple[int, int, int, int] = (17, 167, 0, 0)
    cusd: int = 0
    settings: dict[str, int] = field(default_factory=lambda: {"+CLIP": 0, "+CRC": 0, "+CVHU": 0})


# --- PDU encoding (TS 23.040) ---------------------------------------------------------
def _semi_octets(digits: str) -> str:
    padded = digits + ("F" if len(digits) % 2 else "")
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))


def address(number: str, *, smsc: bool = False) -> str:
    """An address field: international (type 0x91) when it starts with ``+``."""
    digits = number.lstrip("+")
    toa = "91" if number.startswith("+") else "81"
    if smsc:  # length in octets, type included
        return f"{(len(digits) + 1) // 2 + 1:02X}{toa}{_semi_octets(digits)}"
    return f"{len(digits):02X}{toa}{_semi_octets(digits)}"


def timestamp(when: datetime) -> str:
    """TP-SCTS: YYMMDDhhmmss and the zone in quarter hours, each as swapped semi-octets."""
    quarters = int((when.utcoffset() or timedelta()).total_seconds() // 900)
    fields = when.strftime("%y%m%d%H%M%S") + f"{abs(quarters):02d}"
    out = _semi_octets(fields)
    if quarters < 0:
        out = out[:-2] + f"{int(out[-2], 16) | 0x8:X}" + out[-1]
    return out


def pack_gsm7(text: str) -> bytes:
    """Septets packed into octets (23.038 6.1.2.1.1)."""
    bits = 0
    nbits = 0
    out = bytearray()
    for ch in text:
        bits |= (ord(ch) & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    return bytes(out)


def deliver_pdu(msg: Message, smsc: str) -> tuple[str, int]:
    """(hex PDU with the SMSC in front, TPDU length in octets) of an SMS-DELIVER."""
    if set(msg.text) <= GSM7_SAFE and len(msg.text) <= 160:
        dcs, udl, ud = "00", len(msg.text), pack_gsm7(msg.text)
    else:
        encoded = msg.text.encode("utf-16-be")[:140]
        dcs, udl, ud = "08", len(encoded), encoded
    tpdu = "04" + address(msg.sender) + "00" + dcs + timestamp(msg.when) + f"{udl:02X}" + ud.hex().upper()
    return address(smsc, smsc=True) + tpdu, len(tpdu) // 2


class SmsCommands:
    """+CMGF, +CSCA, +CSMP, +CPMS, +CNMI, +CMGL, +CMGR, +CMGD, +CUSD and the SMS URCs."""

    def __init__(self, cs: CommandSet):
        self.cs = cs
        self.s = SmsState()
        self.me: dict[int, Message] = {}
        self._sim_stores: dict[str, dict[int, Message]] = {}
        """"SM" memory per ICCID: the messages live on the card."""

    def reset(self) -> None:
        """Power-up: settings back to defaults; the stored messages stay (flash, SIM)."""
        self.s = SmsState()

    def handlers(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "+CMGF": self._cmgf, "+CSCA": self._csca, "+CSMP": self._csmp, "+CPMS": self._cpms,
            "+CNMI": self._cnmi, "+CMGL": self._cmgl, "+CMGR": self._cmgr, "+CMGD": self._cmgd,
            "+CUSD": self._cusd, "+CLAC": self._clac,
        }
        for name in self.s.settings:  # call settings a data-only EC25 still accepts
            table[name] = self._setting(name)
        return table

    def store(self, memory: str) -> dict[int, Message]:
        if memory == "ME":
            return self.me
        sim = self.cs.sim
        return self._sim_stores.setdefault(sim.iccid if sim else "", {})

    # -- delivery (from the carrier) -------------------------------------------------
    def deliver(self, sender: str, text: str, when: datetime | None = None) -> int | None:
        """A message from the network to the active SIM: stored and announced (+CMTI), or
        routed straight to the host (+CMT, when +CNMI mt=2). Returns the index, if stored."""
        msg = Message(sender, text, when or datetime.fromtimestamp(time.time(), JST))
        if self.cs.sim is None:
            LOGGER.warning("SMS for a modem without SIM dropped")
            return None
        mt = self.s.cnmi[1]
        if mt == 2:
            self._route(msg)
            return None
        memory = self.s.cpms[2]
        store = self.store(memory)
        free = [i for i in range(MEMORY_SIZE[memory]) if i not in store]
        if not free:
            LOGGER.warning("SMS store %s full: message dropped", memory)
            return None
        store[free[0]] = msg
        if mt in (1, 3) and self.s.cnmi[0] != 0:
            self.cs.m.urc(f'+CMTI: "{memory}",{free[0]}')
        return free[0]

    def _route(self, msg: Message) -> None:
        if self.s.cmgf == 0:
            pdu, length = deliver_pdu(msg, self.s.csca)
            self.cs.m.send_lines([f"+CMT: ,{length}", pdu], final=False)
        else:
            self.cs.m.send_lines([f'+CMT: "{msg.sender}",,"{self._scts(msg)}"', msg.text], final=False)

    @staticmethod
    def _scts(msg: Message) -> str:
        quarters = int((msg.when.utcoffset() or timedelta()).total_seconds() // 900)
        return f"{msg.when:%y/%m/%d,%H:%M:%S}{quarters:+03d}"

    # -- settings --------------------------------------------------------------------
    def _cmgf(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+CMGF: (0,1)"])
        if kind == "query":
            return self.cs._ok([f"+CMGF: {self.s.cmgf}"])
        if kind != "set" or args.strip() not in ("0", "1"):
            return self._cms(CMS_OPERATION_NOT_ALLOWED) if kind == "exec" else self.cs._err(50)
        self.s.cmgf = int(args)
        return self.cs._ok()

    def _csca(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok()
        if kind == "query":
            if not self.s.csca:
                return self._cms(CMS_SMSC_UNKNOWN)
            toa = 145 if self.s.csca.startswith("+") else 129
            return self.cs._ok([f'+CSCA: "{self.s.csca}",{toa}'])

        number = split_args(args)[0]
        if number and not number.lstrip("+").isdigit():  # "" clears it: +CMS ERROR: 330 then
            return self.cs._err(50)
        self.s.csca = number
        return self.cs._ok()

    def _csmp(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok()
        if kind == "query":
            return self.cs._ok(["+CSMP: " + ",".join(map(str, self.s.csmp))])
        values = [int(v) for v in args.split(",")]
        self.s.csmp = tuple((values + list(self.s.csmp))[:4])  # type: ignore[assignment]
        return self.cs._ok()

    def _cpms(self, kind: str, args: str) -> Result:
        mems = "(" + ",".join(f'"{m}"' for m in MEMORIES) + ")"
        if kind == "test":
            return self.cs._ok([f"+CPMS: {mems},{mems},{mems}"])
        if kind == "query":
            return self.cs._ok(["+CPMS: " + ",".join(f'"{m}",{self._usage(m)}' for m in self.s.cpms)])
        if kind != "set":
            return self.cs._err(50)

        chosen = [m.upper() for m in split_args(args) if m]
        if not chosen or len(chosen) > 3 or any(m not in MEMORIES for m in chosen):
            return self._cms(CMS_OPERATION_NOT_ALLOWED)
        self.s.cpms = tuple(chosen + list(self.s.cpms[len(chosen):]))  # type: ignore[assignment]
        return self.cs._ok(["+CPMS: " + ",".join(self._usage(m) for m in self.s.cpms)])

    def _usage(self, memory: str) -> str:
        return f"{len(self.store(memory))},{MEMORY_SIZE[memory]}"

    def _cnmi(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"])
        if kind == "query":
            return self.cs._ok(["+CNMI: " + ",".join(map(str, self.s.cnmi))])
        if kind != "set":
            return self.cs._err(50)
        values = [int(v) if v.strip() else 0 for v in args.split(",")]
        values = (values + [0] * 5)[:5]
        limits = (2, 3, 2, 2, 1)
        if any(not 0 <= v <= hi for v, hi in zip(values, limits, strict=True)):
            return self._cms(CMS_OPERATION_NOT_ALLOWED)
        self.s.cnmi = tuple(values)  # type: ignore[assignment]
        return self.cs._ok()

    def _setting(self, name: str) -> Handler:
        def handler(kind: str, args: str) -> Result:
            if kind == "test":
                return self.cs._ok([f"{name}: (0,1)"])
            if kind == "query":
                return self.cs._ok([f"{name}: {self.s.settings[name]}"])
            if kind != "set" or args.strip() not in ("0", "1"):
                return self.cs._err(50)
            self.s.settings[name] = int(args)
            return self.cs._ok()

        return handler

    def _clac(self, kind: str, args: str) -> Result:
        """Every command this modem knows, one a line (the EC25's +CLAC form)."""
        basic = ["ATD", "ATE", "ATH", "ATI", "ATO", "ATQ", "ATS", "ATV", "ATX", "ATZ", "AT&C", "AT&D", "AT&F", "AT&W"]
        return self.cs._ok(basic + [f"AT{name}" for name in sorted(self.cs.table)])

    # -- reading and deleting --------------------------------------------------------
    def _cms(self, code: int) -> Result:

        if self.cs.cmee == 0:
            return ["ERROR"], COMMAND_LATENCY
        text = CMS_ERRORS.get(code, str(code)) if self.cs.cmee == 2 else str(code)
        return [f"+CMS ERROR: {text}"], COMMAND_LATENCY

    def _ready(self) -> Result | None:
        if self.cs.sim is None:
            return self._cms(310)
        if not self.cs.simfs.ready:
            return self._cms(311)
        return None

    def _entry(self, index: int, msg: Message) -> list[str]:
        if self.s.cmgf == 0:
            pdu, length = deliver_pdu(msg, self.s.csca)
            return [f"{index},{msg.stat},,{length}", pdu]
        return [f'{index},"{STAT_TEXT[msg.stat]}","{msg.sender}",,"{self._scts(msg)}"', msg.text]

    def _cmgl(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+CMGL: (0-4)" if self.s.cmgf == 0 else
                                '+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")'])
        if (err := self._ready()) is not None:
            return err
        wanted = args.strip().strip('"').upper() or ("4" if self.s.cmgf == 0 else "ALL")
        names = {str(i): i for i in range(4)} if self.s.cmgf == 0 else {t: i for i, t in enumerate(STAT_TEXT)}
        all_key = "4" if self.s.cmgf == 0 else "ALL"
        if wanted != all_key and wanted not in names:
            return self.cs._err(50)
        lines: list[str] = []
        for index, msg in sorted(self.store(self.s.cpms[0]).items()):
            if wanted == all_key or names[wanted] == msg.stat:
                first, body = self._entry(index, msg)
                lines += ["+CMGL: " + first, body]
                msg.stat = max(msg.stat, 1)  # listing reads it (27.005 3.4.2)
        return self.cs._ok(lines)

    def _cmgr(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok()
        if (err := self._ready()) is not None:
            return err
        index = int(args)
        msg = self.store(self.s.cpms[0]).get(index)
        if msg is None:
            return self._cms(CMS_INVALID_INDEX)
        first, body = self._entry(index, msg)
        first = first.split(",", 1)[1]  # +CMGR has no index
        msg.stat = max(msg.stat, 1)
        return self.cs._ok(["+CMGR: " + first, body])

    def _cmgd(self, kind: str, args: str) -> Result:
        store_name = self.s.cpms[0]
        if kind == "test":
            return self.cs._ok([f"+CMGD: ({','.join(map(str, sorted(self.store(store_name))))}),(0-4)"])
        if (err := self._ready()) is not None:
            return err
        parts = [int(p) for p in args.split(",")]
        index, flag = parts[0], parts[1] if len(parts) > 1 else 0
        store = self.store(store_name)
        if flag == 0:
            if index not in store:
                return self._cms(CMS_INVALID_INDEX)
            del store[index]
        elif 1 <= flag <= 4:  # 1 read, 2 read+sent, 3 read+sent+unsent, 4 all
            keep = {1: {0, 2, 3}, 2: {0, 2}, 3: {0}, 4: set()}[flag]
            for i in [i for i, m in store.items() if m.stat not in keep]:
                del store[i]
        else:
            return self.cs._err(50)
        return self.cs._ok()

    # -- USSD ------------------------------------------------------------------------
    def _cusd(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+CUSD: (0-2)"])
        if kind == "query":
            return self.cs._ok([f"+CUSD: {self.s.cusd}"])

        parts = split_args(args) if kind == "set" else ["0"]
        n = int(parts[0] or 0)
        if n not in (0, 1, 2):
            return self.cs._err(50)
        if n == 2:
            return self.cs._ok()  # cancel the session: nothing is pending here
        self.s.cusd = n
        if len(parts) < 2 or not parts[1]:
            return self.cs._ok()
        if self.cs.stat not in (1, 5):
            return self.cs._err(30)
        code = parts[1]
        sim = self.cs.sim
        ask = getattr(self.cs.m.carrier, "ussd", None)
        answer = ask(sim.imsi if sim else "", code) if ask is not None else DEFAULT_USSD.get(code)
        line = f'+CUSD: 0,"{answer}",{USSD_DCS}' if answer is not None else "+CUSD: 4"
        self.cs.m.schedule(USSD_LATENCY, lambda: self._ussd_answer(line))
        return self.cs._ok()

    def _ussd_answer(self, line: str) -> None:
        if self.s.cusd == 1:  # the host may have turned result codes off meanwhile
            self.cs.m.urc(line)

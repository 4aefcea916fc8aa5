"""Identity, capabilities and the settings a modem manager reads first, as a Quectel EC25 answers.

ModemManager decides what a modem is from a handful of commands before it does anything
else: ``+GCAP`` (is it a 3GPP modem at all), ``+WS46=?`` (which radio technologies; the
list must hold an E-UTRAN value or the modem is taken for GSM/UMTS only and ``+CEREG`` is
never asked), ``+CIND=?`` (which indicator is the signal), ``+CGEREP=?``, ``+CTZU=?``,
``+CEMODE?``, ``+CLCK=?`` (facility locks), ``+CNUM``, ``+CPOL``. Every one answered
``ERROR`` before this module. Each answer here has the shape of the EC25's own (EC25 AT
Commands Manual V1.3 and 3GPP TS 27.007), including the ``=?`` test forms, which list
the *ranges* a command accepts rather than current values.

``TEST_FORMS`` also gives the test form of the commands ``modem_cmds.py`` implements, so
that every command of the virtual modem answers ``=?`` with ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from board.virtual.modem.model import Handler, Result, split_args

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

EC25_IDENTITY = {"manufacturer": "Quectel", "model": "EC25", "revision": "EC25EFAR06A06M4G"}
"""``ModemConfig`` fields that make the virtual modem name itself as an EC25 (a common
EC25-E firmware); ``pocket-lab modem --ec25`` and the peer checks use them."""

QGMR_SUFFIX = "_01.001.01.001"
"""+QGMR is +CGMR plus the application build, e.g. EC25EFAR06A06M4G_01.001.01.001."""

WS46_MODES = (12, 22, 25, 28, 29, 30, 31)
"""27.007 +WS46 values of a GSM/WCDMA/LTE modem: 12 GSM, 22 UTRAN, 25 all 3GPP, 28 E-UTRAN,
29 GERAN+UTRAN, 30 GERAN+E-UTRAN, 31 UTRAN+E-UTRAN. ModemManager reads LTE from 25/28/30/31."""
WS46_DEFAULT = 25
"""Automatic: all 3GPP radio access technologies (the EC25's factory nwscanmode 0)."""

CHARSETS = ("GSM", "IRA", "UCS2")
"""+CSCS sets of the EC25; "GSM" is its power-up default."""

CIND_INDICATORS = (
    ("battchg", "0-5"), ("signal", "0-5"), ("service", "0-1"), ("call", "0-1"),
    ("roam", "0-1"), ("smsfull", "0-1"), ("GPRS coverage", "0-1"), ("callsetup", "0-3"),
)
"""+CIND=? of the EC25, in order: ``+CIEV: 2,<bars>`` is the signal indicator."""

CLCK_FACILITIES = ("SC", "AO", "OI", "OX", "AI", "IR", "AB", "AG", "AC", "PN", "PU", "PP", "PC", "FD")
"""+CLCK=? facilities of the EC25 (SIM lock, call barrings, personalisation, FDN)."""

CEMODE_DEFAULT = 2
"""27.007 +CEMODE 2: CS/PS mode 2 (data centric), what a data-only EC25 reports."""

CNUM_PREFIX = "+8180"
"""The MSISDN shown by +CNUM: a Japanese mobile number (+81 80 ...) made from the IMSI's
last eight digits, so each vSIM profile has its own stable number."""

CPOL_MAX = 8
"""Entries of EF_PLMNwAcT the virtual SIM offers (a real USIM has 8 to 40)."""

TEST_FORMS: dict[str, list[str]] = {
    "+CGMI": [], "+CGMM": [], "+CGMR": [], "+CGSN": [], "+GMI": [], "+GMM": [], "+GMR": [],
    "+GSN": [], "+QGMR": [], "+GCAP": [], "+CIMI": [], "+CCID": [], "+ICCID": [], "+QCCID": [],
    "+CPIN": [], "+CCLK": [], "+CNUM": [], "+VSINR": [], "+VSIMLIST": [], "+CEER": [], "+CLAC": [], "+CRSM": [], "+CSIM": [], "+QNWINFO": [], "+QSPN": [],
    "+CMEE": ["+CMEE: (0-2)"],
    "+CFUN": ["+CFUN: (0,1,4),(0-1)"],
    "+CSQ": ["+CSQ: (0-31,99),(0-7,99)"],
    "+CESQ": ["+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)"],
    "+CGACT": ["+CGACT: (0,1)"],
    "+CGATT": ["+CGATT: (0,1)"],
    "+CGDCONT": [
        '+CGDCONT: (1-15),"IP",,,(0-2),(0-4),(0-1),(0-1)',
        '+CGDCONT: (1-15),"IPV6",,,(0-2),(0-4),(0-1),(0-1)',
        '+CGDCONT: (1-15),"IPV4V6",,,(0-2),(0-4),(0-1),(0-1)',
    ],
    "+WS46": [f"+WS46: ({','.join(map(str, WS46_MODES))})"],
    "+CSCS": ["+CSCS: (" + ",".join(f'"{c}"' for c in CHARSETS) + ")"],
    "+CIND": ["+CIND: " + ",".join(f'("{n}",({r}))' for n, r in CIND_INDICATORS)],
    "+CMER": ["+CMER: (0-3),(0),(0),(0-2),(0-1)"],
    "+CGEREP": ["+CGEREP: (0-2),(0-1)"],
    "+CTZU": ["+CTZU: (0,1,3)"],
    "+CTZR": ["+CTZR: (0-2)"],
    "+CEMODE": ["+CEMODE: (0-3)"],
    "+CLCK": ["+CLCK: (" + ",".join(f'"{f}"' for f in CLCK_FACILITIES) + ")"],
    "+CPOL": [f"+CPOL: (1-{CPOL_MAX}),(0-2)"],
    "+CPLS": ["+CPLS: (0-2)"],
    "+CPAS": ["+CPAS: (0-5)"],
    "+IFC": ["+IFC: (0,2),(0,2)"],
    "+CLCC": [],
}
"""``AT<cmd>=?`` answers (information lines; OK follows). An empty list is a test form
that only says the command exists, as 27.007 gives for action commands without values."""


@dataclass
class Settings:
    """What these commands set; volatile (lost on reboot) like the EC25's own."""

    ws46: int = WS46_DEFAULT
    cscs: str = "GSM"
    cmer: tuple[int, int] = (0, 0)
    """(mode, ind) of +CMER: whether +CIEV indicator URCs are wanted."""
    cgerep: tuple[int, int] = (1, 0)
    """(mode, bfr). The virtual modem has always sent +CGEV URCs unasked, so its power-up
    state says mode 1 (an EC25's is 0); ``AT+CGEREP=0`` really silences them."""
    ctzu: int = 0
    ctzr: int = 0
    cemode: int = CEMODE_DEFAULT
    cpls: int = 0
    cpol: dict[int, str] = field(default_factory=dict)
    ifc: tuple[int, int] = (0, 0)
    """+IFC flow control (DCE by DTE, DTE by DCE): none, the EC25's default; a pty has no
    RTS/CTS, so 2 (hardware) is accepted and changes nothing."""


class IdentityCommands:
    """Handlers for the commands above, over one ``CommandSet``'s state."""

    def __init__(self, cs: CommandSet):
        self.cs = cs
        self.s = Settings()
        self._last: list[int] | None = None
        """Indicator values last reported (or read at +CMER), for +CIEV on change."""

    def reset(self) -> None:
        """Power-up defaults (reboot, ``ATZ``)."""
        self.s = Settings()

    def handlers(self) -> dict[str, Handler]:
        return {
            "+GCAP": self._gcap, "+GMI": self._gmi, "+GMM": self._gmm, "+GMR": self._gmr,
            "+GSN": self._gsn, "+QGMR": self._qgmr, "+WS46": self._ws46, "+CSCS": self._cscs,
            "+CIND": self._cind, "+CMER": self._cmer, "+CGEREP": self._cgerep,
            "+CTZU": self._ctzu, "+CTZR": self._ctzr, "+CEMODE": self._cemode,
            "+CNUM": self._cnum, "+CPOL": self._cpol, "+CPLS": self._cpls, "+CPAS": self._cpas,
            "+IFC": self._ifc, "+CLCC": self._clcc,
        }

    # -- identity --------------------------------------------------------------------
    def _gcap(self, kind: str, args: str) -> Result:
        return self.cs._ok(["+GCAP: +CGSM"])  # a 3GPP (GSM-family) modem; LTE via +WS46

    def _gmi(self, kind: str, args: str) -> Result:
        return self.cs._ok([self.cs.m.config.manufacturer])

    def _gmm(self, kind: str, args: str) -> Result:
        return self.cs._ok([self.cs.m.config.model])

    def _gmr(self, kind: str, args: str) -> Result:
        return self.cs._ok([self.cs.m.config.revision])

    def _gsn(self, kind: str, args: str) -> Result:
        return self.cs._ok([self.cs.m.config.imei])

    def _qgmr(self, kind: str, args: str) -> Result:
        return self.cs._ok([self.cs.m.config.revision + QGMR_SUFFIX])

    def _ws46(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self.cs._ok([f"+WS46: {self.s.ws46}"])
        if kind == "set":
            mode = int(args)
            if mode not in WS46_MODES:
                return self.cs._err(50)
            self.s.ws46 = mode
            self.cs.reevaluate()  # without E-UTRAN the LTE cell is out of reach
            return self.cs._ok()
        return self.cs._err(50)

    def _cscs(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self.cs._ok([f'+CSCS: "{self.s.cscs}"'])
        if kind == "set":
            name = args.strip().strip('"').upper()
            if name not in CHARSETS:
                return self.cs._err(50)
            self.s.cscs = name
            return self.cs._ok()
        return self.cs._err(50)

    # -- indicators and event reporting ----------------------------------------------
    def indicators(self) -> list[int]:
        """Current values in +CIND order (battery full: a router is mains powered)."""
        cs = self.cs
        return [5, cs.signal_bars(), int(cs.stat in (1, 5)), 0, int(cs.stat == 5), 0, int(cs.attached), 0]

    def _cind(self, kind: str, args: str) -> Result:
        if kind != "query":
            return self.cs._err(4)  # the EC25 lets no indicator be set
        return self.cs._ok(["+CIND: " + ",".join(map(str, self.indicators()))])

    def report_indicators(self) -> None:
        """``+CIEV: <index>,<value>`` for each indicator that changed since the last report,
        when +CMER asks for them (mode and ind not 0); how a modem manager learns of a
        signal or service change without polling."""
        values = self.indicators()
        last, self._last = self._last, values
        mode, ind = self.s.cmer
        if mode == 0 or ind == 0 or last is None:
            return
        for index, (old, new) in enumerate(zip(last, values, strict=True), start=1):
            if old != new:
                self.cs.m.urc(f"+CIEV: {index},{new}")

    def _cmer(self, kind: str, args: str) -> Result:
        if kind == "query":
            mode, ind = self.s.cmer
            return self.cs._ok([f"+CMER: {mode},0,0,{ind},0"])
        if kind != "set":
            return self.cs._err(50)
        parts = [p.strip() for p in args.split(",")]
        mode = int(parts[0] or 0)
        ind = int(parts[3]) if len(parts) > 3 and parts[3] else 0
        if not 0 <= mode <= 3 or not 0 <= ind <= 2:
            return self.cs._err(50)
        self.s.cmer = (mode, ind)
        self._last = self.indicators()  # report changes from now on
        return self.cs._ok()

    def _cgerep(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self.cs._ok([f"+CGEREP: {self.s.cgerep[0]},{self.s.cgerep[1]}"])
        if kind != "set":
            return self.cs._err(50)
        parts = [int(p) for p in args.split(",") if p.strip()]
        mode, bfr = (parts + [self.s.cgerep[1]])[:2] if parts else (0, 0)
        if not 0 <= mode <= 2 or bfr not in (0, 1):
            return self.cs._err(50)
        self.s.cgerep = (mode, bfr)
        return self.cs._ok()

    def cgev_enabled(self) -> bool:
        """Whether +CGEV URCs go to the port (+CGEREP mode 1 or 2)."""
        return self.s.cgerep[0] != 0

    def _ctzu(self, kind: str, args: str) -> Result:
        return self._simple(kind, args, "+CTZU", "ctzu", (0, 1, 3))

    def _ctzr(self, kind: str, args: str) -> Result:
        return self._simple(kind, args, "+CTZR", "ctzr", (0, 1, 2))

    def _cemode(self, kind: str, args: str) -> Result:
        return self._simple(kind, args, "+CEMODE", "cemode", (0, 1, 2, 3))

    def _cpls(self, kind: str, args: str) -> Result:
        return self._simple(kind, args, "+CPLS", "cpls", (0, 1, 2))

    def _simple(self, kind: str, args: str, name: str, attr: str, allowed: tuple[int, ...]) -> Result:
        """One integer setting: ``?`` reports it, ``=<n>`` sets it when allowed."""
        if kind == "query":
            return self.cs._ok([f"{name}: {getattr(self.s, attr)}"])
        if kind != "set":
            return self.cs._err(50)
        value = int(args)
        if value not in allowed:
            return self.cs._err(50)
        setattr(self.s, attr, value)
        return self.cs._ok()

    # -- subscriber ------------------------------------------------------------------
    def _cnum(self, kind: str, args: str) -> Result:
        sim = self.cs.sim
        if sim is None:
            return self.cs._err(10)
        return self.cs._ok([f'+CNUM: "","{msisdn(sim.imsi)}",145'])

    def _cpas(self, kind: str, args: str) -> Result:
        return self.cs._ok(["+CPAS: 0"])  # ready: no call in progress

    def _ifc(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self.cs._ok([f"+IFC: {self.s.ifc[0]},{self.s.ifc[1]}"])
        if kind != "set":
            return self.cs._err(50)
        values = [int(v) for v in args.split(",")]
        if len(values) != 2 or any(v not in (0, 2) for v in values):
            return self.cs._err(50)
        self.s.ifc = (values[0], values[1])
        return self.cs._ok()

    def _clcc(self, kind: str, args: str) -> Result:
        return self.cs._ok()  # a data-only modem has no calls to list

    def _cpol(self, kind: str, args: str) -> Result:
        sim = self.cs.sim
        if sim is None:
            return self.cs._err(10)
        if kind == "query":
            entries = {1: sim.plmn, **self.s.cpol}
            # <index>,<format 2 numeric>,<oper>,GSM,GSM compact,UTRAN,E-UTRAN access tech
            return self.cs._ok([f'+CPOL: {i},2,"{op}",1,0,1,1' for i, op in sorted(entries.items()) if op])
        if kind != "set":
            return self.cs._err(50)

        parts = split_args(args)
        if not parts[0]:  # "AT+CPOL=,2": only the format of the read answer
            return self.cs._ok() if len(parts) > 1 and parts[1] in ("0", "1", "2") else self.cs._err(50)
        index = int(parts[0])
        if not 1 <= index <= CPOL_MAX:
            return self.cs._err(21)  # invalid index
        oper = parts[2] if len(parts) > 2 else ""
        if oper and not (oper.isdigit() and len(oper) in (5, 6)):
            return self.cs._err(50)
        self.s.cpol[index] = oper
        return self.cs._ok()


def msisdn(imsi: str) -> str:
    """The virtual SIM's phone number (see ``CNUM_PREFIX``)."""
    return CNUM_PREFIX + imsi[-8:]

"""The Quectel status commands an EC25 user types first: +QNWINFO, +QCSQ, +QSPN, +QINISTAT,
+QSIMSTAT and +QCFG="nwscanmode" (EC25 AT Commands Manual).

27.007 answers "is it registered" and "how strong"; the vendor commands answer what a
field engineer asks next: which band and channel, the LTE SINR, the network's own name
for itself, whether the SIM finished initialising. Answers follow the radio and the
active SIM of the virtual modem, so they agree with +CEREG, +CESQ and +COPS.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from board.virtual.modem.model import Handler, Result, split_args

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

LTE_BAND = "LTE BAND 1"
LTE_EARFCN = 300
"""The virtual cell: band 1 (2100 MHz, the band every Japanese operator runs), downlink
EARFCN 300 (band 1 covers 0-599)."""

RSSI_OVER_RSRP_DB = 28
"""LTE RSSI over RSRP for a full 10 MHz carrier: 10 log10(12 x 50 resource blocks)."""

SINR_STEPS_PER_DB = 5
SINR_OFFSET_DB = 20
"""+QCSQ reports SINR as 0..250 for -20..+30 dB: value = (dB + 20) x 5."""

INIT_DONE = 7
"""+QINISTAT bits: 1 CPIN ready, 2 SMS initialised, 4 phonebook initialised."""

NWSCANMODES = (0, 1, 2, 3)
"""+QCFG="nwscanmode": 0 automatic, 1 GSM only, 2 UMTS only, 3 LTE only."""


class QuectelCommands:
    """+QNWINFO, +QCSQ, +QSPN, +QINISTAT, +QSIMSTAT, +QCFG over one ``CommandSet``."""

    def __init__(self, cs: CommandSet):
        self.cs = cs
        self.nwscanmode = 0
        self.simstat_urc = 0

    def reset(self) -> None:
        """Power-up: the URC switch is volatile; nwscanmode is stored (NV) and stays."""
        self.simstat_urc = 0

    def handlers(self) -> dict[str, Handler]:
        return {"+QNWINFO": self._qnwinfo, "+QCSQ": self._qcsq, "+QSPN": self._qspn,
                "+QINISTAT": self._qinistat, "+QSIMSTAT": self._qsimstat, "+QCFG": self._qcfg}

    def _in_service(self) -> bool:
        return self.cs.cfun == 1 and self.cs.stat in (1, 5)

    def _qnwinfo(self, kind: str, args: str) -> Result:
        sim = self.cs.sim
        if not self._in_service() or sim is None:
            return self.cs._ok(["+QNWINFO: No Service"])
        return self.cs._ok([f'+QNWINFO: "FDD LTE","{sim.plmn}","{LTE_BAND}",{LTE_EARFCN}'])

    def _qcsq(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(['+QCSQ: ("NOSERVICE","GSM","WCDMA","LTE")'])
        if self.cs.cfun != 1 or not self.cs.m.conditions.registered:
            return self.cs._ok(['+QCSQ: "NOSERVICE"'])
        c = self.cs.m.conditions
        sinr = int(max(0, min(250, round((c.sinr_db + SINR_OFFSET_DB) * SINR_STEPS_PER_DB))))
        rssi = round(c.rsrp_dbm) + RSSI_OVER_RSRP_DB
        return self.cs._ok([f'+QCSQ: "LTE",{rssi},{round(c.rsrp_dbm)},{sinr},{round(c.rsrq_db)}'])

    def _qspn(self, kind: str, args: str) -> Result:
        sim = self.cs.sim
        if not self._in_service() or sim is None:
            return self.cs._err(30)
        name = self.cs.m.config.operator_name
        short = name.split()[0]
        return self.cs._ok([f'+QSPN: "{name}","{short}","{name}",0,"{sim.plmn}"'])

    def _qinistat(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+QINISTAT: (0-7)"])
        return self.cs._ok([f"+QINISTAT: {INIT_DONE if self.cs.simfs.ready else 0}"])

    def _qsimstat(self, kind: str, args: str) -> Result:
        if kind == "test":
            return self.cs._ok(["+QSIMSTAT: (0,1)"])
        if kind == "query":
            return self.cs._ok([f"+QSIMSTAT: {self.simstat_urc},{int(self.cs.sim is not None)}"])
        if kind != "set" or args.strip() not in ("0", "1"):
            return self.cs._err(50)
        self.simstat_urc = int(args)
        return self.cs._ok()

    def _qcfg(self, kind: str, args: str) -> Result:
        """Only "nwscanmode" of the EC25's many +QCFG settings; others are refused."""
        if kind == "test":
            return self.cs._ok(['+QCFG: "nwscanmode",(0-3),(0,1)'])

        parts = split_args(args) if kind == "set" else []
        if not parts or parts[0].lower() != "nwscanmode":
            return self.cs._err(50)
        if len(parts) == 1:
            return self.cs._ok([f'+QCFG: "nwscanmode",{self.nwscanmode}'])
        mode = int(parts[1])
        if mode not in NWSCANMODES:
            return self.cs._err(50)
        self.nwscanmode = mode
        self.cs.reevaluate()
        return self.cs._ok()

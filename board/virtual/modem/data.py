"""Data calls as a real modem offers them: ``ATD*99***<cid>#``, ``+CEER``, ``+QNETDEVCTL``.

An EC25 offers two ways to carry data. The router way, which the virtual board models
(its data path is a network interface, ``wwan0``), brings a context up with ``+CGACT`` or
Quectel's ``+QNETDEVCTL`` and moves the packets on the network interface. The old way dials
``ATD*99***<cid>#`` (27.007 10.2.1.1, the GPRS service code) on a port that speaks PPP,
answers ``CONNECT`` and the port carries PPP frames from then on. Whether the AT port
accepts the dial is a property of the board: ``ModemConfig.ppp_on_at_port``. When it does
not (the default: the AT port is not the EC25's PPP port, ttyUSB3) the dial fails as a
modem's failed data call does, ``NO CARRIER``, and ``+CEER`` says why.

In online data mode the virtual modem does not speak PPP (no LCP): it swallows what the
host sends until the ``+++`` escape (V.250 6.3.6: the three characters between guard
times; here: the three characters ending a write), then answers ``OK`` in command mode; ``ATO`` returns to data mode, ``ATH``
hangs up (``NO CARRIER`` is not sent for a hang-up the host asked for: ``OK``).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from agent.modem.errcodes import CME_ERRORS
from board.virtual.modem.model import COMMAND_LATENCY, CONTEXT_LATENCY, Handler, Result

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

GPRS_DIAL = re.compile(r"^[TP]?\*99(?:\*\*\*(\d+))?#$", re.IGNORECASE)
"""27.007 10.2.1.1: ``D*99[*[<called_address>][*[<L2P>][*[<cid>]]]]#``; the short forms
routers and ModemManager send are ``*99#`` (cid 1) and ``*99***<cid>#``."""

CONNECT_RATE = 150_000_000
"""Bits/s in the CONNECT line: the EC25's Cat 4 downlink peak (150 Mbit/s)."""

ESCAPE = b"+++"
"""V.250 escape sequence (S2 = 43, '+', three times)."""

NO_REPORT = "No report available"
"""+CEER before any failure (the text real Qualcomm-based modems give)."""
NOT_PPP_PORT = "PPP is not offered on this port; use the network interface (+QNETDEVCTL/+CGACT)"


class DataCommands:
    """Dial, hang-up, online data mode, +CEER and +QNETDEVCTL over one ``CommandSet``."""

    def __init__(self, cs: CommandSet):
        self.cs = cs
        self.ceer = NO_REPORT
        self.call_cid: int | None = None
        """The cid of the PPP call in progress (also while escaped to command mode)."""
        self.netdev: dict[int, int] = {}
        """+QNETDEVCTL: cid -> urc_en, for the contexts it brought up."""

    def reset(self) -> None:
        """Power-up: no call, no report; the port back in command mode."""
        self.ceer, self.call_cid, self.netdev = NO_REPORT, None, {}
        self.cs.sink = None

    def handlers(self) -> dict[str, Handler]:
        return {"+CEER": self._ceer, "+QNETDEVCTL": self._qnetdevctl}

    def failed(self, cme: int, esm_cause: int | None) -> None:
        """Remember why the last data request failed (for +CEER)."""
        text = CME_ERRORS.get(cme, "unspecified GPRS error")
        self.ceer = f"{text} (ESM cause {esm_cause})" if esm_cause is not None else text

    def _ceer(self, kind: str, args: str) -> Result:
        return self.cs._ok([f'+CEER: "{self.ceer}"'])

    # -- ATD / ATH / ATO -------------------------------------------------------------
    def dial(self, dial_string: str) -> Result:
        """``ATD<dial string>``: only the GPRS service code is a call this modem makes."""

        m = GPRS_DIAL.match(dial_string.strip())
        if m is None:
            self.ceer = "voice and circuit-switched calls: this is a data-only modem"
            return ["NO CARRIER"], CONTEXT_LATENCY
        cid = int(m.group(1) or 1)
        if not self.cs.m.config.ppp_on_at_port:
            self.ceer = NOT_PPP_PORT
            return ["NO CARRIER"], CONTEXT_LATENCY
        if cid not in self.cs.contexts:
            self.failed(143, None)  # unknown PDP context
            return ["NO CARRIER"], CONTEXT_LATENCY
        if self.cs.activate(cid) is not None:
            return ["NO CARRIER"], CONTEXT_LATENCY
        self.call_cid = cid
        self.cs.sink = self._online
        return [f"CONNECT {CONNECT_RATE}"], CONTEXT_LATENCY

    def _online(self, data: bytes) -> bytes:
        """Online data mode: swallow the host's bytes until the +++ escape. The guard time
        after it is modelled as "the three characters end what the host wrote"."""
        if data.endswith(ESCAPE):
            self.cs.sink = None
            self.cs.m.send_lines(["OK"])
        return b""

    def hangup(self) -> Result:
        if self.call_cid is not None:
            cid, self.call_cid = self.call_cid, None
            self.cs.sink = None
            ctx, sim = self.cs.contexts.get(cid), self.cs.sim
            if ctx is not None and ctx.params is not None and sim is not None:
                self.cs.m.carrier.deactivate(sim.imsi, cid)
                ctx.params = None
        return self.cs._ok()

    def online(self) -> Result:
        if self.call_cid is None:
            return ["NO CARRIER"], 0.0
        self.cs.sink = self._online
        return [f"CONNECT {CONNECT_RATE}"], 0.0

    # -- +QNETDEVCTL -----------------------------------------------------------------
    def _qnetdevctl(self, kind: str, args: str) -> Result:
        """Quectel's "bring the network interface up on cid": ``=<op>,<cid>[,<urc_en>]``,
        op 1 connect, 0 disconnect; ``?`` lists the contexts it manages with their state."""

        if kind == "test":
            return self.cs._ok(["+QNETDEVCTL: (0-3),(1-15),(0,1)"])
        if kind == "query":
            return self.cs._ok([
                f"+QNETDEVCTL: 1,{cid},{urc},{int(self.cs.contexts[cid].params is not None)}"
                for cid, urc in sorted(self.netdev.items()) if cid in self.cs.contexts
            ])
        if kind != "set":
            return self.cs._err(50)
        parts = [int(p) for p in args.split(",")]
        op, cid, urc = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
        if op not in (0, 1) or cid not in self.cs.contexts or urc not in (0, 1):
            return self.cs._err(50)
        if op == 0:
            self.netdev.pop(cid, None)
            return self.cs._cgact("set", f"0,{cid}")
        code = self.cs.activate(cid)
        if code is not None:
            return self.cs._err(code, CONTEXT_LATENCY)
        self.netdev[cid] = urc
        if urc:
            self.cs.m.schedule_after_answer(COMMAND_LATENCY, lambda: self.cs.m.urc(f"+QNETDEVSTATUS: {cid}"))
        return self.cs._ok(latency=CONTEXT_LATENCY)

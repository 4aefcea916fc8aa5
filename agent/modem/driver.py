"""The modem driver: async operations in the user's words, over an ``AtChannel``.

``Modem`` sends 27.007 commands and hands the answers to the pure parsers of
``parse/``; what differs between basebands (vSIM, SINR, ICCID command, reset) comes
from the dialect named by the board profile. The driver never interprets radio state
beyond parsing: deciding what a registration or a signal *means* is the health
detector's job.

An answer a parser cannot read raises ``ParseError`` with the raw text, and is logged
once per command (a field log shows it without flooding on every poll).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from agent.errors import AtCommandError, ModemError, ParseError, PortClosed
from agent.modem import codes, parse
from agent.modem.at import DEFAULT_BAUD, AtChannel, AtResponse, open_channel
from agent.modem.dialects import Dialect, get_dialect
from agent.modem.rsimhost import RemoteSimHost
from agent.modem.rsimslots import HostSlots
from agent.sim import SimProfile

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

INIT_ATTEMPTS = 5
"""Tries of the start-up commands while the modem answers "busy" (+CME ERROR 14/515):
a baseband that just booted rejects commands for a few seconds while its SIM task
starts."""
INIT_BACKOFF = 0.5
"""Seconds between start-up tries, doubled each time (0.5 + 1 + 2 + 4 = 7.5 s max),
long enough to cover a Quectel's post-RDY SIM initialisation."""
BUSY_CODES = frozenset({14, 515})
"""27.007 14 "SIM busy"; 515 Qualcomm/Quectel "please wait, init in progress"."""
READY_TIMEOUT = 30.0
"""After a reset, how long to wait for the modem to say RDY / answer AT again (an EC25
reboots in ~12 s; USB re-enumeration can add as much again)."""
READY_POLL = 0.5
"""Interval of the AT probe while waiting for a rebooted modem that prints no RDY."""
RADIO_OFF_FUN = 4
"""+CFUN=4 (RF off, SIM still readable) rather than 0: a vSIM can still be loaded and
the SIM queried while the radio is down; 27.007 §8.2."""


# --- which cid for an APN: a decision the driver makes from two readings ------------

@dataclass(frozen=True)
class CidChoice:
    """Which cid to use for an APN, and whether that reuses or overwrites a defined context."""

    cid: int
    reuses_existing: bool
    overwrites_existing: bool


_OPERATOR_SUFFIX = re.compile(r"\.mnc\d+\.mcc\d+\.gprs$", re.IGNORECASE)


def same_apn(a: str | None, b: str | None) -> bool:
    """APNs compared as the network does: case-insensitive, operator-id suffix ignored."""
    if not a or not b:
        return False
    return _OPERATOR_SUFFIX.sub("", a).lower() == _OPERATOR_SUFFIX.sub("", b).lower()


def select_cid(
    contexts: list[parse.PdpContext], formats: list[parse.PdpFormat], apn: str, pdp_type: str
) -> CidChoice:
    """Which cid to program for ``apn``: reuse a matching context, else the first free cid,
    else overwrite a context with an empty APN, else the last one (ModemManager's order)."""
    for ctx in contexts:
        if same_apn(ctx.apn, apn) and ctx.pdp_type == pdp_type.upper():
            return CidChoice(ctx.cid, reuses_existing=True, overwrites_existing=False)
    fmt = next((f for f in formats if f.pdp_type == pdp_type.upper()), None)
    low, high = (fmt.min_cid, fmt.max_cid) if fmt else (1, max([c.cid for c in contexts] + [1]) + 1)
    used = sorted({c.cid for c in contexts})
    free = next((cid for cid in range(low, high + 1) if cid not in used), None)
    if free is not None:
        return CidChoice(free, reuses_existing=False, overwrites_existing=False)
    empty = next((c for c in contexts if not c.apn), None)
    target = empty.cid if empty else contexts[-1].cid
    return CidChoice(target, reuses_existing=False, overwrites_existing=True)


@dataclass(frozen=True)
class Identity:
    """What the modem says it is (+CGMI, +CGMM, +CGMR, +CGSN)."""

    manufacturer: str
    model: str
    revision: str
    imei: str


class Modem:
    """One modem on one AT port. ``await open()`` before use; ``await close()`` after."""

    def __init__(
        self,
        port: str,
        dialect: str | Dialect = "generic",
        *,
        baud: int = DEFAULT_BAUD,
        opener: Callable[[str, int], Awaitable[AtChannel]] = open_channel,
        init_timeout: float | None = None,
    ):
        self.port = port
        self.baud = baud
        self.dialect = get_dialect(dialect) if isinstance(dialect, str) else dialect
        self._opener = opener
        self.channel: AtChannel | None = None
        self._needs_init = True
        self._urc_enabled: set[str] = set()
        self._logged_unknown: set[str] = set()
        self._ready = asyncio.Event()
        self._subscriptions: list[tuple[str, Callable[[str], None]]] = []
        self.last_registration: parse.Registration | None = None
        self.init_timeout = init_timeout
        """Timeout of start-up commands and probes (None: the channel's default)."""
        self.remote: HostSlots | None = None
        """A remote-SIM dialect's slots: host-side cards the agent serves the module from
        (agent/modem/rsimslots.py); None for a modem with cards of its own."""

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        """Open the port and bring the modem to a known state (echo off, numeric errors)."""
        self.channel = await self._opener(self.port, self.baud)
        self.channel.commands = self.dialect.commands
        self.channel.subscribe("RDY", self._on_ready)
        self.channel.subscribe("+C", self._on_registration_urc)
        for prefix, cb in self._subscriptions:
            self.channel.subscribe(prefix, cb)
        self._needs_init = True
        if self.dialect.remote_sim is not None:
            if self.remote is None:  # before the start-up commands: a +SIMRESET may come at once
                self.remote = HostSlots(RemoteSimHost(self, framing=self.dialect.remote_sim))
            self.remote.host.start()
        await self._init()

    async def close(self) -> None:
        if self.remote is not None:
            await self.remote.host.stop()
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    async def reopen(self) -> None:
        """Close and open the port again (recovery ladder step 2)."""
        await self.close()
        await self.open()

    def subscribe(self, prefix: str, callback: Callable[[str], None]) -> None:
        """URC subscription that survives reopening the port."""
        self._subscriptions.append((prefix, callback))
        if self.channel is not None:
            self.channel.subscribe(prefix, callback)

    def _on_ready(self, line: str) -> None:
        LOGGER.info("modem says %s: it (re)booted; settings will be sent again", line)
        self._needs_init = True
        self._urc_enabled.clear()
        self._ready.set()

    def _on_registration_urc(self, line: str) -> None:
        family = codes.is_urc(line)
        if family not in codes.REGISTRATION_FAMILIES:
            return
        try:
            self.last_registration = parse.parse_registration(line, family=family, solicited=False)
        except ParseError as exc:
            LOGGER.warning("unreadable registration URC %r: %s", line, exc)

    async def _init(self) -> None:
        delay = INIT_BACKOFF
        for attempt in range(1, INIT_ATTEMPTS + 1):
            try:
                for command in self.dialect.init_commands:
                    await self._raw(command, timeout=self.init_timeout)
                self._needs_init = False
                return
            except AtCommandError as exc:
                if exc.code not in BUSY_CODES or attempt == INIT_ATTEMPTS:
                    raise
                LOGGER.info("modem busy (%s) at start-up; retry in %.1f s", exc.code, delay)
                await asyncio.sleep(delay)
                delay *= 2

    # -- plumbing --------------------------------------------------------------------
    async def _raw(self, command: str, **kw: Any) -> AtResponse:
        if self.channel is None:
            raise PortClosed("modem is not open", command=command)
        return await self.channel.command(command, **kw)

    async def command(self, command: str, **kw: Any) -> AtResponse:
        """Send one command (re-sending the start-up settings first after a reboot)."""
        if self._needs_init:
            await self._init()
        return await self._raw(command, **kw)

    def _parse(self, parser: Callable[[str], T], resp: AtResponse) -> T:
        text = "\n".join(resp.lines)
        try:
            return parser(text)
        except ParseError:
            if resp.command not in self._logged_unknown:
                self._logged_unknown.add(resp.command)
                LOGGER.warning("unknown answer to %s kept raw: %r", resp.command, text)
            raise

    async def query(self, command: str, parser: Callable[[str], T]) -> T:
        return self._parse(parser, await self.command(command))

    # -- identity and SIM ------------------------------------------------------------
    async def ping(self, timeout: float | None = None) -> None:
        """``AT`` -> OK, the cheapest proof of life."""
        await self.command("AT", timeout=timeout if timeout is not None else self.init_timeout)

    async def identity(self) -> Identity:
        async def text(cmd: str) -> str:
            return " ".join((await self.command(cmd)).lines).strip()

        return Identity(
            manufacturer=await text("AT+CGMI"),
            model=await text("AT+CGMM"),
            revision=await text("AT+CGMR"),
            imei=await self.query("AT+CGSN", parse.parse_imei),
        )

    async def sim_state(self) -> str:
        """+CPIN state ("READY", "SIM PIN", ...); "NOT INSERTED" for +CME ERROR 10."""
        try:
            return await self.query("AT+CPIN?", parse.parse_cpin)
        except AtCommandError as exc:
            if exc.code == 10:
                return "NOT INSERTED"
            raise

    async def iccid(self) -> str:
        last: Exception | None = None
        for command in self.dialect.iccid_commands:
            try:
                return await self.query(command, parse.parse_iccid)
            except (AtCommandError, ParseError) as exc:
                last = exc
        raise ModemError(f"no ICCID from {self.dialect.iccid_commands}: {last}")

    async def imsi(self) -> str:
        return await self.query("AT+CIMI", parse.parse_cimi)

    # -- radio -----------------------------------------------------------------------
    async def registration(self) -> parse.Registration:
        """The best of +CEREG/+CGREG/+CREG: the first registered one in the dialect's
        order, else a denied one (it carries the reject cause), else the first answer.
        Enables URCs with location (=2) on first use."""
        answers: list[parse.Registration] = []
        for base in self.dialect.registration_commands:
            try:
                if base not in self._urc_enabled:
                    await self.command(f"{base}=2")
                    self._urc_enabled.add(base)
                family = base[2:]
                parser = functools.partial(parse.parse_registration, family=family, solicited=True)
                answers.append(await self.query(f"{base}?", parser))
            except AtCommandError as exc:
                LOGGER.debug("%s not supported: %s", base, exc)
        if not answers:
            raise ModemError("no registration command answered")
        for pick in (lambda r: r.registered, lambda r: r.stat == 3, lambda r: True):
            best = next((r for r in answers if pick(r)), None)
            if best is not None:
                return best
        raise AssertionError("unreachable")

    async def signal(self) -> parse.Signal:
        """+CESQ (LTE RSRP/RSRQ), falling back to +CSQ; SINR added from the dialect."""
        sig: parse.Signal | None = None
        try:
            sig = await self.query("AT+CESQ", parse.parse_cesq)
        except (AtCommandError, ParseError):
            sig = None
        if sig is None or (sig.rsrp_dbm is None and sig.rssi_dbm is None):
            sig = await self.query("AT+CSQ", parse.parse_csq)
        if self.dialect.sinr_command:
            try:
                sinr = self.dialect.parse_sinr((await self.command(self.dialect.sinr_command)).lines)
                if sinr is not None:
                    sig = replace(sig, sinr_db=sinr)
            except AtCommandError as exc:
                LOGGER.debug("no SINR: %s", exc)
        return sig

    async def operator(self) -> parse.Operator:
        return await self.query("AT+COPS?", parse.parse_cops_query)

    async def set_radio(self, on: bool) -> None:
        await self.command(f"AT+CFUN={1 if on else RADIO_OFF_FUN}")

    async def radio_function(self) -> int:
        return await self.query("AT+CFUN?", parse.parse_cfun)

    async def network_time(self) -> datetime:
        """Network time (+CCLK, set from NITZ); a ModemError when the modem has none."""
        return await self.query("AT+CCLK?", parse.parse_cclk)

    # -- packet data -----------------------------------------------------------------
    async def define_context(self, cid: int, apn: str, pdp_type: str = "IP") -> None:
        if '"' in apn or not 1 <= cid <= 255:
            raise ValueError(f"bad context cid={cid} apn={apn!r}")
        await self.command(f'AT+CGDCONT={cid},"{pdp_type}","{apn}"')

    async def contexts(self) -> list[parse.PdpContext]:
        return await self.query("AT+CGDCONT?", parse.parse_cgdcont_query)

    async def context_states(self) -> list[parse.ContextState]:
        return await self.query("AT+CGACT?", parse.parse_cgact_query)

    async def activate_context(self, cid: int) -> None:
        await self.command(f"AT+CGACT=1,{cid}")

    async def deactivate_context(self, cid: int) -> None:
        await self.command(f"AT+CGACT=0,{cid}")

    async def context_params(self, cid: int) -> parse.ContextParams:
        """Address, gateway, DNS and MTU the network gave context ``cid`` (+CGCONTRDP)."""
        resp = await self.command(f"AT+CGCONTRDP={cid}")
        if not resp.lines:
            raise ModemError(f"context {cid} is not active", command=resp.command, raw="")
        params = [p for p in self._parse(parse.parse_cgcontrdp, resp) if p.cid == cid]
        if not params:
            raise ModemError(f"no +CGCONTRDP line for cid {cid}", command=resp.command, raw="\n".join(resp.lines))
        return params[0]

    async def addresses(self, cid: int) -> tuple[str, ...]:
        for entry in await self.query(f"AT+CGPADDR={cid}", parse.parse_cgpaddr):
            if entry.cid == cid:
                return entry.addresses
        return ()

    # -- vSIM ------------------------------------------------------------------------
    async def load_profile(self, slot: int, profile: SimProfile) -> None:
        """Write ``profile`` (with its keys) into vSIM ``slot``; the command is sensitive.
        On a remote-SIM modem the slot is a host-side card: the keys never cross the line."""
        if self.remote is not None:
            self.remote.stage(slot, profile)
            LOGGER.info("profile %s loaded into host slot %d", profile.iccid, slot)
            return
        command = self.dialect.vsim_load(slot, profile)
        await self.command(command, sensitive=True)
        LOGGER.info("profile %s loaded into slot %d", profile.iccid, slot)

    async def select_slot(self, slot: int) -> None:
        if self.remote is not None:
            await self.remote.select(slot)
            return
        await self.command(self.dialect.vsim_select(slot))

    async def active_profile(self) -> tuple[int, str]:
        """(slot, iccid) of the SIM the baseband is using."""
        if self.remote is not None:
            return self.remote.active_profile()
        resp = await self.command(self.dialect.vsim_query())
        return self.dialect.parse_vsim_query(resp.lines)

    # -- reset -----------------------------------------------------------------------
    async def reset(self, wait: bool = True) -> None:
        """Reboot the baseband (+CFUN=1,1 by default); with ``wait``, return once it answers."""
        self._ready.clear()
        if self._needs_init:
            await self._init()
        await self._raw(self.dialect.reset_command, priority=True)
        self._needs_init = True
        if wait:
            await self.wait_ready()

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for RDY (or, for modems that print none, an answer to AT)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                await asyncio.wait_for(self._ready.wait(), READY_POLL)
            except TimeoutError:
                pass
            try:
                await self._init() if self._needs_init else await self._raw("AT", timeout=READY_POLL)
                return
            except (AtCommandError, ModemError) as exc:
                if isinstance(exc, PortClosed):
                    raise
                LOGGER.debug("modem not ready yet: %s", exc)
        raise ModemError(f"modem not ready {timeout:g} s after reset")

"""A remote-SIM rig for tests and benchmarks: the virtual modem's remote-SIM personality
on a pty, the lab carrier's AuC, and the agent's ``RemoteSimHost`` on the other end of
the pty through pyserial."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from agent.modem.at import AtChannel, open_channel
from agent.modem.dialects.fibocom import FibocomRsimDialect
from agent.modem.lex import split_fields
from agent.modem.rsimhost import RemoteSimHost
from agent.sim import SimProfile
from board.virtual.modem.auc import AkaCarrier
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig

KI = bytes.fromhex("8f3c2a71d04e95b6a1c7e3f0925d4b68")
OPC = bytes.fromhex("3b9e07c1d5a2f86e4c10b7d9e2a5f361")
PROFILE = SimProfile("8981100000000000059", "440101234500059", KI, OPC, "44010", "data.example")
OTHER = SimProfile("8981100000000000067", "440101234500067", bytes(range(16)), bytes(range(32, 48)),
                   "44010", "data.example")
"""Two subscribers of the lab carrier (made-up keys, never a real SIM's)."""

REGISTERED = (1, 5)
WAIT_S = 10.0
"""Bound on any wait for the modem (fast mode reads and attaches in well under a second)."""


@dataclass
class Cereg:
    """+CEREG URCs (mode 3: stat and, on a reject, the EMM cause) as they arrive."""

    seen: list[tuple[int, int | None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_urc(self, line: str) -> None:
        fields = split_fields(line.split(":", 1)[1])
        stat = int(fields[0][0])
        cause = int(fields[5][0]) if len(fields) > 5 and fields[5][0].isdigit() else None
        self.seen.append((stat, cause))
        self.changed.set()

    async def until(self, wanted: set[int], after: int = 0, timeout: float = WAIT_S) -> tuple[int, int | None]:
        """The first report from index ``after`` on whose stat is in ``wanted``."""
        async def wait() -> tuple[int, int | None]:
            index = after
            while True:
                while index < len(self.seen):
                    if self.seen[index][0] in wanted:
                        return self.seen[index]
                    index += 1
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(wait(), timeout)


SETUP = ("ATE0", "AT+CMEE=1", "AT+CEREG=3")
"""What the host sets after the module (re)boots: echo off, numeric errors, +CEREG with causes."""


@dataclass
class Rig:
    modem: VirtualModem | None
    """None when the modem runs in another process (``served``)."""
    carrier: AkaCarrier | None
    channel: AtChannel
    host: RemoteSimHost
    cereg: Cereg

    async def setup(self) -> None:
        """The host's settings, then the registration state as it is now (a report that
        came before +CEREG=3 was set is not lost)."""
        for command in SETUP:
            await self.channel.command(command)
        answer = await self.channel.command("AT+CEREG?")
        self.cereg.on_urc("+CEREG: " + answer.lines[0].split(",", 1)[1])

    async def reboot(self) -> None:
        """Reboot the module and wait for its RDY; settings made again."""
        booted = asyncio.Event()
        unsubscribe = self.channel.subscribe("RDY", lambda line: booted.set())
        if self.modem is not None:
            self.modem.reboot()
        else:
            await self.channel.command("AT+CFUN=1,1")
        await asyncio.wait_for(booted.wait(), WAIT_S)
        unsubscribe()
        await self.setup()


def tap(channel: AtChannel) -> bytearray:
    """Every byte the channel writes and reads from now on, in order, into the returned
    buffer (what a second process on the UART, or a technician's cable, would see)."""
    seen = bytearray()
    write, receive = channel._write, channel.data_received
    assert write is not None

    def tx(data: bytes) -> None:
        seen.extend(data)
        write(data)

    def rx(data: bytes) -> None:
        seen.extend(data)
        receive(data)

    channel._write = tx
    channel.data_received = rx  # type: ignore[method-assign]
    return seen


def rsim_modem(carrier: AkaCarrier, seed: int = 11, **config: object) -> VirtualModem:
    return VirtualModem(ModemConfig(time_scale=FAST_SCALE, remote_sim=True, rng_seed=seed, **config),  # type: ignore[arg-type]
                        carrier=carrier)


def carrier_of(subscribers: tuple[SimProfile, ...] = (PROFILE, OTHER)) -> AkaCarrier:
    keys = {sim.imsi: (sim.ki, sim.opc) for sim in subscribers}
    return AkaCarrier(keys.get)


@contextlib.asynccontextmanager
async def rig(subscribers: tuple[SimProfile, ...] = (PROFILE, OTHER), **config: object) -> AsyncIterator[Rig]:
    """The modem running, the host listening (remote SIM still off), +CEREG reported."""
    carrier = carrier_of(subscribers)
    modem = rsim_modem(carrier, **config)
    modem.start()
    try:
        async with on_port(modem.path, modem, carrier) as found:
            yield found
    finally:
        modem.stop()


@contextlib.asynccontextmanager
async def on_port(path: str, modem: VirtualModem | None = None, carrier: AkaCarrier | None = None,
                  ) -> AsyncIterator[Rig]:
    """The host listening on the modem's pty at ``path``, +CEREG reported."""
    channel = await open_channel(path, commands=FibocomRsimDialect.commands)
    try:
        cereg = Cereg()
        channel.subscribe("+CEREG", cereg.on_urc)
        host = RemoteSimHost(channel)
        host.start()
        found = Rig(modem, carrier, channel, host, cereg)
        await found.setup()
        yield found
        await host.stop()
    finally:
        channel.close()


def serve() -> int:
    """The remote-SIM modem and its carrier in a process of their own (benchmarks that
    load the agent's event loop must not starve the modem of the GIL): prints the pty's
    path, serves until stdin closes."""
    modem = rsim_modem(carrier_of())
    print(modem.start(), flush=True)
    try:
        sys.stdin.read()
    finally:
        modem.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())

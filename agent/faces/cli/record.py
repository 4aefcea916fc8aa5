"""``pocket-agent record``: sample the live data path into a health-trace CSV.

So a technician can capture what a slow SIM looks like in the field and replay it on a
desk (``pocket-agent replay``). Samples once a second for ``--duration`` seconds with
the same ``LiveSampler`` the supervisor uses. Flows come from conntrack over netlink (no
``conntrack`` tool needed); radio, when ``--at-port`` is given, through the ``Modem``
driver (the one AT stack), run on its own event loop thread.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from agent.core.radio import ModemRadio
from agent.core.sampler import LiveSampler, RadioReading
from agent.errors import AgentError
from agent.health.trace import TraceWriter
from agent.net.conntrack import ConntrackFlows
from agent.net.reflector import UdpEchoProber

LOGGER = logging.getLogger(__name__)

SAMPLE_INTERVAL = 1.0
"""The classifier is designed for about one sample a second (the issue)."""

MAX_DURATION = 24 * 3600.0
"""A day: a recording left running by mistake must still end and not fill flash."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wan", required=True, help="WAN (modem data) interface name")
    parser.add_argument("--lan", help="LAN interface name (demand side)")
    parser.add_argument("--reflector", help="HOST:PORT of a UDP echo reflector for RTT/loss")
    parser.add_argument("--at-port", help="modem AT port for RSRP/RSRQ/registration")
    parser.add_argument("--dialect", default="generic", help="modem dialect for --at-port")
    parser.add_argument("--no-conntrack", action="store_true",
                        help="do not read conntrack: demand from LAN counters (as on a kernel without it)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to record")
    parser.add_argument("--interval", type=float, default=SAMPLE_INTERVAL)
    parser.add_argument("--out", default="-", help="CSV file (default: stdout)")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentError(f"--reflector wants HOST:PORT, got {text!r}")
    return host, int(port)


RADIO_TIMEOUT = 5.0
"""A radio read (+CESQ, +CEREG?, +COPS?) takes well under a second; 5 s means stuck."""


class ThreadedModemRadio:
    """The async ``Modem`` driver on an event loop thread, read synchronously once a tick."""

    def __init__(self, port: str, dialect: str):
        from agent.modem.driver import Modem

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="record-modem", daemon=True)
        self._thread.start()
        self._modem = Modem(port, dialect)
        self._call(self._modem.open())
        self._radio = ModemRadio(self._modem)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(RADIO_TIMEOUT)

    def read(self) -> RadioReading:
        try:
            return self._call(self._radio.read()).radio
        except (AgentError, TimeoutError) as exc:
            LOGGER.warning("radio read failed: %s", exc)
            return RadioReading(registered=True)

    def close(self) -> None:
        try:
            self._call(self._modem.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=2)


def record(sampler: LiveSampler, writer: TraceWriter, duration: float, interval: float,
           clock: object = time, radio: Any = None) -> int:
    """Sample until ``duration`` has passed; returns the number of rows written.

    Ticks are scheduled on absolute deadlines, so a slow read delays one row, not all
    the rows after it.
    """
    duration = min(duration, MAX_DURATION)
    start = float(clock.monotonic())  # type: ignore[attr-defined]
    rows = 0
    while True:
        due = start + rows * interval
        now = float(clock.monotonic())  # type: ignore[attr-defined]
        if due - start > duration:
            return rows
        if due > now:
            clock.sleep(due - now)  # type: ignore[attr-defined]
        t = float(clock.monotonic()) - start  # type: ignore[attr-defined]
        writer.write(sampler.sample(round(t, 3), radio.read() if radio is not None else None))
        rows += 1


def main(args: argparse.Namespace) -> int:
    radio = None
    try:
        reflector = _host_port(args.reflector) if args.reflector else None
        prober = UdpEchoProber(*reflector) if reflector else None
        flows = None if args.no_conntrack else ConntrackFlows()
        if flows is not None and reflector:
            flows.own(*reflector)
        sampler = LiveSampler(args.wan, args.lan, prober, flows)
        sampler.sample(0.0)  # fail early on a wrong interface name
        radio = ThreadedModemRadio(args.at_port, args.dialect) if args.at_port else None
    except (AgentError, OSError) as exc:
        LOGGER.error("cannot record: %s", exc)
        return 2
    if sampler.demand_source != "conntrack":
        LOGGER.warning("flows from LAN counters (%s)", flows.reason if flows else "--no-conntrack")
    out = sys.stdout if args.out == "-" else open(  # noqa: SIM115 - closed in finally
        Path(args.out), "w", encoding="utf-8", newline="")
    try:
        rows = record(sampler, TraceWriter(out), args.duration, args.interval, radio=radio)
    except KeyboardInterrupt:
        rows = -1
    except AgentError as exc:
        LOGGER.error("recording stopped: %s", exc)
        return 1
    finally:
        sampler.close()
        if radio is not None:
            radio.close()
        if out is not sys.stdout:
            out.close()
    LOGGER.info("recorded %s rows to %s", "some" if rows < 0 else rows, args.out)
    return 0

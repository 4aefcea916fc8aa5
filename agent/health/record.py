"""``pocket-agent record``: sample the live data path into a health-trace CSV.

So a technician can capture what a slow SIM looks like in the field and replay it on a
desk (``pocket-agent replay``). Samples once a second for ``--duration`` seconds with
the same ``LiveSampler`` the supervisor uses.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from agent.errors import AgentError
from agent.health.sampler import AtRadioReader, FlowCounter, LiveSampler, UdpEchoProber
from agent.health.trace import TraceWriter

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
    parser.add_argument("--no-conntrack", action="store_true", help="do not count flows")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to record")
    parser.add_argument("--interval", type=float, default=SAMPLE_INTERVAL)
    parser.add_argument("--out", default="-", help="CSV file (default: stdout)")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentError(f"--reflector wants HOST:PORT, got {text!r}")
    return host, int(port)


def record(sampler: LiveSampler, writer: TraceWriter, duration: float, interval: float,
           clock: object = time) -> int:
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
        writer.write(sampler.sample(round(t, 3)))
        rows += 1


def main(args: argparse.Namespace) -> int:
    try:
        reflector = _host_port(args.reflector) if args.reflector else None
        prober = UdpEchoProber(*reflector) if reflector else None
        radio = AtRadioReader(args.at_port) if args.at_port else None
        flows = None if args.no_conntrack else FlowCounter(ignore=(reflector,) if reflector else ())
        sampler = LiveSampler(args.wan, args.lan, prober, flows, radio)
        sampler.sample(0.0)  # fail early on a wrong interface name
    except (AgentError, OSError) as exc:
        LOGGER.error("cannot record: %s", exc)
        return 2
    out = sys.stdout if args.out == "-" else open(  # noqa: SIM115 - closed in finally
        Path(args.out), "w", encoding="utf-8", newline="")
    try:
        rows = record(sampler, TraceWriter(out), args.duration, args.interval)
    except KeyboardInterrupt:
        rows = -1
    except AgentError as exc:
        LOGGER.error("recording stopped: %s", exc)
        return 1
    finally:
        sampler.close()
        if out is not sys.stdout:
            out.close()
    LOGGER.info("recorded %s rows to %s", "some" if rows < 0 else rows, args.out)
    return 0

"""Benchmark: the remote-SIM path from the module's card reset to registered (issue 24).

The virtual modem's remote-SIM personality on a pty (board/virtual/modem/rsim.py), the
agent's ``RemoteSimHost`` answering through pyserial from its host-side USIM, the lab
carrier's AuC authenticating. Each round reboots the module and times, on the agent's
side, from the module's ``+SIMRESET`` (its card power-up) to ``+CPIN: READY`` (the
card read) and to the ``+CEREG`` that says registered; and every answer's time from
the ``+SIMDATA`` URC's arrival to the OK of the host's ``AT+SIMDATA`` (an upper bound on
"URC to command written"), beside the module's 1.0 s deadline (the T=0 work waiting
time, docs/remote-sim.md).

The modem runs at FAST_SCALE: its modelled latencies (attach 2 s, each command 2 ms)
are x 0.01, so the figures are the remote-SIM exchange itself (~50 transmissions, each a
round trip over the pty and the agent's event loop) plus 20 ms of modelled attach.

Run: .venv/bin/python tests/bench/bench_rsim.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.modem.rsimhost import MODULE_DEADLINE_S
from board.virtual.modem.model import ATTACH_LATENCY, FAST_SCALE
from tests.bench.figures import line, pct
from tests.integration.rsim_rig import PROFILE, REGISTERED, rig


async def rounds(count: int) -> tuple[list[float], list[float], list[float], int]:
    """(reset -> card read, reset -> registered, answer times) in ms, and transmissions."""
    read, registered = [], []
    async with rig() as r:
        loop = asyncio.get_running_loop()
        marks: dict[str, float] = {}
        r.channel.subscribe("+SIMRESET", lambda _: marks.setdefault("reset", loop.time()))
        r.channel.subscribe("+CPIN: READY", lambda _: marks.setdefault("ready", loop.time()))
        await r.host.insert(PROFILE)
        await r.cereg.until(set(REGISTERED))
        r.host.answer_times.clear()
        before = r.host.stats["transmissions"]
        for _ in range(count):
            marks.clear()
            mark = len(r.cereg.seen)
            await r.reboot()
            await r.cereg.until(set(REGISTERED), after=mark)
            done = loop.time()
            read.append((marks["ready"] - marks["reset"]) * 1000)
            registered.append((done - marks["reset"]) * 1000)
        answers = [t * 1000 for t in r.host.answer_times]
        return read, registered, answers, (r.host.stats["transmissions"] - before) // count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    read, registered, answers, per_power_up = asyncio.run(rounds(5 if args.quick else 40))
    print(f"remote SIM over a pty (virtual modem at time scale {FAST_SCALE}: modelled attach "
          f"{ATTACH_LATENCY * FAST_SCALE * 1000:.0f} ms), {per_power_up} transmissions per power-up and attach")
    print(line("+SIMRESET -> card read (CPIN READY)", read))
    print(line("+SIMRESET -> registered", registered))
    print(line("one answer: URC -> AT+SIMDATA's OK", answers))
    print(f"  p99 answer {pct(answers, 0.99):.2f} ms against the module's deadline of "
          f"{MODULE_DEADLINE_S * 1000:.0f} ms; over it: {sum(a > MODULE_DEADLINE_S * 1000 for a in answers)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

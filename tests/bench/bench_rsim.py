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

Then the swap break (switch, attach, data, route: the phases without a data path) of the
unchanged swap machine (agent/core/swap.py, recording hooks in place of the daemon's) on
the remote-SIM board, beside the same on the vSIM board (the ``virtual`` dialect's
``+VSIMSEL``), both modems at FAST_SCALE: the vSIM switch carries a modelled 30 ms slot
switch, the remote one reads the whole card again and authenticates.

The answer times are measured twice: on a quiet loop, and with the agent's own AT traffic
at its most (+CESQ back to back on the same port, which the answers must jump: they are
sent with priority) while the event loop is held 2 ms at a time (a console flood's
parsing). For the second the modem runs in a process of its own: in this one it would
wait for the GIL behind the loop hog, which a real modem does not. The lab's LAN bulk
traffic is not part of it (no lab here).

Run: .venv/bin/python tests/bench/bench_rsim.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.core.swap import SwapMachine
from agent.modem.driver import Modem
from agent.modem.rsimhost import MODULE_DEADLINE_S
from board.virtual.modem.auc import AkaCarrier
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import (
    ATTACH_LATENCY,
    FAST_SCALE,
    SLOT_SWITCH_LATENCY,
    ModemConfig,
    NullCarrier,
)
from tests.bench.figures import line, pct
from tests.integration.rsim_rig import OTHER, PROFILE, REGISTERED, Rig, on_port, rig, rsim_modem
from tests.integration.test_remote_sim_swap import serving
from tests.integration.test_swap_machine import Assignment, Recorder

HOG_SLICE_S = 0.002
"""How long the loop hog holds the event loop before yielding: what parsing a burst of a
console flood costs the loop at a time (the console reads 4 KiB chunks; bench_console.py)."""


async def poll_forever(channel: Any) -> None:
    """The agent's own AT traffic at its most: +CESQ back to back on the same port."""
    while True:
        await channel.command("AT+CESQ")


async def hog_forever() -> None:
    """A busy event loop: HOG_SLICE_S of work, yield, again."""
    while True:
        start = time.perf_counter()
        while time.perf_counter() - start < HOG_SLICE_S:
            pass
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[Rig]:
    """The rig with its modem in a process of its own (``rsim_rig.serve``)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.integration.rsim_rig", cwd=REPO,
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        path = (await proc.stdout.readline()).decode().strip()
        async with on_port(path) as found:
            yield found
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 10)


async def rounds(count: int, contended: bool = False) -> tuple[list[float], list[float], list[float], int]:
    """(reset -> card read, reset -> registered, answer times) in ms, and transmissions;
    ``contended``: the modem in its own process, ``poll_forever`` and ``hog_forever``
    running beside the host in this one."""
    read, attached = [], []
    async with served() if contended else rig() as r:
        loop = asyncio.get_running_loop()
        noise = [loop.create_task(poll_forever(r.channel)), loop.create_task(hog_forever())] if contended else []
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
            attached.append((done - marks["reset"]) * 1000)
        for task in noise:
            task.cancel()
        await asyncio.gather(*noise, return_exceptions=True)
        answers = [t * 1000 for t in r.host.answer_times]
        return read, attached, answers, (r.host.stats["transmissions"] - before) // count


async def swap_breaks(remote: bool, count: int) -> list[float]:
    """Break (ms) of ``count`` swaps back and forth between PROFILE and OTHER."""
    sims = (PROFILE, OTHER)
    if remote:
        vmodem = rsim_modem(AkaCarrier({s.imsi: (s.ki, s.opc) for s in sims}.get))
    else:
        vmodem = VirtualModem(ModemConfig(time_scale=FAST_SCALE, rng_seed=11), carrier=NullCarrier())
    vmodem.start()
    modem = Modem(vmodem.path, "fibocom-rsim" if remote else "virtual")
    breaks: list[float] = []
    try:
        await modem.open()
        current = await serving(modem, PROFILE, "a-0")
        with tempfile.TemporaryDirectory() as state:
            for n in range(count):
                rec = Recorder(Assignment(f"a-{n + 1}", sims[(n + 1) % 2]))
                machine = SwapMachine(modem, rec.hooks(), Path(state) / "swap.json", slots=(1, 2),
                                      attach_timeout_s=10.0)
                current = await machine.swap("command", current)
                breaks.append(rec.events[-1][1]["break_ms"])
    finally:
        await modem.close()
        vmodem.stop()
    return breaks


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
    read, registered_, answers, _ = asyncio.run(rounds(5 if args.quick else 20, contended=True))
    print(f"the same with +CESQ polled back to back on the port and the loop held {HOG_SLICE_S * 1000:.0f} ms at a time")
    print(line("+SIMRESET -> registered", registered_))
    print(line("one answer: URC -> AT+SIMDATA's OK", answers))
    print(f"  p99 answer {pct(answers, 0.99):.2f} ms; over the deadline: "
          f"{sum(a > MODULE_DEADLINE_S * 1000 for a in answers)}")
    swaps = 4 if args.quick else 20
    print(f"swap break, swap machine with recording hooks (modelled: attach {ATTACH_LATENCY * FAST_SCALE * 1000:.0f} ms; "
          f"vSIM slot switch {SLOT_SWITCH_LATENCY * FAST_SCALE * 1000:.0f} ms)")
    print(line("remote-SIM board (card out, card in)", asyncio.run(swap_breaks(True, swaps))))
    print(line("vSIM board (+VSIMSEL)", asyncio.run(swap_breaks(False, swaps))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

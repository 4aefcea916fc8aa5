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

Run: .venv/bin/python tests/bench/bench_rsim.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.core.swap import SimFacts, SwapMachine
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
from tests.integration.rsim_rig import OTHER, PROFILE, REGISTERED, rig, rsim_modem
from tests.integration.test_remote_sim_swap import registered
from tests.integration.test_swap_machine import Assignment, Recorder


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
        await modem.load_profile(1, PROFILE)
        await modem.select_slot(1)
        await registered(modem)
        await modem.define_context(1, PROFILE.apn)
        await modem.activate_context(1)
        current = SimFacts(1, PROFILE.iccid, PROFILE.imsi, False, PROFILE.plan.to_dict(), "a-0", PROFILE.apn)
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
    swaps = 4 if args.quick else 20
    print(f"swap break, swap machine with recording hooks (modelled: attach {ATTACH_LATENCY * FAST_SCALE * 1000:.0f} ms; "
          f"vSIM slot switch {SLOT_SWITCH_LATENCY * FAST_SCALE * 1000:.0f} ms)")
    print(line("remote-SIM board (card out, card in)", asyncio.run(swap_breaks(True, swaps))))
    print(line("vSIM board (+VSIMSEL)", asyncio.run(swap_breaks(False, swaps))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: ``AT`` round trips over a real pty to the virtual modem.

Prints, beside the goal "agent overhead median under 1 ms":
* round trip minus the modem's modelled latency (agent + pty + modem thread), and
* the agent's own processing per command: time spent in the channel's send path and
  in ``data_received`` for that command's bytes (what the agent adds, excluding the
  time the bytes spend in the kernel and in the modem thread).

Run: .venv/bin/python tests/bench/bench_at.py [--quick] [--runs N] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.modem.at import open_channel
from board.virtual.modem import device as vm
from board.virtual.modem import model

GOAL_MS = 1.0
"""Agent overhead per command: median under 1 ms (a poll cycle sends ~10 commands)."""
SCALE = 0.1
"""time_scale for the modem: AT's modelled latency becomes 0.2 ms."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(path: str, count: int) -> tuple[list[float], list[float]]:
    channel = await open_channel(path)
    await channel.command("ATE0")
    agent_time = [0.0]
    original_rx = channel.data_received

    def timed_rx(data: bytes) -> None:
        t0 = time.perf_counter()
        original_rx(data)
        agent_time[0] += time.perf_counter() - t0

    channel.data_received = timed_rx  # type: ignore[method-assign]
    original_send = channel._send

    def timed_send(command: str, sensitive: bool) -> None:
        t0 = time.perf_counter()
        original_send(command, sensitive)
        agent_time[0] += time.perf_counter() - t0

    channel._send = timed_send  # type: ignore[method-assign]
    modelled = model.COMMAND_LATENCY * SCALE
    rtt_minus: list[float] = []
    own: list[float] = []
    for _ in range(count):
        agent_time[0] = 0.0
        t0 = time.perf_counter()
        await channel.command("AT")
        rtt_minus.append((time.perf_counter() - t0 - modelled) * 1000)
        own.append(agent_time[0] * 1000)
    channel.close()
    return rtt_minus, own


PARSE_GOAL_MS = 10.0
"""Any parser on any line up to 4 kB: worst case under 10 ms (no pathological regex
backtracking; the property tests check what parsers return, this how long they take)."""


def parse_worst_case(count: int) -> list[float]:
    """Milliseconds per call of every parser the property tests run, on ``count`` long
    adversarial lines (the AT alphabet, quotes and commas, up to 4 kB each)."""
    import random

    from agent.errors import ParseError
    from tests.unit.test_parse_properties import AT_TOKENS, PARSERS, PREFIXES

    rng = random.Random(7)
    times = []
    for _ in range(count):
        line = rng.choice(PREFIXES) + "".join(rng.choice(AT_TOKENS) for _ in range(rng.randint(100, 2000)))
        for parser in PARSERS.values():
            t0 = time.perf_counter()
            with contextlib.suppress(ParseError):  # the property tests: a value or ParseError, nothing else
                parser(line)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 runs x 300 (< 30 s)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    runs, count = (3, 300) if args.quick else (args.runs, args.count)
    modem = vm.VirtualModem(model.ModemConfig(time_scale=SCALE))
    path = modem.start()
    try:
        medians_rtt, medians_own, all_rtt, all_own = [], [], [], []
        for r in range(runs):
            rtt, own = asyncio.run(one_run(path, count))
            medians_rtt.append(statistics.median(rtt))
            medians_own.append(statistics.median(own))
            all_rtt += rtt
            all_own += own
            print(f"run {r + 1}: {count} x AT  rtt-modelled median {medians_rtt[-1]:.3f} ms  "
                  f"agent-own median {medians_own[-1]:.4f} ms")
    finally:
        modem.stop()
    print(f"\n{runs} runs x {count} AT round trips over a pty (modelled modem latency "
          f"{model.COMMAND_LATENCY * SCALE * 1000:.2f} ms subtracted)")
    print(f"  round trip - modelled : median {statistics.median(all_rtt):.3f} ms  "
          f"p95 {pct(all_rtt, 0.95):.3f} ms  p99 {pct(all_rtt, 0.99):.3f} ms")
    print(f"  agent's own processing: median {statistics.median(all_own):.4f} ms  "
          f"p95 {pct(all_own, 0.95):.4f} ms  p99 {pct(all_own, 0.99):.4f} ms")
    print(f"  goal: agent overhead median under {GOAL_MS:.0f} ms")
    parse = parse_worst_case(30 if args.quick else 200)
    print(f"\nparsers on long adversarial lines ({len(parse)} calls): median {statistics.median(parse):.4f} ms  "
          f"p95 {pct(parse, 0.95):.4f} ms  max {max(parse):.3f} ms")
    print(f"  goal: worst case under {PARSE_GOAL_MS:.0f} ms (no pathological backtracking)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

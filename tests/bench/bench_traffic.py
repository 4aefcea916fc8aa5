"""Benchmark: the traffic model's rates on real sockets (loopback), beside their goals.

The tests check the model's pacing rule on its own clock (tests/integration/
test_traffic_model.py); what a loaded machine actually delivers is this figure: each
``streamN`` kind run for ``--seconds`` against the byte source, repeated, its achieved
rate printed as median and p95 of the runs' shortfall from the bitrate, beside the goal
"within 20 % of the bitrate" (the trace library's app-limited streams assume it).

Run: .venv/bin/python tests/bench/bench_traffic.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from board.virtual.network import services, traffic

GOAL_FRACTION = 0.2
"""A stream within 20 % of its bitrate."""
KBPS = (128, 400, 1000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(kbps: int, seconds: float) -> float:
    """The achieved rate (kbit/s) of one ``stream<kbps>`` run of ``seconds``."""
    # The source's stream handler is still writing when the run ends and is cancelled
    # with the loop: expected, not worth a traceback.
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
    server = await asyncio.start_server(services.serve_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        load = traffic.Load("127.0.0.1", port, started + seconds, services.MAX_STREAM_BYTES)
        args = argparse.Namespace(kind=f"stream{kbps}", flows=1, video_kbps=0, bytes=services.MAX_STREAM_BYTES)
        await traffic.workload(args, load, random.Random(1))
        return load.down * 8 / 1000 / (time.monotonic() - started)
    finally:
        server.close()
        await server.wait_closed()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 runs x 1 s per rate")
    args = ap.parse_args()
    runs, seconds = (3, 1.0) if args.quick else (10, 3.0)
    print(f"{runs} runs x {seconds:.0f} s per rate, loopback; shortfall = 1 - achieved / bitrate")
    worst = 0.0
    for kbps in KBPS:
        rates = [asyncio.run(one_run(kbps, seconds)) for _ in range(runs)]
        short = [100 * (1 - r / kbps) for r in rates]
        worst = max(worst, pct(short, 0.95))
        print(f"  stream{kbps:<5} achieved median {statistics.median(rates):8.1f} kbit/s   "
              f"shortfall median {statistics.median(short):5.1f} %  p95 {pct(short, 0.95):5.1f} %")
    print(f"  goal: within {GOAL_FRACTION:.0%} of the bitrate (p95 shortfall {worst:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

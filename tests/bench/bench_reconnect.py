"""Reconnect storm: N real CloudLinks lose the broker at the same instant and come back.

What it shows: full jitter plus a random first delay (agent.cloud.backoff) spread a
fleet's return, so the broker sees a flat rate instead of a wall. Printed per run: the
peak connections per second (1 s buckets) against the mean over the return, and the
longest single wait against the back-off cap. Goal (issue 3): peak under twice the
mean, no client waiting more than the cap. Several runs; median and p95/p99 printed.

    .venv/bin/python tests/bench/bench_reconnect.py            # 500 clients, 3 runs
    .venv/bin/python tests/bench/bench_reconnect.py --quick    # 100 clients, 2 runs, < 30 s

Loopback only: mosquitto on 127.0.0.1, a fresh lab PKI in a temp directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.cloud.link import CloudConfig, CloudLink
from board.virtual import broker as lab_broker
from board.virtual.pki import LabPki, create_lab_pki
from tests.cloud.conftest import free_port

HOST = "127.0.0.1"
BUCKET_S = 1.0
"""Rate is counted per second, the unit a broker operator's dashboard shows."""
SETTLE_TIMEOUT_S = 120.0
"""Bound on waiting for every client to come back in one run."""


class TimedLink(CloudLink):
    """The real link, noting when each session goes live (loop time)."""

    live_at: list[float]

    def _on_live(self, client) -> None:  # type: ignore[no-untyped-def]
        self.live_at = [*getattr(self, "live_at", []), asyncio.get_running_loop().time()]
        super()._on_live(client)


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def config(pki: LabPki, port: int, device: str, first_delay: float, cap: float) -> CloudConfig:
    d = pki.devices[device]
    return CloudConfig(device_id=device, host=HOST, port=port, ca_file=pki.ca_cert, cert_file=d.cert, key_file=d.key,
                       sealing_key_file=d.sealing_key, platform_key_file=pki.platform_pub, backoff_base=1.0,
                       backoff_cap=cap, first_delay_max=first_delay, keepalive=60, watchdog_idle=600)


async def one_run(pki: LabPki, work: Path, n: int, first_delay: float, cap: float) -> dict[str, float]:
    port = free_port()
    broker = lab_broker.start_broker(work / f"broker-{port}", pki, HOST, port)
    links = [TimedLink(config(pki, port, dev, first_delay, cap), state_dir=work / f"state-{port}" / dev)
             for dev in list(pki.devices)[:n]]
    try:
        for link in links:
            await link.start()
        await asyncio.wait_for(asyncio.gather(*(lk.wait_connected(SETTLE_TIMEOUT_S) for lk in links)),
                               SETTLE_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        broker.kill()  # every client loses the broker at the same instant
        broker.wait()
        t0 = loop.time()
        broker = lab_broker.start_broker(work / f"broker-{port}", pki, HOST, port)
        deadline = t0 + SETTLE_TIMEOUT_S
        while any(len(getattr(lk, "live_at", [])) < 2 for lk in links) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        back = sorted(lk.live_at[-1] - t0 for lk in links if len(getattr(lk, "live_at", [])) >= 2)
        delays = [d for lk in links for d in lk.stats.delays]
    finally:
        await asyncio.gather(*(lk.stop() for lk in links), return_exceptions=True)
        lab_broker.stop_broker(broker)
    buckets = [0] * (int(back[-1] / BUCKET_S) + 1)
    for t in back:
        buckets[int(t // BUCKET_S)] += 1
    span = max(back[-1], BUCKET_S)
    mean = len(back) / span
    return {"returned": len(back), "clients": n, "peak": max(buckets) / BUCKET_S, "mean": mean,
            "ratio": max(buckets) / BUCKET_S / mean, "last": back[-1], "max_delay": max(delays), "cap": cap}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 clients, 2 runs (< 30 s)")
    ap.add_argument("--clients", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--first-delay", type=float, default=10.0, help="random first delay ceiling (s)")
    ap.add_argument("--cap", type=float, default=30.0, help="back-off cap (s)")
    args = ap.parse_args()
    n = args.clients or (100 if args.quick else 500)
    runs = args.runs or (2 if args.quick else 3)
    first_delay = args.first_delay if not args.quick or args.first_delay != 10.0 else 5.0
    logging.basicConfig(level=logging.ERROR)
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-reconnect-") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        pki = create_lab_pki(work / "pki", [f"dev-{i:04d}" for i in range(n)], [HOST])
        print(f"PKI for {n} devices in {time.monotonic() - t:.1f}s")
        results = []
        for r in range(runs):
            res = asyncio.run(one_run(pki, work, n, first_delay, args.cap))
            results.append(res)
            print(f"run {r + 1}: {res['returned']}/{res['clients']} back within {res['last']:.1f}s; "
                  f"peak {res['peak']:.0f}/s vs mean {res['mean']:.1f}/s (x{res['ratio']:.2f}); "
                  f"longest single wait {res['max_delay']:.2f}s (cap {res['cap']:.0f}s)")
    ratios = [r["ratio"] for r in results]
    waits = [r["max_delay"] for r in results]
    print(f"peak/mean ratio: median {statistics.median(ratios):.2f}, p95 {pct(ratios, 95):.2f}, "
          f"p99 {pct(ratios, 99):.2f}  (goal < 2.00)")
    print(f"longest wait:    median {statistics.median(waits):.2f}s, p95 {pct(waits, 95):.2f}s, "
          f"p99 {pct(waits, 99):.2f}s  (goal <= cap {args.cap:.0f}s)")
    print(f"all clients returned: {all(r['returned'] == r['clients'] for r in results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reconnect storm: N real CloudLinks lose the broker at the same instant and come back.

What it shows: full jitter plus a random first delay (agent.cloud.backoff) spread a
fleet's return, so the broker sees a flat rate instead of a wall. Printed per run: the
peak connections per second (1 s buckets) against the mean over the return, and the
longest single back-off wait against the cap. Goal (issue 3): peak under twice the mean,
no client waiting more than the back-off cap. Several runs; median and p95/p99 printed.

    .venv/bin/python tests/bench/bench_reconnect.py            # 500 clients, 3 runs
    .venv/bin/python tests/bench/bench_reconnect.py --quick    # 100 clients, 2 runs, < 30 s

The clients run in worker processes of at most WORKER_CLIENTS each: paho's network loop
uses select(), which cannot watch a file descriptor above 1023, and every client holds
three (TLS socket and paho's wake-up socket pair). A router runs one client, so this is a
bench-only constraint. Loopback only: mosquitto on 127.0.0.1, a fresh lab PKI in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.cloud.link import CloudConfig, CloudLink
from board.virtual.cloud import broker as lab_broker
from board.virtual.cloud.pki import LabPki, create_lab_pki
from tests.cloud.conftest import free_port

HOST = "127.0.0.1"
BUCKET_S = 1.0
"""Rate is counted per second, the unit a broker operator's dashboard shows."""
SETTLE_TIMEOUT_S = 120.0
"""Bound on waiting for every client to connect, or to come back, in one run."""
WORKER_CLIENTS = 100
"""Clients per worker process: 300 descriptors, well under select()'s 1024."""
POLL_S = 0.05
"""Workers check for returned sessions this often (the 1 s buckets need far less)."""


class TimedLink(CloudLink):
    """The real link, noting the wall time each session goes live."""

    live_at: list[float]

    def _on_live(self, client) -> None:  # type: ignore[no-untyped-def]
        self.live_at = [*getattr(self, "live_at", []), time.time()]
        super()._on_live(client)


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pki_at(directory: Path, devices: list[str]) -> LabPki:
    """Re-open a PKI made by create_lab_pki (paths only; see board/virtual/cloud/pki.py's layout)."""
    from board.virtual.cloud.pki import DeviceFiles
    d = directory
    pki = LabPki(d, d / "ca.pem", d / "ca.key", d / "broker.pem", d / "broker.key", d / "cloud.pem", d / "cloud.key",
                 d / "platform.key", d / "platform.pub", d / "devices", d / "foreign/ca.pem", d / "foreign/ca.key",
                 d / "foreign/device.pem", d / "foreign/device.key")
    for dev in devices:
        dd = d / "devices" / dev
        pki.devices[dev] = DeviceFiles(dev, dd / "cert.pem", dd / "key.pem", dd / "sealing.key", dd / "sealing.pub")
    return pki


def config(pki: LabPki, port: int, device: str, first_delay: float, cap: float) -> CloudConfig:
    d = pki.devices[device]
    return CloudConfig(device_id=device, host=HOST, port=port, ca_file=pki.ca_cert, cert_file=d.cert, key_file=d.key,
                       sealing_key_file=d.sealing_key, platform_key_file=pki.platform_pub, backoff_base=1.0,
                       backoff_cap=cap, first_delay_max=first_delay, keepalive=60, watchdog_idle=600)


# --- worker: a slice of the fleet ----------------------------------------------------------

async def worker(pki: LabPki, port: int, devices: list[str], state: Path, first_delay: float, cap: float) -> None:
    links = [TimedLink(config(pki, port, dev, first_delay, cap), state_dir=state / dev) for dev in devices]
    try:
        for link in links:
            await link.start()
        await asyncio.wait_for(asyncio.gather(*(lk.wait_connected(SETTLE_TIMEOUT_S) for lk in links)),
                               SETTLE_TIMEOUT_S)
        print("ready", flush=True)
        deadline = time.monotonic() + 2 * SETTLE_TIMEOUT_S
        while any(len(getattr(lk, "live_at", [])) < 2 for lk in links) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        back = [lk.live_at[1] for lk in links if len(getattr(lk, "live_at", [])) >= 2]
        delays = [d for lk in links for d in lk.stats.delays]
        print(json.dumps({"back": back, "delays": delays, "clients": len(links)}), flush=True)
    finally:
        await asyncio.gather(*(lk.stop() for lk in links), return_exceptions=True)


# --- coordinator -----------------------------------------------------------------------------

WORKER_EXIT_S = 30.0
"""A worker prints its report and exits; one that does not within this is killed."""


def end_workers(workers: list[subprocess.Popen[str]]) -> None:
    """Wait for every worker process, killing the ones that outstay WORKER_EXIT_S."""
    for w in workers:
        try:
            w.wait(WORKER_EXIT_S)
        except subprocess.TimeoutExpired:
            w.kill()


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], timeout)[0]:
        raise TimeoutError("worker did not answer")
    return proc.stdout.readline()


def one_run(pki: LabPki, work: Path, n: int, first_delay: float, cap: float) -> dict[str, float]:
    port = free_port()
    broker_dir = work / f"broker-{port}"
    broker = lab_broker.start_broker(broker_dir, pki, HOST, port)
    devices = list(pki.devices)[:n]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", "--pki", str(pki.directory), "--port", str(port),
                                 "--state", str(work / f"state-{port}"), "--first-delay", str(first_delay),
                                 "--cap", str(cap), *devices[i:i + WORKER_CLIENTS]],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
               for i in range(0, n, WORKER_CLIENTS)]
    try:
        for w in workers:
            assert read_line(w, SETTLE_TIMEOUT_S).strip() == "ready"
        broker.kill()  # every client loses the broker at the same instant
        broker.wait()
        t0 = time.time()
        broker = lab_broker.start_broker(broker_dir, pki, HOST, port)
        reports = [json.loads(read_line(w, 2 * SETTLE_TIMEOUT_S)) for w in workers]
    finally:
        end_workers(workers)
        lab_broker.stop_broker(broker)
    back = sorted(t - t0 for r in reports for t in r["back"])
    delays = [d for r in reports for d in r["delays"]]
    buckets = [0] * (int(back[-1] / BUCKET_S) + 1)
    for t in back:
        buckets[int(t / BUCKET_S)] += 1
    mean = len(back) / max(back[-1], BUCKET_S)
    peak = max(buckets) / BUCKET_S
    return {"returned": len(back), "clients": n, "peak": peak, "mean": mean, "ratio": peak / mean,
            "last": back[-1], "max_delay": max(delays, default=0.0), "cap": cap}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 clients, 2 runs (< 30 s)")
    ap.add_argument("--clients", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--first-delay", type=float, default=None, help="random first delay ceiling, s (default 10; 5 quick)")
    ap.add_argument("--cap", type=float, default=30.0, help="back-off cap (s)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("devices", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    raise_fd_limit()
    first_delay = args.first_delay if args.first_delay is not None else (5.0 if args.quick else 10.0)
    if args.worker:
        asyncio.run(worker(pki_at(args.pki, args.devices), args.port, args.devices, args.state, first_delay, args.cap))
        return 0
    n = args.clients or (100 if args.quick else 500)
    runs = args.runs or (2 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-reconnect-") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        pki = create_lab_pki(work / "pki", [f"dev-{i:04d}" for i in range(n)], [HOST])
        print(f"{n} clients in {(n + WORKER_CLIENTS - 1) // WORKER_CLIENTS} processes; first delay <= "
              f"{first_delay:.0f}s, cap {args.cap:.0f}s; PKI in {time.monotonic() - t:.1f}s")
        results = []
        for r in range(runs):
            res = one_run(pki, work, n, first_delay, args.cap)
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

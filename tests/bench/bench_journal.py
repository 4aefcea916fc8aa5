"""Benchmark: flash writes per day and metering cost, meter + journal at steady 5 Mbit/s.

Simulates a day of one-second samples through UsageMeter and UsageJournal with a
FakeClock (the journal writes, fsyncs and compacts a real file in a temp dir), with a
cloud that acks everything every report interval, and again with the cloud offline
all day. Prints median / p95 over several runs beside the goals:

* journal writes (appends + compactions) < 1 MB per day;
* loss on power failure no worse than vnStat's 5 minutes (aim: the 60 s flush interval):
  measured as the longest stretch of simulated time between durable flushes;
* metering CPU per sample (meter.sample + journal.add, fsync included when it flushes),
  and the cost of one WanLink.counters() netlink read on ``lo``.

Run: .venv/bin/python tests/bench/bench_journal.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.clock import FakeClock
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter

RATE_BPS = 5_000_000  # steady user traffic, both directions together
DOWN_SHARE = 0.85  # typical downlink-heavy mix
MEAN_PACKET = 1200  # bytes: packet counts for the framing rule
SAMPLE_S = 1.0  # the sampler's period
ACK_EVERY_S = 60.0  # the cloud link reports and gets acks about once a minute
DAY_S = 86_400
GOAL_BYTES_PER_DAY = 1_000_000
GOAL_LOSS_S, AIM_LOSS_S = 300.0, 60.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def simulate(seconds: int, seed: int, online: bool, tmp: Path) -> dict[str, float]:
    """One simulated stretch; returns bytes written per day, worst loss window, sample costs."""
    rng = random.Random(seed)
    clock = FakeClock(epoch=1_767_193_200.0 + rng.uniform(0, 3600))  # around JST midnight
    journal = UsageJournal(tmp / f"usage-{seed}-{online}.journal", clock=clock)
    meter = UsageMeter(clock, header_bytes=0, boot_id="bench")
    meter.set_active_sim("8981000000000000001", "440101234567890", "440")
    rxb = txb = rxp = txp = 0
    costs: list[float] = []
    last_durable, worst_gap, durable_seen = clock.wall(), 0.0, None
    next_ack = ACK_EVERY_S
    for t in range(seconds):
        clock.advance(SAMPLE_S)
        nbytes = int(RATE_BPS / 8 * SAMPLE_S * rng.uniform(0.8, 1.2))
        down = int(nbytes * DOWN_SHARE)
        rxb, txb = rxb + down, txb + nbytes - down
        rxp, txp = rxp + down // MEAN_PACKET, txp + (nbytes - down) // MEAN_PACKET
        start = time.perf_counter()
        deltas = meter.sample(Counters(3, rxb, txb, rxp, txp))
        journal.add(deltas, meter.baseline(), meter.baseline_wall())
        costs.append(time.perf_counter() - start)
        if journal.baseline() is not durable_seen:
            durable_seen = journal.baseline()
            worst_gap = max(worst_gap, clock.wall() - last_durable)
            last_durable = clock.wall()
        if online and t >= next_ack:
            got = journal.pending(10_000)
            if got:
                journal.ack(got[-1][0])
            next_ack += ACK_EVERY_S
    worst_gap = max(worst_gap, clock.wall() - last_durable)
    journal.close()
    size = (tmp / f"usage-{seed}-{online}.journal").stat().st_size
    return {"per_day": journal.bytes_written * DAY_S / seconds, "loss_s": worst_gap,
            "costs": costs, "size": size}  # type: ignore[dict-item]


def netlink_read_cost(n: int) -> list[float]:
    """Seconds per WanLink.counters() on lo (one netlink request/answer)."""
    from agent.net.link import WanLink

    link = WanLink("lo")
    out = []
    for _ in range(n):
        start = time.perf_counter()
        link.counters()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of 2 simulated hours (< 30 s)")
    args = parser.parse_args()
    runs, seconds = (3, 7200) if args.quick else (5, DAY_S)
    print(f"{runs} runs x {seconds} s simulated at {RATE_BPS / 1e6:.0f} Mbit/s, sample {SAMPLE_S} s"
          + (" (quick: per-day figures extrapolated)" if args.quick else ""))
    with tempfile.TemporaryDirectory() as d:
        for online in (True, False):
            results = [simulate(seconds, seed, online, Path(d)) for seed in range(runs)]
            per_day = [r["per_day"] for r in results]
            loss = [r["loss_s"] for r in results]
            costs = [c for r in results for c in r["costs"]]  # type: ignore[union-attr]
            label = "cloud acking every 60 s" if online else "cloud offline all day"
            print(f"\n[{label}]")
            print(f"  journal writes/day : median {statistics.median(per_day) / 1e3:8.1f} kB   "
                  f"p95 {pct(per_day, 0.95) / 1e3:8.1f} kB   goal < {GOAL_BYTES_PER_DAY / 1e3:.0f} kB")
            print(f"  loss window        : median {statistics.median(loss):8.1f} s    "
                  f"p95 {pct(loss, 0.95):8.1f} s    goal <= {GOAL_LOSS_S:.0f} s (aim {AIM_LOSS_S:.0f} s)")
            print(f"  file size at end   : max {max(r['size'] for r in results) / 1e3:.1f} kB")
            print(f"  cost per sample    : median {statistics.median(costs) * 1e6:7.1f} us  "
                  f"p95 {pct(costs, 0.95) * 1e6:7.1f} us  p99 {pct(costs, 0.99) * 1e6:7.1f} us  "
                  f"(= {statistics.mean(costs) / SAMPLE_S * 100:.4f} % of one CPU at 1 sample/s)")
    try:
        reads = netlink_read_cost(50 if args.quick else 300)
        print(f"\nWanLink.counters() on lo: median {statistics.median(reads) * 1e6:.0f} us  "
              f"p95 {pct(reads, 0.95) * 1e6:.0f} us  p99 {pct(reads, 0.99) * 1e6:.0f} us")
    except Exception as exc:  # noqa: BLE001 - the bench reports, never dies on this part
        print(f"\nWanLink.counters() not measured: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

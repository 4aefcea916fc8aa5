"""Fleet scenario "update 100,000 routers": a rollout in waves against the platform's capacity.

    python -m board.fleet.update [--devices 100000] [--bad] [--seed 1]

Each router is placed in a wave (board/virtual/cloud/rollout.py), offered the release at a
uniform moment of its wave's window, fetches the artifact in 8 KiB chunks (one request and
one answer each, agent/update/chunks.py) at its link's rate, restarts and reports the
outcome after the gate (the lab's measured 13 s). Per second, the broker's messages and the
platform's outbound bytes are counted. A bad release fails on every router: the abort rule
stops the rollout in the canary, and the figure is how many routers took it.

This is a model of arrivals, not a replay of the agent (board/fleet/sim.py drives the
agent's own pacing code for reconnects and swaps): the update's load is the offers' timing,
which the platform sets, and the fetch's length, which the link sets.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass

from agent.update.chunks import CHUNK_BYTES
from board.virtual.cloud.rollout import FAILURE, SUCCESS, Rollout, RolloutPlan, offer_time, wave_of

ARTIFACT_BYTES = 396_232
"""The release measured in the lab (tests/bench/bench_update.py)."""
WIRE_FACTOR = 540_136 / 396_232
"""The update's messages per artifact byte (base64 and headers), measured the same way."""
GATE_S = 13.0
"""Offer to committed in the lab, median (the fetch there is local and fast)."""
LINK_MBPS_MEDIAN, LINK_MBPS_SIGMA = 8.0, 0.8
"""A cellular downlink per router: lognormal around 8 Mbit/s (spread e^0.8: p5 2.1, p95 30)."""
THROTTLED_SHARE, THROTTLED_KBPS = 0.05, 256
"""Routers that fetch on a throttled SIM (the updater defers only when the allowance is low)."""
BROKER_MSGS_PER_S = 20_000
"""A managed broker's publish rate per account (AWS IoT Core's default is 20,000/s inbound)."""


@dataclass
class UpdateOutcome:
    devices: int
    offered: int
    committed: int
    failed: int
    aborted_at_s: float | None
    peak_msgs_per_s: int
    peak_mbit_per_s: float
    t99_s: float | None

    def lines(self) -> list[str]:
        abort = f"aborted at {self.aborted_at_s / 60:.0f} min" if self.aborted_at_s is not None else "not aborted"
        t99 = f"after {self.t99_s / 3600:.1f} h" if self.t99_s is not None else "never"
        return [(f"devices {self.devices}: offered {self.offered}, committed {self.committed}, rolled back "
                f"{self.failed}; {abort}"),
                (f"peak broker messages {self.peak_msgs_per_s}/s (capacity {BROKER_MSGS_PER_S}/s), peak outbound "
                f"{self.peak_mbit_per_s:.0f} Mbit/s; 99 % committed {t99}")]


def fetch_s(rng: random.Random) -> float:
    """One router's fetch time: its link rate, or a throttled SIM's."""
    if rng.random() < THROTTLED_SHARE:
        kbps = THROTTLED_KBPS
    else:
        kbps = 1000 * LINK_MBPS_MEDIAN * math.exp(rng.gauss(0.0, LINK_MBPS_SIGMA))
    return ARTIFACT_BYTES * WIRE_FACTOR * 8 / (kbps * 1000)


def simulate(devices: int = 100_000, bad: bool = False, plan: RolloutPlan | None = None,
             seed: int = 1) -> UpdateOutcome:
    """Offers in time order; each outcome is recorded when it arrives, so an abort stops
    every offer that would have come after it (and not those already made)."""
    plan = plan or RolloutPlan()
    rng = random.Random(seed)
    rollout = Rollout("r1", plan, started=0.0)
    offers = sorted((offer_time(rollout.wave_start(w), plan, rng), w)
                    for w in (wave_of("r1", f"rtr-{i:06d}", plan) for i in range(devices)))
    msgs: Counter[int] = Counter()
    out_bytes: Counter[int] = Counter()
    results: list[tuple[float, int, str]] = []
    done_at: list[float] = []
    offered = 0
    for at, wave in offers:
        while results and results[0][0] <= at:  # outcomes that arrived before this offer
            t, w, status = heapq.heappop(results)
            rollout.record(w, status, t)
        if not rollout.may_offer(wave, at):
            continue
        offered += 1
        took = fetch_s(rng)
        chunks = math.ceil(ARTIFACT_BYTES / CHUNK_BYTES)
        for k in range(chunks):  # request + answer per chunk, spread over the fetch
            second = int(at + took * k / chunks)
            msgs[second] += 2
            out_bytes[second] += int(CHUNK_BYTES * WIRE_FACTOR)
        end = at + took + GATE_S
        heapq.heappush(results, (end, wave, FAILURE if bad else SUCCESS))
        if not bad:
            done_at.append(end)
    for t, w, status in sorted(results):
        rollout.record(w, status, t)
    done_at.sort()
    t99 = done_at[math.ceil(0.99 * devices) - 1] if len(done_at) >= math.ceil(0.99 * devices) else None
    return UpdateOutcome(devices, offered, len(done_at), offered - len(done_at), rollout.aborted_at,
                         max(msgs.values(), default=0), max(out_bytes.values(), default=0) * 8 / 1e6, t99)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--bad", action="store_true", help="a release that fails on every router")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    for bad in ([args.bad] if args.bad else [False, True]):
        print(f"{'bad' if bad else 'good'} release, waves {RolloutPlan().waves}, window "
              f"{RolloutPlan().window_s / 60:.0f} min each:")
        for line in simulate(args.devices, bad, seed=args.seed).lines():
            print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

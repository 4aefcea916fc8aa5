"""The fleet's rollout of a release (issue 26): peak broker load, peak outbound rate and time
to 99 % committed for 100,000 routers in waves; a bad release stopped in the 1 % canary.

    .venv/bin/python tests/bench/bench_rollout.py [--quick]

A model (board/fleet/update.py) fed with the lab's measured figures (bench_update.py): the
release's size, its bytes on the wire and the gate's time; each seed is one fleet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from board.fleet.update import BROKER_MSGS_PER_S, simulate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 routers, two seeds")
    args = parser.parse_args()
    devices, seeds = (10_000, 2) if args.quick else (100_000, 3)
    good = [simulate(devices, bad=False, seed=s) for s in range(1, seeds + 1)]
    bad = [simulate(devices, bad=True, seed=s) for s in range(1, seeds + 1)]
    print(f"{devices} routers, {seeds} seeds; medians:")
    print(f"  good release: peak broker {statistics.median(o.peak_msgs_per_s for o in good):.0f} msg/s "
          f"(capacity {BROKER_MSGS_PER_S}), peak outbound {statistics.median(o.peak_mbit_per_s for o in good):.0f} "
          f"Mbit/s, 99 % committed after {statistics.median(o.t99_s or 0 for o in good) / 3600:.1f} h")
    print(f"  bad release: aborted after {statistics.median(o.aborted_at_s or 0 for o in bad) / 60:.1f} min, "
          f"{statistics.median(o.offered for o in bad):.0f} routers took it (canary is 1 %: {devices // 100})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

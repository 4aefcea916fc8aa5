"""``python -m board.fleet``: run the fleet scenarios and print the morning-after figures.

    python -m board.fleet                          # 100,000 devices, every scenario, paced and 2020
    python -m board.fleet --devices 2000 --scale 0.1 --scenario restart
    python -m board.fleet --policy                 # only the policy the platform would send
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from board.fleet.scenarios import (
    ASSIGNMENTS,
    CONNECTIONS,
    REGION_SHARE,
    SCENARIOS,
    report,
    scaled,
    size_policy,
)

FLEET = 100_000
"""The 2020 scale: more than 30,000 users, fewer than 100,000 devices (domain.md)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m board.fleet", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--devices", type=int, default=FLEET, help=f"fleet size (default {FLEET:,})")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="platform capacity relative to the default model (1.0: 250 connections/s, 200 assignments/s)")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                    help="run only this scenario (repeatable; default all)")
    ap.add_argument("--variant", choices=("paced", "2020", "both"), default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sized-for", type=int, default=None, metavar="N",
                    help="devices get a policy sized for N devices (what a stale policy does to a larger fleet)")
    ap.add_argument("--policy", action="store_true", help="print the sized pacing policy as JSON and stop")
    args = ap.parse_args(argv)
    if args.devices < 1 or args.scale <= 0:
        ap.error("--devices must be >= 1 and --scale > 0")
    sized = args.sized_for or args.devices
    policy = size_policy(sized, int(sized * REGION_SHARE), scaled(CONNECTIONS, args.scale),
                         scaled(ASSIGNMENTS, args.scale))
    if args.policy:
        print(json.dumps({"pacing": {k: v for k, v in policy.to_dict().items() if k != "version"}}))
        return 0
    print(f"pacing policy sized for {sized:,} devices: {json.dumps(policy.to_dict())}", flush=True)
    variants = {"paced": [True], "2020": [False], "both": [True, False]}[args.variant]
    started = time.monotonic()
    outcomes = []
    for name in args.scenario or list(SCENARIOS):
        for paced in variants:
            outcomes.append(SCENARIOS[name](args.devices, paced, seed=args.seed, scale=args.scale,
                                            sized_for=args.sized_for))
            print(report(outcomes[-1:]), flush=True)
    print(f"simulated {len(outcomes)} runs in {time.monotonic() - started:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())

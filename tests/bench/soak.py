"""``make soak``: random faults in the lab under LAN traffic, one at a time, and how the
agent came back from each (issue 9).

Brings its own lab up (``$POCKET_LAB_DIR``/``$POCKET_LAB_PREFIX``, default
/run/pocket-lab-soak and prefix ``sk``), runs for ``SOAK_SECONDS`` (default 1200), and
prints per fault kind the recovery time (fault ended -> serving again: median, p95,
worst) against the modelled minimum of the steps it needs (virtual modem latencies;
goal: p95 under minimum + 2 s), the share of seconds served while the network allowed
it, crashes (goal 0), and the usage difference carrier vs cloud per SIM (goal 0 bytes).
Root only. ``--reuse`` drives a lab that is already up and leaves it up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

os.environ.setdefault("POCKET_LAB_DIR", "/run/pocket-lab-soak")
os.environ.setdefault("POCKET_LAB_PREFIX", "sk")

from board.virtual.network import chaos

LAB_DIR = Path(os.environ["POCKET_LAB_DIR"])
DEFAULT_SECONDS = 1200.0
"""The issue's 20 minutes: about a hundred faults at 10-15 s each."""


def lab(*args: str, timeout: float = 240) -> str:
    proc = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True, capture_output=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pocket-lab {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def agent_pid() -> int | None:
    return chaos.agent_pid(LAB_DIR)


def soak(seconds: float, seed: int, log: Any = print) -> dict[str, Any]:
    """Run the soak against the lab that is up; the figures as a dict."""
    status = json.loads(lab("status", "--json"))
    probe = chaos.ServingProbe(status["namespaces"]["lan"], status["reflector"]["address"]).start()
    lab("traffic", "start", "--kind", "web", "--duration", str(seconds + 120))
    try:
        if probe.wait_serving(time.monotonic(), 30) is None:
            raise RuntimeError("the lab is not serving before the soak")
        result = chaos.run_soak(lab, probe, seconds, random.Random(seed), agent_pid=agent_pid, log=log)
    finally:
        lab("traffic", "stop")
        lab("fault", "clear")
        probe.stop()
    lab("agent", "stop")  # a quiet link: the journal holds what the cloud has not acked
    try:
        usage = json.loads(lab("usage", "--json"))
        result["usage_difference"] = chaos.usage_difference(usage, chaos.journal_pending(LAB_DIR))
    finally:
        lab("agent", "start")
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"\nsoak: {result['seconds']:.0f} s, {result['faults']} faults, served "
          f"{100 * result['served_share']:.2f} % of the seconds the network allowed, crashes {result['crashes']}")
    print(f"{'fault':12} {'n':>3} {'median':>7} {'p95':>7} {'worst':>7} {'minimum':>8}  goal (p95 <= min + 2 s)")
    for kind, row in result["recovery"].items():
        if not row["n"]:
            print(f"{kind:12} {0:3}")
            continue
        print(f"{kind:12} {row['n']:3} {row['median_s']:7.2f} {row['p95_s']:7.2f} {row['worst_s']:7.2f} "
              f"{row['minimum_s']:8.2f}  {'met' if row['goal_met'] else 'MISSED'}"
              + (f", {row['failures']} not recovered" if row["failures"] else ""))
    print("usage difference, cloud + journal - carrier (bytes):")
    for iccid, diff in result.get("usage_difference", {}).items():
        print(f"  {iccid}: up {diff['up']:+d}, down {diff['down']:+d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", DEFAULT_SECONDS)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "9")))
    parser.add_argument("--reuse", action="store_true", help="use the lab that is up; leave it up")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make soak needs root (the lab: namespaces, tc, nftables)", file=sys.stderr)
        return 1
    if not args.reuse:
        lab("down")
        lab("up")
    try:
        result = soak(args.seconds, args.seed)
    finally:
        if not args.reuse:
            lab("down")
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["crashes"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

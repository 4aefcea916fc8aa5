"""``make run``: bring the whole virtual board up and watch the agent work.

It runs ``pocket-lab up``, starts bulk traffic from the LAN host, and prints once every
two seconds what the agent is doing: its SIM, the usage the carrier counted beside what
the cloud ingested, and the live classification with its evidence. Halfway through it
uses up the SIM's cap at the carrier (``pocket-lab throttle``) so you can watch the agent
notice. It stops by itself after ``--seconds`` (default 180) or on Ctrl-C, and takes the
lab down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_SECONDS = 180.0
PRINT_EVERY = 2.0


def lab(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True,
                          capture_output=capture, check=False)


def agent_status(lab_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((lab_dir / "agent" / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def line(lab_dir: Path, elapsed: float) -> str:
    status = agent_status(lab_dir)
    usage = json.loads(lab("usage", "--json", capture=True).stdout or "{}")
    sim = (status.get("sim") or {}).get("iccid", "-")
    row = usage.get(sim, {"carrier": {"up": 0, "down": 0}, "cloud": {"up": 0, "down": 0}})
    health = status.get("health") or {}
    rate = health.get("rate_kbps")
    return (f"t={elapsed:5.0f}s  {status.get('state', '?'):8} sim {sim}  "
            f"carrier {row['carrier']['down'] / 1e6:8.2f} MB down  cloud {row['cloud']['down'] / 1e6:8.2f} MB  "
            f"health {health.get('state', '-')}{f' ~{rate:.0f} kbps' if rate else ''}  "
            f"{json.dumps(health.get('evidence', {}), separators=(',', ':'))[:80]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", DEFAULT_SECONDS)))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make run needs root: the lab builds network namespaces, tc policers and nftables rules.")
        return 1
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    print("bringing the virtual board up (modem, carrier network, broker, cloud, agent)...", flush=True)
    if lab("up").returncode != 0:
        lab("down")
        return 1
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        lab("traffic", "start", "--kind", "bulk", "--duration", str(args.seconds))
        start = time.monotonic()
        throttled = False
        while not stop["now"] and time.monotonic() - start < args.seconds:
            elapsed = time.monotonic() - start
            if not throttled and elapsed > args.seconds / 2:
                lab("throttle", "--rate", "128")
                throttled = True
            print(line(lab_dir, elapsed), flush=True)
            time.sleep(PRINT_EVERY)
        print("\ncloud events:", flush=True)
        events = lab("events", "--json", capture=True).stdout
        for entry in json.loads(events or "[]")[-10:]:
            print("  ", json.dumps(entry)[:160])
    finally:
        lab("traffic", "stop")
        lab("down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 23's benchmark: from a carrier's failure to serving on another carrier.

    sudo .venv/bin/python tests/bench/bench_escape.py [--quick] [--runs 10] [--bound 10]
    POCKET_LAB_PREFIX=p POCKET_LAB_DIR=/run/pocket-lab-p ... --running   # a lab up with --carriers 2

It brings up its own lab with two carriers (namespace prefix ``pwes``,
``/run/pocket-lab-escape``; ``--running`` uses the lab the environment names, which must
have been brought up with ``--carriers 2``), sets the policy's escape bound to
``--bound`` seconds, and for each fault kind (``outage``: no registration; ``blackhole``:
registered, the bearer up, nothing answers) runs ``--runs`` times:

1. the router is put on a carrier-B SIM (``pocket-lab swap --carrier B``);
2. carrier B fails (``pocket-lab fault KIND --carrier B``); the clock starts when the
   command returns (the fault is in place by then);
3. the clock stops when the agent serves on a carrier-A pool SIM (its status file, read
   every 0.1 s), then one UDP echo from the LAN host must pass through it.

No LAN traffic runs, so every byte the carrier counts on the seed SIM meanwhile is the
agent's own: the escape's cost in own bytes (attach, the TLS session to the broker, the
request and the sealed assignment, the echoes). Prints median and p95 per kind beside the
bound plus the modelled minimum (detection, the seed SIM's slot switch + attach + data
context, the swap's own). Never fails on speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.cloud.pacing import RESUME_WINDOW_S
from agent.health.thresholds import BLACKHOLE_SECONDS, ENTER_HOLD, NO_SERVICE_SECONDS
from board.virtual.modem.model import ATTACH_LATENCY, CONTEXT_LATENCY, SLOT_SWITCH_LATENCY
from board.virtual.network import chaos
from tests.bench.figures import line
from tests.bench.labrun import lab

OWN_LAB = {"POCKET_LAB_PREFIX": "pwes", "POCKET_LAB_DIR": "/run/pocket-lab-escape"}
"""The bench's own lab unless --running."""
A, B = "44010", "44020"
SWITCH_S = SLOT_SWITCH_LATENCY + ATTACH_LATENCY + CONTEXT_LATENCY
"""One SIM switch on the virtual modem: slot switch, attach, data context."""
MAX_RUNS = 14
"""Runs per kind: with the agent restarted per kind, 1 boot swap + 2 per run stays within
the policy's highest hourly limit (30); beyond it the limit, not the escape, is measured."""
DETECT_S = {"outage": 1.0 + ENTER_HOLD["no_service"],
            "blackhole": BLACKHOLE_SECONDS + ENTER_HOLD["no_service"]}
"""Modelled detection: the next 1-s sample and the hold; a black hole's silent window."""
STEP_TIMEOUT_S = 120.0
STATUS_POLL_S = 0.1


def lab_dir() -> Path:
    return Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))


def status() -> dict[str, Any]:
    try:
        return json.loads((lab_dir() / "agent" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def serving_on(plmn: str) -> bool:
    st = status()
    sim = st.get("sim") or {}
    return st.get("state") == "serving" and not sim.get("seed") and sim.get("plmn") == plmn


def wait(what: str, check: Any, timeout: float = STEP_TIMEOUT_S) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(STATUS_POLL_S)
    raise SystemExit(f"{what}: not within {timeout:.0f} s")


def seed_bytes(seed: str) -> int:
    row = json.loads(lab("usage", "--json")).get(seed, {}).get("carrier", {})
    return int(row.get("up", 0)) + int(row.get("down", 0))


def one_escape(kind: str, probe: chaos.ServingProbe, seed: str) -> tuple[float, int]:
    """(seconds from the fault to serving on A, seed-SIM bytes spent)."""
    if not serving_on(B):
        lab("swap", "--carrier", "B")
        wait("on carrier B", lambda: serving_on(B))
    wait("the LAN served on carrier B", probe.once, 30)
    before = seed_bytes(seed)
    lab("fault", kind, "--carrier", "B", "--seconds", "300")
    took = wait(f"serving on carrier A after {kind}", lambda: serving_on(A))
    wait("the LAN served on carrier A", probe.once, 30)
    lab("fault", "clear")
    return took, seed_bytes(seed) - before


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--running", action="store_true", help="use the lab the environment names")
    parser.add_argument("--quick", action="store_true", help="3 runs per kind")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--bound", type=int, default=10, help="the policy's escape_after_s (>= 10)")
    parser.add_argument("--kinds", default="outage,blackhole", help="comma-separated: outage, blackhole")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("skipped: the lab needs root (namespaces, nftables)")
        return 0
    runs = min(MAX_RUNS, 3 if args.quick else args.runs)
    if not args.running:
        os.environ.update(OWN_LAB)
        lab("down")
        lab("up", "--carriers", "2")
    try:
        lab("policy", "--set", f"escape_after_s={args.bound}", "--set", "max_per_hour=30", "--set", "max_per_day=200")
        time.sleep(2.0)  # the retained policy reaches the agent over its live session
        st = json.loads(lab("status", "--json"))
        seed = json.loads((lab_dir() / "pool.json").read_text())["seed"]["iccid"]
        probe = chaos.ServingProbe(st["namespaces"]["lan"], st["reflector"]["address"])
        results: dict[str, tuple[list[float], list[float]]] = {}
        for kind in args.kinds.split(","):
            # A fresh agent per kind: each run is two swaps (onto B, the escape), and the
            # policy's hourly limit (at most 30) counts every one; past it an escape waits.
            lab("agent", "restart")
            times, costs = [], []
            for _ in range(runs):
                took, cost = one_escape(kind, probe, seed)
                times.append(took)
                costs.append(float(cost))
                print(f"  {kind}: serving on carrier A {took:.1f} s after the fault, seed SIM {cost} bytes", flush=True)
            results[kind] = (times, costs)
    finally:
        if not args.running:
            lab("down")
    print(f"\nfrom carrier B's failure to serving on carrier A, escape bound {args.bound} s, {runs} runs each:")
    for kind, (times, costs) in results.items():
        modelled = args.bound + DETECT_S[kind] + 2 * SWITCH_S + RESUME_WINDOW_S / 2
        print(line(f"{kind} (modelled {modelled:.1f} s)", times, "s"))
        print(line(f"{kind}: own bytes per escape", costs, "B"))
    print(f"(modelled: the bound + detection ({NO_SERVICE_SECONDS:g}-{BLACKHOLE_SECONDS:g} s silent, "
          f"{ENTER_HOLD['no_service']:g} s hold) + two switches of {SWITCH_S:.1f} s: onto the seed, onto A, + the "
          f"mean of the fleet's resume spread, uniform over {RESUME_WINDOW_S:g} s, before the cloud link is back)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

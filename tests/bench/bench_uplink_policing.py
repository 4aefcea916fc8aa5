"""Uplink accounting under policing: what the device counted as sent versus what the
carrier counted (docs/usage.md, "Uplink accounting under policing").

    sudo .venv/bin/python tests/bench/bench_uplink_policing.py [--quick] [--rate 128] [--seconds 40]

In its own lab (prefix ``pwup``), the SIM is policed at ``--rate`` kbit/s and the LAN host
uploads for ``--seconds``; then the agent is stopped (a quiet link) and, per direction,
the device's count (cloud total + journal records not yet acknowledged) is compared with
the carrier's billing counters. Uplink: device - carrier = what the policer dropped
after the bytes left the device. Downlink: equal (the policer drops before the device).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.labrun import lab

OWN_LAB = {"POCKET_LAB_PREFIX": "pwup", "POCKET_LAB_DIR": "/run/pocket-lab-uplink"}
SETTLE_S = 5.0
"""After the load: TCP's last retransmissions and the server's ACKs still cross the link;
counted by the carrier, they must be counted by the device too before it stops."""


def device_count(lab_dir: Path, iccid: str) -> dict[str, int]:
    """Cloud total plus the stopped agent's journal records the cloud has not ingested."""
    from agent.clock import Clock
    from agent.usage.journal import UsageJournal

    totals = json.loads(lab("usage", "--json"))[iccid]["cloud"]
    ingested = {json.loads(line)["body"]["seq"] for line in (lab_dir / "cloud" / "events.jsonl").read_text().splitlines()
                if json.loads(line).get("kind") == "usage"}
    journal = UsageJournal(lab_dir / "agent" / "state" / "usage.journal", clock=Clock())
    up, down = totals["up"], totals["down"]
    for seq, body in journal.pending(1_000_000):
        if body["iccid"] == iccid and seq not in ingested:
            up += body["tx_bytes"]
            down += body["rx_bytes"]
    journal.close()
    return {"up": up, "down": down}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20 s of upload")
    parser.add_argument("--rate", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("skipped: the lab needs root (namespaces, nftables)")
        return 0
    seconds = 20.0 if args.quick else args.seconds
    os.environ.update(OWN_LAB)
    lab_dir = Path(OWN_LAB["POCKET_LAB_DIR"])
    lab("down")
    status = json.loads(lab("up", "--json"))
    try:
        iccid = json.loads((lab_dir / "agent" / "status.json").read_text())["sim"]["iccid"]
        lab("throttle", "--rate", str(args.rate))
        load = subprocess.run(["ip", "netns", "exec", status["namespaces"]["lan"], sys.executable, "-m",
                               "board.virtual.network.traffic", "--kind", "upload", "--bytes", str(50_000_000),
                               "--duration", str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                              check=False, cwd=REPO)
        sent = json.loads(load.stdout.strip().splitlines()[-1]) if load.stdout.strip() else {}
        lab("throttle", "--off")
        time.sleep(SETTLE_S)  # the upload's last retransmissions and ACKs, counted by both sides
        lab("agent", "stop")
        carrier = json.loads(lab("usage", "--json"))[iccid]["carrier"]
        device = device_count(lab_dir, iccid)
    finally:
        lab("down")
    up_gap, down_gap = device["up"] - carrier["up"], device["down"] - carrier["down"]
    print(f"SIM policed at {args.rate} kbit/s, LAN host uploading {seconds:.0f} s "
          f"(application bytes sent: {sent.get('bytes_up')}):")
    print(f"  uplink:   device {device['up']} bytes, carrier {carrier['up']} bytes: dropped by the policer "
          f"{up_gap} bytes ({100 * up_gap / max(device['up'], 1):.1f} % of what left the device)")
    print(f"  downlink: device {device['down']} bytes, carrier {carrier['down']} bytes: difference {down_gap}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 4 in the real lab: exact usage, SIGKILL restarts, and a policer that really polices."""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from tests.lab.conftest import agent_status, in_ns, lab, lab_json, wait_until

TRANSFER_BYTES = 50_000_000
"""The issue's 50 MB transfer."""
SETTLE_TIMEOUT = 90.0
"""Report interval (10 s in the lab) + flush + cloud ingest + ack, several times over."""


def current_iccid() -> str:
    return agent_status()["sim"]["iccid"]


def converged(iccid: str) -> dict[str, Any] | None:
    """The cloud's totals for ``iccid`` once they equal the carrier's count (else None)."""
    row = lab_json("usage").get(iccid)
    if row and row["carrier"] == row["cloud"] and row["carrier"]["down"] > 0:
        return row
    return None


def download(ns: str, nbytes: int, seconds: float = 120) -> dict[str, Any]:
    proc = in_ns(ns, sys.executable, "-m", "board.virtual.traffic", "--kind", "bulk", "--flows", "1",
                 "--bytes", str(nbytes), "--duration", str(seconds))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lab_status_names_the_contract_keys(running_lab: dict[str, Any]) -> None:
    for key in ("device_id", "namespaces", "reflector", "broker", "agent"):
        assert key in running_lab
    assert set(running_lab["namespaces"]) >= {"device", "internet", "lan"}
    assert running_lab["broker"]["spare_device"]["cert"].startswith("/")
    assert agent_status()["state"] == "serving"
    assert not agent_status()["sim"]["seed"], "the agent should serve on its assigned SIM, not the seed"


def test_50mb_transfer_cloud_total_equals_carrier_count(running_lab: dict[str, Any]) -> None:
    iccid = current_iccid()
    before = lab_json("usage").get(iccid, {"carrier": {"down": 0}})["carrier"]["down"]
    result = download(running_lab["namespaces"]["lan"], TRANSFER_BYTES)
    assert result["bytes_down"] == TRANSFER_BYTES
    row = wait_until("cloud total equals carrier count", lambda: converged(iccid), SETTLE_TIMEOUT)
    moved = row["carrier"]["down"] - before
    print(f"\n50 MB transfer: carrier counted {moved} bytes down; cloud - carrier = "
          f"{row['cloud']['down'] - row['carrier']['down']} down, {row['cloud']['up'] - row['carrier']['up']} up")
    assert moved >= TRANSFER_BYTES  # payload plus TCP/IP headers


def test_sigkill_twenty_times_during_traffic_loses_and_doubles_nothing(running_lab: dict[str, Any]) -> None:
    iccid = current_iccid()
    rng = random.Random(4)
    lab("traffic", "start", "--kind", "bulk", "--duration", "300")
    try:
        for _ in range(20):
            time.sleep(rng.uniform(0.2, 1.5))
            lab("agent", "kill")
            lab("agent", "restart")
            assert current_iccid() == iccid, "a restarted agent must resume on the same SIM"
    finally:
        lab("traffic", "stop")
    row = wait_until("cloud total equals carrier count after 20 kills", lambda: converged(iccid), SETTLE_TIMEOUT)
    print(f"\nafter 20 SIGKILLs: carrier {row['carrier']}, cloud {row['cloud']}")


def test_throttle_128_really_limits_the_sim(running_lab: dict[str, Any]) -> None:
    lab("throttle", "--rate", "128")
    try:
        download(running_lab["namespaces"]["lan"], 40_000, seconds=5)  # let the bucket drain
        result = download(running_lab["namespaces"]["lan"], 10_000_000, seconds=20)
        kbps = result["bytes_down"] * 8 / 1000 / result["seconds"]
        print(f"\nthrottled download: {kbps:.1f} kbps measured through the lab (policer at 128)")
        assert 0.8 * 128 <= kbps <= 1.2 * 128
    finally:
        lab("throttle", "--off")

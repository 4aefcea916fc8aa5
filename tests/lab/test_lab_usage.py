"""Issue 4 in the real lab: exact usage, SIGKILL restarts, and a policer that really polices."""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from tests.lab.conftest import LAB_DIR, agent_status, in_ns, lab, lab_json

UPLINK_STRAY_BYTES = 2 * 1500
"""Bound on uplink bytes counted by the device and not by the carrier over 20 restarts."""
TRANSFER_BYTES = 50_000_000
"""The issue's 50 MB transfer."""


def current_iccid() -> str:
    return agent_status()["sim"]["iccid"]


def journal_pending(iccid: str) -> dict[str, int]:
    """Bytes the stopped agent journaled but the cloud has not acknowledged yet."""
    from agent.clock import Clock
    from agent.usage.journal import UsageJournal

    ingested = set()
    for line in (LAB_DIR / "cloud" / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") == "usage":
            ingested.add((event["body"].get("epoch", ""), event["body"]["seq"]))
    journal = UsageJournal(LAB_DIR / "agent" / "state" / "usage.journal", clock=Clock())
    out = {"up": 0, "down": 0}
    for seq, body in journal.pending(1_000_000):
        # A record the cloud ingested but whose ack arrived after the disconnect is still
        # pending here; the cloud de-duplicates it by epoch and seq, and so must this comparison.
        if body["iccid"] == iccid and (journal.epoch_of(seq)[0], seq) not in ingested:
            out["up"] += body["tx_bytes"]
            out["down"] += body["rx_bytes"]
    journal.close()
    return out


def exact_cut(iccid: str) -> dict[str, Any]:
    """Stop the agent (a quiet link), compare cloud + journal-pending with the carrier,
    then start it again. Returns the figures; the difference must be zero."""
    lab("agent", "stop")
    try:
        row = lab_json("usage")[iccid]
        pending = journal_pending(iccid)
        diff = {d: row["cloud"][d] + pending[d] - row["carrier"][d] for d in ("up", "down")}
        return {"carrier": row["carrier"], "cloud": row["cloud"], "pending": pending, "diff": diff}
    finally:
        lab("agent", "start")


def download(ns: str, nbytes: int, seconds: float = 120) -> dict[str, Any]:
    proc = in_ns(ns, sys.executable, "-m", "board.virtual.network.traffic", "--kind", "bulk", "--flows", "1",
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


def since(before: dict[str, Any], cut: dict[str, Any]) -> dict[str, Any]:
    """A cut's difference less the one the SIM already had (bytes in flight at an earlier
    bearer drop, docs/swap.md): what this test's own traffic added."""
    return dict(cut, diff={d: cut["diff"][d] - before["diff"][d] for d in ("up", "down")})


def test_50mb_transfer_cloud_total_equals_carrier_count(running_lab: dict[str, Any]) -> None:
    iccid = current_iccid()
    before = exact_cut(iccid)
    result = download(running_lab["namespaces"]["lan"], TRANSFER_BYTES)
    assert result["bytes_down"] == TRANSFER_BYTES
    cut = since(before, exact_cut(iccid))
    print(f"\n50 MB transfer: carrier {cut['carrier']}, cloud {cut['cloud']}, journal pending {cut['pending']}; "
          f"cloud + pending - carrier = {cut['diff']} bytes (framing rule: IP bytes)")
    assert cut["carrier"]["down"] >= TRANSFER_BYTES  # payload plus TCP/IP headers
    assert cut["diff"] == {"up": 0, "down": 0}


def test_sigkill_twenty_times_during_traffic_loses_and_doubles_nothing(running_lab: dict[str, Any]) -> None:
    iccid = current_iccid()
    before = exact_cut(iccid)
    rng = random.Random(4)
    lab("traffic", "start", "--kind", "bulk", "--duration", "300")
    try:
        for _ in range(20):
            time.sleep(rng.uniform(0.2, 1.5))
            lab("agent", "kill")
            lab("agent", "start")
            assert current_iccid() == iccid, "a restarted agent must resume on the same SIM"
    finally:
        lab("traffic", "stop")
    cut = since(before, exact_cut(iccid))
    print(f"\nafter 20 SIGKILLs under load: carrier {cut['carrier']}, cloud {cut['cloud']}, "
          f"pending {cut['pending']}; difference {cut['diff']}")
    assert cut["diff"]["down"] == 0
    # The 52-byte uplink strays once seen here (208 bytes in one run) were LAN FINs leaving
    # un-NATed after a NAT flush; the lab router now drops them as fw4 does (docs/swap.md).
    # The bound stays until full runs have shown zero.
    assert 0 <= cut["diff"]["up"] <= UPLINK_STRAY_BYTES


def test_throttle_128_really_limits_the_sim(running_lab: dict[str, Any]) -> None:
    # The carrier's policer measured alone: with the agent running it would swap away
    # from the throttled SIM within seconds (tests/lab/test_lab_health.py); the data path
    # keeps forwarding without it.
    lab("agent", "stop")
    lab("throttle", "--rate", "128")
    try:
        download(running_lab["namespaces"]["lan"], 40_000, seconds=5)  # let the bucket drain
        result = download(running_lab["namespaces"]["lan"], 10_000_000, seconds=20)
        kbps = result["bytes_down"] * 8 / 1000 / result["seconds"]
        print(f"\nthrottled download: {kbps:.1f} kbps measured through the lab (policer at 128)")
        assert 0.8 * 128 <= kbps <= 1.2 * 128
    finally:
        lab("throttle", "--off")
        lab("agent", "start")

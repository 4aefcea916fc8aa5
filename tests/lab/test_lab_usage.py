"""Issue 4 in the real lab: exact usage, SIGKILL restarts, and a policer that really polices."""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from agent.boardprofile import load_profile
from board.virtual.lab import ctl as labctl
from board.virtual.network import carrier, chaos
from tests.lab.conftest import LAB_DIR, agent_status, in_ns, lab, lab_json

TRANSFER_BYTES = 50_000_000
"""The issue's 50 MB transfer."""
BEARER_DROPS = 12
"""Bearer drops under bulk load in the drop test. Before the carrier's ordered drop, one
drop in two lost at least one counted packet (0 to 47 per drop), so twelve drops find a
regression with certainty in practice."""
LOADED_CYCLE_S = 1.5
"""Traffic between two drops: long enough for the LAN's TCP flows to come back from the
previous drop (their retransmission timer, 0.2-1 s) and fill the cell again."""


def current_iccid() -> str:
    return agent_status()["sim"]["iccid"]


SETTLE_TIMEOUT_S = 60.0
"""The cloud ingests the stopped agent's last records within a second or two; ten times the
slowest seen on a loaded machine, and fifty times the usual."""


def settled_usage(iccids: set[str] | list[str]) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The lab's usage and each SIM's journal-pending bytes, read until two reads agree.

    The stopped agent's last records reach the cloud after it exits, and the cloud writes
    ``events.jsonl`` before ``totals.json``: a record it ingests between the two reads is
    in neither the total nor the pending count, and that cut comes out short (a 'before'
    cut short shows as an over-count later). Two equal consecutive reads mean the cloud is
    idle."""
    last: tuple[dict[str, Any], dict[str, dict[str, int]]] | None = None
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        usage = lab_json("usage")
        pending = chaos.journal_pending(LAB_DIR)
        current = ({i: usage[i] for i in iccids}, {i: pending.get(i, {"up": 0, "down": 0}) for i in iccids})
        if current == last:
            return usage, current[1]
        if time.monotonic() > deadline:
            raise AssertionError(f"the cloud's usage did not settle within {SETTLE_TIMEOUT_S:.0f} s")
        last = current


def exact_cut(iccid: str) -> dict[str, Any]:
    """Stop the agent (a quiet link), compare cloud + journal-pending with the carrier,
    then start it again. Returns the figures; the difference must be zero."""
    lab("agent", "stop")
    try:
        usage, pendings = settled_usage([iccid])
        row, pending = usage[iccid], pendings[iccid]
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
    """A cut's difference less the one the SIM already had: what this test's own traffic
    added. (A SIM's earlier difference is not this test's: uplink bytes a policer dropped
    after they left the device, docs/usage.md.)"""
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


def wan_ip_bytes() -> dict[str, int]:
    """The device's ``wwan0`` counters by the framing rule (docs/usage.md): IP bytes."""
    header = load_profile("virtual").link_header_bytes
    stats = json.loads(in_ns(labctl.LAYOUT.dev, "ip", "-j", "-s", "link", "show", labctl.LAYOUT.wan_if).stdout)
    rx, tx = stats[0]["stats64"]["rx"], stats[0]["stats64"]["tx"]
    return {"down": rx["bytes"] - header * rx["packets"], "up": tx["bytes"] - header * tx["packets"]}


def test_a_bearer_drop_under_bulk_load_loses_no_counted_byte(running_lab: dict[str, Any]) -> None:
    """The carrier's own drop (``carrier.drop_bearer``, what a deactivation, a detach and a
    slot switch run) at the cell's full 50 Mbit/s: a packet the carrier counted is a
    packet ``wwan0`` received, a packet ``wwan0`` sent is a packet the carrier counted.

    Both counts are read while the bearer is down (nothing moves on either side), so each
    cycle's two differences are exact. The agent is stopped: this is the network alone."""
    iccid = current_iccid()
    address = carrier.active_sims(LAB_DIR / "carrier.json")[agent_status()["sim"]["imsi"]]["address"]
    lay = labctl.LAYOUT
    lab("agent", "stop")
    lab("traffic", "start", "--kind", "bulk", "--duration", "120")
    cycles = []
    try:
        time.sleep(LOADED_CYCLE_S)
        carrier.drop_bearer(lay, address, last=True)
        before = carrier.read_counters(lay)[iccid], wan_ip_bytes()
        for _ in range(BEARER_DROPS):
            carrier.admit(lay, address)
            time.sleep(LOADED_CYCLE_S)
            flowing = carrier.read_counters(lay)[iccid]["down"]
            flowing = carrier.read_counters(lay)[iccid]["down"] - flowing  # between two reads just before the drop
            carrier.drop_bearer(lay, address, last=True)
            after = carrier.read_counters(lay)[iccid], wan_ip_bytes()
            cycles.append({"flowing": flowing, **{d: {"carrier": after[0][d] - before[0][d],
                                                      "device": after[1][d] - before[1][d]} for d in ("up", "down")}})
            before = after
    finally:
        carrier.admit(lay, address)
        lab("traffic", "stop")
        lab("agent", "start")
    lost = [{d: c[d]["carrier"] - c[d]["device"] for d in ("up", "down")} for c in cycles]
    print(f"\n{BEARER_DROPS} bearer drops under bulk load: carrier - device per drop {lost}; "
          f"downlink per cycle {[c['down']['carrier'] for c in cycles]} B, "
          f"between two reads just before each drop {[c['flowing'] for c in cycles]} B")
    # Not vacuous: the cell was busy right up to most drops.
    assert sum(1 for c in cycles if c["flowing"] > 0) >= BEARER_DROPS // 2, cycles
    # Exact (carrier.drop_bearer's docstring: no queue between the two downlink counters,
    # the core's input backlog drained before the uplink set forgets the address).
    assert all(d == {"up": 0, "down": 0} for d in lost), lost


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
    # Exact both ways: a restarted agent resumes without touching the radio, so no bearer
    # drops here; the address never leaves wwan0 or the carrier's sets, and every packet
    # either side counts passes the other's counter. (The 52-byte uplink strays once seen
    # here were LAN FINs leaving un-NATed after a NAT flush; the lab router drops them as
    # fw4 does, docs/swap.md.)
    assert cut["diff"] == {"up": 0, "down": 0}


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

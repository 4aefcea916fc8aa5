"""Escaping a dead carrier in the whole lab (issue 23): two carriers, the seed SIM on A.

This module brings up its own lab (``pocket-lab up --carriers 2``: carrier A 44010 in
``<p>-core``, carrier B 44020 in ``<p>-coreb``, pool SIMs on both, the seed SIM on A) and
gives the session's one-carrier lab back afterwards. Each test puts the router on a
carrier-B SIM (``pocket-lab swap --carrier B``), breaks carrier B in one way, and watches
what a LAN user sees (a UDP echo through the router, ``chaos.ServingProbe``) and what the
cloud is told.

The escape bound is the policy's ``escape_after_s``; the tests set it to ``BOUND_S`` so
that each runs in well under two minutes (the default, 120 s, is explained in
agent/core/policy.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from board.virtual.network import chaos
from tests.lab.conftest import (
    LAB_DIR,
    agent_status,
    event_data,
    keep_logs,
    lab,
    lab_json,
    set_policy,
    wait_until,
)

A, B = "44010", "44020"
BOUND_S = 10
"""The escape bound the tests set (the policy's lowest allowed is 10 s)."""
DETECT_S = 10.0
"""From the fault to the classifier's ``no_service`` verdict: a lost registration is seen
at the next 1-s sample and held 2 s; a black hole needs 5 silent seconds and the 2-s hold,
after up to 2 s of "sent, nothing back" before the echo runs every second."""
ESCAPE_SWAP_S = 30.0
"""The escape itself, bounded for a loaded 2-core machine: the seed SIM's slot switch,
attach and data context (~6 s modelled), the cloud link back over it at a random moment of
the fleet's resume window (up to 10 s, pacing ``resume_window_s``) and the request (~1 s),
then the swap's own ~6 s: 23 s at worst, and the policy's 1-s tick."""
ESCAPE_TIMEOUT_S = BOUND_S + DETECT_S + ESCAPE_SWAP_S
"""From the fault to serving on carrier A: the bound plus detection plus one escape."""
ON_B_TIMEOUT_S = 40.0
"""``swap --carrier B``: one commanded swap (~6 s) on a quiet lab; generous."""
REPORT_TIMEOUT_S = 40.0
"""An outage record reaches the cloud when it has ended and the link is back (the link's
first delay, then a report cycle)."""
MAX_PER_HOUR = 30
"""Each test makes two swaps (onto B, the escape): the default hourly limit (6) would hold
the fourth test's commanded swap back."""
RETURN_WATCH_S = 2.0 * BOUND_S
"""After carrier B returns, how long the router is watched staying on its carrier-A SIM:
twice the escape bound, longer than any trigger of the escape path would take."""
CONGESTION_S = 40.0
"""How long carrier B is congested in the test that must not escape: four bounds."""


@pytest.fixture(scope="module")
def carrier_lab(running_lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    lab("traffic", "stop", check=False)
    lab("down", check=False)
    lab("up", "--carriers", "2", timeout=240)
    try:
        set_policy(escape_after_s=BOUND_S, max_per_hour=MAX_PER_HOUR)
        yield lab_json("status")
    finally:
        lab("traffic", "stop", check=False)
        lab("fault", "clear", check=False)
        keep_logs("carriers")
        lab("down", check=False)
        lab("up", timeout=240)  # the session's lab, as the other modules expect it


@pytest.fixture
def probe(carrier_lab: dict[str, Any]) -> Iterator[chaos.ServingProbe]:
    p = chaos.ServingProbe(carrier_lab["namespaces"]["lan"], carrier_lab["reflector"]["address"]).start()
    try:
        yield p
    finally:
        p.stop()
        lab("traffic", "stop", check=False)
        lab("fault", "clear", check=False)


def plmn_of() -> dict[str, str]:
    pool = json.loads((LAB_DIR / "pool.json").read_text())
    return {s["iccid"]: s["plmn"] for s in [pool["seed"], *pool["sims"]]}


def sim() -> dict[str, Any]:
    return agent_status().get("sim") or {}


def serving_on(plmn: str) -> dict[str, Any] | None:
    status = agent_status()
    current = status.get("sim") or {}
    ok = status.get("state") == "serving" and not current.get("seed") and current.get("plmn") == plmn
    return current if ok else None


def on_carrier_b(probe: chaos.ServingProbe) -> str:
    """The router on a carrier-B SIM, serving; its ICCID."""
    if not serving_on(B):
        lab("swap", "--carrier", "B")
        wait_until("the router on a carrier-B SIM", lambda: serving_on(B), ON_B_TIMEOUT_S)
    assert probe.wait_serving(time.monotonic(), 30) is not None, "not serving on carrier B"
    return str(sim()["iccid"])


def swaps_since(t0: float) -> list[dict[str, Any]]:
    """Swap events the cloud received after ``t0`` (host wall time)."""
    return [e["body"]["body"]["data"] for e in cloud_records("swap") if e["t"] >= t0]


def cloud_records(kind: str) -> list[dict[str, Any]]:
    path = LAB_DIR / "cloud" / "events.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("kind") == kind]


def requests_since(t0: float) -> list[dict[str, Any]]:
    return [r["body"] for r in cloud_records("assign/request") if r["t"] >= t0]


def escape(probe: chaos.ServingProbe, fault: str) -> dict[str, Any]:
    """Put the router on B, break B with ``fault`` under web traffic, wait for it on A."""
    old = on_carrier_b(probe)
    lab("traffic", "start", "--kind", "web", "--duration", "120")
    t0 = time.time()
    asked = time.monotonic()  # the fault is in place by the time the command returns
    lab("fault", fault, "--carrier", "B", "--seconds", "90")
    new = wait_until(f"serving on carrier A after {fault} on B", lambda: serving_on(A), ESCAPE_TIMEOUT_S)
    on_a = time.monotonic() - asked
    lost = probe.first_failure_since(asked)
    back = probe.serving_since(lost) if lost is not None else None
    print(f"\n{fault} on B: {old} -> {new['iccid']} on A {on_a:.1f} s after the fault was asked for (bound "
          f"{BOUND_S} s + detection + one escape: {ESCAPE_TIMEOUT_S:.0f} s); the LAN lost its echo "
          f"{None if lost is None else round(lost - asked, 1)} s in, back {None if back is None else round(back - asked, 1)} s in")
    assert on_a <= ESCAPE_TIMEOUT_S
    assert lost is not None, f"{fault} on B interrupted the LAN's echo"
    assert probe.wait_serving(time.monotonic(), 15) is not None, "the LAN served on carrier A"
    lab("fault", "clear")
    return {"t0": t0, "old": old, "new": new["iccid"], "took": on_a}


def assert_one_escape_never_b(run: dict[str, Any]) -> None:
    plmns = plmn_of()
    swaps = swaps_since(run["t0"])
    done = [s for s in swaps if s["ok"]]
    assert len(done) == 1 and plmns[done[0]["to_iccid"]] == A, f"one escape swap, to carrier A: {swaps}"
    assert all(plmns.get(s.get("to_iccid") or "", A) != B for s in swaps), f"never handed a carrier-B SIM: {swaps}"
    asked = requests_since(run["t0"])
    assert asked and all(r.get("avoid_plmns") == [B] for r in asked), f"every request avoids B: {asked}"
    assert all(r["evidence"].get("failing_plmn") == B for r in asked)
    assert not [e for e in event_data("error") if e.get("reason") == "wrong_carrier"]


def outage_of_b(cause: str, t0: float) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for rec in cloud_records("outage"):
            data = rec["body"]["body"]["data"]
            if rec["t"] >= t0 and (data.get("detail") or {}).get("plmn") == B and cause in data["cause"]:
                return dict(data)
        return None
    return wait_until(f"an outage record naming carrier B and {cause}", found, REPORT_TIMEOUT_S)


def test_outage_of_carrier_b_escapes_to_carrier_a(probe: chaos.ServingProbe) -> None:
    """Carrier B has no service (no registration) under LAN traffic: serving on carrier A
    within the bound plus one swap, never handed a B SIM, the outage names B and why."""
    run = escape(probe, "outage")
    assert_one_escape_never_b(run)
    back = time.time()  # escape() cleared the fault: carrier B is back
    end = time.monotonic() + RETURN_WATCH_S
    while time.monotonic() < end:  # B is back: nothing moves the router off its working A SIM
        assert sim().get("iccid") == run["new"], f"moved back after carrier B returned: {sim()}"
        time.sleep(1.0)
    assert not swaps_since(back) and not requests_since(back)
    record = outage_of_b("not_registered", run["t0"])
    assert record["detail"]["iccid"] == run["old"] and record["end"] is not None
    health = [h for h in event_data("health") if h["state"] == "no_service" and h["iccid"] == run["old"]]
    assert health and health[-1]["plmn"] == B and health[-1]["evidence"]["cause"] == "not_registered"


def test_blackhole_on_carrier_b_is_named_and_escaped(probe: chaos.ServingProbe) -> None:
    """Carrier B registers and keeps the data context up but its core drops everything:
    named ``blackhole`` (not an outage, not congestion), with PLMN, cell and evidence, and
    escaped the same way."""
    run = escape(probe, "blackhole")
    assert_one_escape_never_b(run)
    health = [h for h in event_data("health") if h["state"] == "no_service" and h["iccid"] == run["old"]]
    # The verdict while on B (the escape's radio switch may add a short not_registered one after).
    named = next((h for h in reversed(health) if h["evidence"]["cause"] == "blackhole"), None)
    assert named is not None, f"no no_service health event named blackhole for the black-holed SIM: {health}"
    assert named["plmn"] == B and named["cell"] is not None, named
    assert named["evidence"]["down_bytes"] == 0
    assert named["evidence"]["up_bytes"] > 0 and named["evidence"]["probes_lost"] >= 1
    record = outage_of_b("blackhole", run["t0"])
    assert record["detail"]["cell"] == named["cell"]


def test_a_refused_data_context_on_carrier_b_is_escaped(probe: chaos.ServingProbe) -> None:
    """Carrier B registers the SIM but refuses every data context (ESM #33): no bearer,
    nothing leaves, named ``no_data``, escaped the same way."""
    run = escape(probe, "pdn-reject")
    assert_one_escape_never_b(run)
    health = [h for h in event_data("health") if h["state"] == "no_service" and h["iccid"] == run["old"]]
    # The failure as named while on B. Not the last event of the old SIM: the escape's own
    # radio switch can leave a short not_registered verdict on it after (seen at the test
    # labs' modem time 0.2).
    assert any(h["plmn"] == B and h["evidence"]["cause"] == "no_data" for h in health), health


def test_congested_carrier_b_is_not_escaped(probe: chaos.ServingProbe) -> None:
    """A slow but working carrier B (its cell's capacity wandering, 400 ms queues) is not
    a dead one: no escape, no swap, never ``no_service``."""
    old = on_carrier_b(probe)
    t0 = time.time()
    lab("traffic", "start", "--kind", "bulk", "--duration", str(int(CONGESTION_S)))
    lab("fault", "congestion", "--carrier", "B", "--seconds", str(CONGESTION_S))
    end = time.monotonic() + CONGESTION_S
    while time.monotonic() < end:
        assert sim().get("iccid") == old, f"swapped away from a congested carrier: {sim()}"
        time.sleep(1.0)
    states = [h["state"] for h in event_data("health") if h["iccid"] == old and h.get("since")]
    assert "no_service" not in states[-3:], states
    assert not swaps_since(t0), swaps_since(t0)
    assert not requests_since(t0)


def spool(op: dict[str, Any]) -> None:
    """One control for the running reference cloud (docs/virtual-board.md, its spool)."""
    path = LAB_DIR / "cloud" / "spool" / f"{time.time_ns()}-{op['op']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(op))
    tmp.rename(path)


def test_a_cloud_answer_on_the_failing_carrier_is_refused(probe: chaos.ServingProbe) -> None:
    """Bad input: the platform answers the escape with a SIM of the carrier being escaped.
    The device refuses it (an ``error`` event, the assignment reported failed, never
    loaded), asks again after the back-off, and ends on carrier A."""
    set_policy(backoff_base_s=5, backoff_cap_s=30)
    spool({"op": "misassign", "count": 1})
    run = escape(probe, "outage")
    refused = [e for e in event_data("error") if e.get("reason") == "wrong_carrier"]
    assert refused and B in refused[-1]["detail"], refused
    plmns = plmn_of()
    swaps = swaps_since(run["t0"])
    assert not [s for s in swaps if s["ok"] and plmns.get(s["to_iccid"]) == B], swaps
    results = [r["body"]["body"]["data"] for r in cloud_records("assignment_result") if r["t"] >= run["t0"]]
    assert any(not r["ok"] and "wrong_carrier" in r["detail"] for r in results), results


SEED_DOWN_S = 30.0
"""Carrier A (the seed SIM's) down this long: past the bound and one retry, so the router
meets both "the seed is on the dead carrier" and a seed that does not register."""


SEED_WAIT_S = 30.0 + ESCAPE_SWAP_S
"""After carrier A returns: a seed attempt in progress may still wait for registration
(``SEED_ESCAPE_REGISTRATION_S``, 30 s), then the escape to B runs."""


def test_when_the_seed_sims_carrier_is_down_the_router_stays_and_says_so(probe: chaos.ServingProbe) -> None:
    """The router on a carrier-A SIM, carrier A down: the seed SIM (on A) is no way out.
    It stays, says so, retries later, never gets an A SIM while A is the failing carrier,
    and serves again once a path works (A back, or the seed and a SIM of B)."""
    if not serving_on(A):
        lab("swap", "--carrier", "A")
        wait_until("the router on a carrier-A SIM", lambda: serving_on(A), ON_B_TIMEOUT_S)
    old = sim()["iccid"]
    t0 = time.time()
    lab("fault", "outage", "--carrier", "A", "--seconds", str(SEED_DOWN_S))
    said = wait_until("the router saying the seed SIM is on the dead carrier",
                      lambda: (agent_status().get("escape") or {}).get("state") == "seed_on_same_carrier",
                      BOUND_S + DETECT_S + 5)
    print(f"\nseed's carrier down: {agent_status().get('escape')}")
    assert sim()["iccid"] == old, "it stayed on its SIM"
    ends = time.monotonic() + SEED_DOWN_S - (time.time() - t0)
    # A path works again once carrier A is back: the old SIM's, or the seed's and then a
    # SIM of B (a seed attempt in progress waits up to 30 s for registration first).
    assert probe.wait_serving(ends, SEED_WAIT_S) is not None, "the LAN served once carrier A was back"
    back = wait_until("serving on a pool SIM", lambda: serving_on(A) or serving_on(B), SEED_WAIT_S)
    assert probe.wait_serving(time.monotonic(), 20) is not None
    print(f"serving on {back['iccid']} ({back['plmn']}) {time.time() - t0:.0f} s after the fault; it was on {old}")
    plmns = plmn_of()
    assert not [s for s in swaps_since(t0) if s["ok"] and plmns.get(s["to_iccid"]) == A]
    assert all(r.get("avoid_plmns") == [A] for r in requests_since(t0) if r["reason"] != "command")
    assert said


def test_usage_exact_on_every_sim_across_escapes(carrier_lab: dict[str, Any]) -> None:
    """After the escapes above: cloud + journal-pending = carrier for every SIM, to the
    byte, the seed SIM's included (its bytes during an escape are the device's own)."""
    lab("traffic", "stop", check=False)
    lab("agent", "stop")
    try:
        diff = chaos.usage_difference(lab_json("usage"), chaos.journal_pending(LAB_DIR))
    finally:
        lab("agent", "start")
    seed = json.loads((LAB_DIR / "pool.json").read_text())["seed"]["iccid"]
    counted = lab_json("usage")
    print(f"\nusage difference after the escapes: {diff}; seed SIM carried {counted[seed]['carrier']}")
    assert counted[seed]["carrier"]["up"] > 0, "the escapes went over the seed SIM"
    assert all(d[k] == 0 for d in diff.values() for k in ("up", "down")), diff

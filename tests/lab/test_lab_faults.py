"""Issue 9 in the real lab: every fault a router meets, injected with ``pocket-lab fault``,
and the agent back to serving by itself.

"Serving" is what a LAN user sees: a UDP echo from the LAN host through the router and
the carrier comes back (board/virtual/network/chaos.py). Each fault kind must be healed within
ten times its modelled minimum, or its documented goal if larger (``FaultSpec``,
docs/virtual-board.md; the goal itself is a figure ``make soak`` reports), leave an outage
record naming the right cause at the cloud where there was an outage, and never crash
the agent; usage stays exact (cloud + journal = carrier, to the byte) across all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent import respawn
from agent.cloud import backoff
from agent.core import exitcodes
from board.virtual.network import chaos
from tests.lab.conftest import (
    LAB_DIR,
    agent_status,
    keep_logs,
    lab,
    lab_json,
    lab_needed_after,
    wait_until,
)

BY_KIND = {spec.kind: spec for spec in chaos.CATALOGUE}

EXPECTED_OUTAGE: dict[str, tuple[str, str] | None] = {
    "pdn-deact": ("no_data", "nw_pdn_deact"),
    "pdn-reject": ("no_data", "ESM cause #33"),
    "outage": ("no_service", "no_signal"),
    "reject": ("no_service", "EMM cause #15"),
    "reboot": ("no_service", "modem_rebooted"),
    "usb-gone": ("modem_unresponsive", "modem_unresponsive"),
    "hang": ("modem_unresponsive", "AtTimeout"),
    "busy": None, "garbage": None, "radio": None, "congestion": None, "broker-down": None,
    "cloud-busy": None, "clock": None, "state-ro": None, "state-full": None,
}
"""Fault kind -> (outage kind, a piece of its cause) the cloud must receive; None: the
fault must not interrupt the user at all."""

BROKER_KEEPALIVE_S = 5
"""The agent's keep-alive during the broker test (short_keepalive)."""
BROKER_DOWN_S = 28.0
"""Long enough to count: the link notices the loss at its next packet (a keep-alive every
BROKER_KEEPALIVE_S during this test), then the healer's grace (agent/core/heal.py
BROKER_GRACE, 15 s)."""
BROKER_BACKOFF_CAP_S = 10
"""The pacing policy's lowest back-off ceiling (docs/protocol.md 3.8.1), published for the
broker test: with the default 300 s ceiling the device returns to a restored broker at a
random moment up to minutes later (full jitter, as designed for a fleet), too long to
await the outage's end in a test."""
BROKER_RETURN_TIMEOUT = 2 * BROKER_BACKOFF_CAP_S + 5
"""The reconnect in flight when the broker returns waits at most one ceiling; a TLS
connect and the healer's 2 s cadence follow."""
LOCAL_OUTAGE_TIMEOUT = 30.0
"""An interval is closed on the healer's first pass after serving again (2 s cadence), and a
hung modem is named after one AT timeout (1 s): ten times those 3 s (15 s ran out once with
the machine's load at 13)."""
REPORTED_AT_CLOUD = ("pdn-deact", "reject", "usb-gone")
"""Kinds whose record is also awaited at the cloud (the others check the agent's own log:
the report path is the same for every kind, and each wait costs the link's return)."""
REPORT_TIMEOUT = 40.0
"""Outages reach the cloud when the link returns: the cloud link's random first delay
after the data path returns (up to 10 s, agent/cloud/backoff.py) plus a report cycle."""
IN_FLIGHT_BYTES = 0
"""Bytes a bearer drop may leave counted on one side of the cell link and not the other,
per SIM and direction. Zero by construction, not by observation (docs/swap.md, "In
flight at a bearer drop"): the carrier takes the address out of its downlink
set and waits an RCU grace period before the cell link goes down, so there is no queue
between its counter and wwan0's; on the uplink it stops admitting the address only after
the link is gone; the meter moves SIM before a new context comes up, and a start that
cannot resume removes the killed run's address from wwan0. Measured 0 on all 41 SIMs of a
full faults run after those fixes (the old bounds were 64 bytes per probe-only drop and
2 x 1,500 per drop under TCP load, fitted to what was seen)."""
SOAK_SECONDS = float(os.environ.get("CHAOS_SECONDS", "120"))
"""The short soak that runs in CI (``make soak`` runs the long one)."""


def agent_pid() -> int | None:
    return chaos.agent_pid(LAB_DIR)


@pytest.fixture(scope="module")
def probe(running_lab: dict[str, Any]) -> Iterator[chaos.ServingProbe]:
    p = chaos.ServingProbe(running_lab["namespaces"]["lan"], running_lab["reflector"]["address"]).start()
    try:
        assert p.wait_serving(time.monotonic(), 30) is not None, "the lab does not serve before the faults"
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module", autouse=True)
def fresh_lab_afterwards(running_lab: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[None]:
    """Leave a fresh lab to the modules after this one: the faults here swap SIMs and may
    leave a packet in flight at a bearer drop on the carrier's counters, which the usage
    and health tests (they compare totals since the lab came up) must not inherit."""
    yield
    lab("fault", "clear", check=False)
    if lab_needed_after(request):
        keep_logs("faults")  # `down` removes the directory: the faulted lab's story goes to build/lab-logs
        lab("down", check=False)
        lab("up", timeout=240)


@pytest.fixture(autouse=True)
def clear_faults() -> Iterator[None]:
    yield
    lab("fault", "clear", check=False)


def wait_outage(kind: str, cause: str, known: int) -> dict[str, Any]:
    """The outage as the cloud received it (sent when the link returned)."""
    def found() -> dict[str, Any] | None:
        new = chaos.cloud_outages(LAB_DIR)[known:]
        return next((o for o in new if o["kind"] == kind and cause in o["cause"]), None)

    return wait_until(f"outage {kind} ({cause}) at the cloud", found, REPORT_TIMEOUT)


def wait_local_outage(kind: str, cause: str, closed_before: set[int],
                      timeout: float = LOCAL_OUTAGE_TIMEOUT) -> dict[str, Any]:
    """An interval closed since ``closed_before`` in the agent's own (durable) outage log
    (it may have opened earlier: the classifier can hold one open across a fault)."""
    def found() -> dict[str, Any] | None:
        new = [o for o in chaos.agent_outages(LAB_DIR) if o["id"] not in closed_before and o["end"] is not None]
        return next((o for o in new if o["kind"] == kind and cause in o["cause"]), None)

    return wait_until(f"outage {kind} ({cause}) in the agent's log", found, timeout)


def closed_outages() -> set[int]:
    return {o["id"] for o in chaos.agent_outages(LAB_DIR) if o["end"] is not None}


def usage_cut(probe: chaos.ServingProbe) -> dict[str, dict[str, int]]:
    """Stop the agent on a quiet link, take cloud + journal - carrier per SIM, start it again."""
    with probe.paused():
        lab("agent", "stop")
        try:
            return chaos.usage_difference(lab_json("usage"), chaos.journal_pending(LAB_DIR))
        finally:
            lab("agent", "start")


@contextlib.contextmanager
def short_keepalive(seconds: int) -> Iterator[None]:
    """The agent restarted with an MQTT keep-alive of ``seconds``. An idle device notices a
    silent broker only at its next packet: in production that is the 300 s keep-alive
    (issue 10's own-traffic budget), too long for a test, so the broker test shortens it."""
    cfg = LAB_DIR / "agent" / "agent.toml"
    original = cfg.read_text()
    cfg.write_text(original.replace("[cloud]\n", f"[cloud]\nkeepalive_s = {seconds}\n", 1))
    lab("agent", "restart")
    try:
        yield
    finally:
        cfg.write_text(original)
        lab("agent", "restart")


@contextlib.contextmanager
def fast_reconnect(cap_s: int) -> Iterator[None]:
    """The platform's pacing policy with back-off ceiling ``cap_s`` while inside, awaited
    in the agent's ``pacing.json``; the device defaults again afterwards (an empty pacing)."""
    path = LAB_DIR / "agent" / "state" / "cloud" / "pacing.json"

    def cap() -> float | None:
        try:
            return float(json.loads(path.read_text())["backoff_cap_s"])
        except (OSError, ValueError, KeyError):
            return None

    lab("policy", "--set", f"pacing.backoff_cap_s={cap_s}")
    wait_until(f"the agent's pacing with backoff_cap_s={cap_s}", lambda: cap() == cap_s, 30)
    try:
        yield
    finally:
        lab("policy", "--set", f"pacing.backoff_cap_s={backoff.CAP_S:g}")  # the device default again


@pytest.mark.parametrize("kind", list(EXPECTED_OUTAGE))
def test_fault_heals_by_itself(kind: str, running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    if kind == "broker-down":
        with short_keepalive(BROKER_KEEPALIVE_S), fast_reconnect(BROKER_BACKOFF_CAP_S):
            heals_by_itself(kind, probe)
    else:
        heals_by_itself(kind, probe)


RECOVERY_FACTOR = 10
"""Issue 21: a test bounds a recovery at ten times its modelled time, never at a figure a
busy 2-core machine can miss. ``FaultSpec.bound_s`` stays the goal, printed above and
reported per kind by ``make soak`` (docs/self-healing.md); the test fails only a heal far
off the model (a step waited out, a loop that never heals)."""


def recovery_bound(spec: chaos.FaultSpec) -> float:
    """Ten times the modelled minimum (one context activation 0.8 s: 8 s; attach + context
    2.8 s: 28 s; boot + attach + context 4.8 s: 48 s), and never below the documented goal
    (kinds whose model is 0 s do not cut service: their goal is the guard)."""
    return max(spec.bound_s, RECOVERY_FACTOR * spec.minimum_s)


def heals_by_itself(kind: str, probe: chaos.ServingProbe) -> None:
    spec = BY_KIND[kind]
    if kind == "broker-down":  # long enough to count as an outage of the platform
        spec = chaos.FaultSpec("broker-down", (), BROKER_DOWN_S, 0.0, bound_s=5.0, cuts_service=False)
    known, local, pid = len(chaos.cloud_outages(LAB_DIR)), closed_outages(), agent_pid()
    applied = chaos.inject(lab, spec)
    bound = recovery_bound(spec)
    took = chaos.recovery_after(probe, spec, applied, bound)
    print(f"\n{kind}: serving {took} s after it ended (goal {spec.bound_s} s, modelled minimum {spec.minimum_s} s,"
          f" test bound {bound} s)")
    assert took is not None and took <= bound
    if not spec.cuts_service:
        window = probe.window(applied, time.monotonic())
        assert sum(ok for _, ok in window) >= 0.8 * len(window), f"{kind} should not stop the user's traffic"
    expected = EXPECTED_OUTAGE[kind]
    if kind == "broker-down":
        expected = ("broker_unreachable", "broker_unreachable")
    if expected is not None:
        outage = wait_local_outage(*expected, local,
                                   BROKER_RETURN_TIMEOUT if kind == "broker-down" else LOCAL_OUTAGE_TIMEOUT)
        assert outage["start"] <= outage["end"]
        if kind in REPORTED_AT_CLOUD:
            reported = wait_outage(*expected, known)
            assert reported["duration_s"] is not None and reported["start"] <= reported["end"]
    assert agent_pid() == pid, "the agent must heal without a restart"
    assert agent_status()["state"] == "serving"


def test_usage_exact_after_every_fault_kind(running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    """Cloud + journal-pending = carrier for every SIM, to the byte, after every kind above."""
    diff = usage_cut(probe)
    print(f"\nusage difference after the fault kinds: {diff}")
    assert all(d[k] == IN_FLIGHT_BYTES for d in diff.values() for k in ("up", "down")), \
        f"no byte in flight across a bearer drop: {diff}"


def test_auth_failure_swaps_to_another_sim(running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    """Sealed profiles fail authentication at the carrier (EMM #3, the SIM itself is
    refused): retrying cannot help, the agent asks for another SIM over the seed."""
    first = agent_status()["sim"]["iccid"]
    local = closed_outages()
    lab("fault", "auth-fail", "--seconds", "8")
    applied = time.monotonic()
    wait_until("the agent on another SIM", lambda: agent_status().get("sim", {}).get("iccid") not in (None, first)
               and not agent_status()["sim"].get("seed"), 90)
    took = probe.wait_serving(applied + 8, 30)
    print(f"\nauth-fail: on {agent_status()['sim']['iccid']} (was {first}); serving {took} s after the fault "
          f"ended (modelled minimum {chaos.SWAP_MINIMUM_S:.1f} s)")
    assert took is not None
    wait_local_outage("no_service", "EMM cause #3", local)


def test_cloud_busy_is_honoured_during_a_swap(running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    """The cloud answers "retry after" while the agent needs a SIM: it waits as told (with
    jitter) and gets one once the cloud has capacity again."""
    first = agent_status()["sim"]["iccid"]
    lab("fault", "cloud-busy", "--seconds", "10", "--retry-after", "2")
    lab("fault", "auth-fail", "--seconds", "4")
    wait_until("the agent on another SIM", lambda: agent_status().get("sim", {}).get("iccid") not in (None, first)
               and not agent_status()["sim"].get("seed"), 120)
    assert probe.wait_serving(time.monotonic(), 30) is not None


def _agent_argv() -> list[str]:
    lay = lab_json("status")["namespaces"]
    return ["ip", "netns", "exec", lay["device"], sys.executable, "-m", "agent", "run",
            "--config", str(LAB_DIR / "agent" / "agent.toml")]


def test_modem_gone_for_good_exits_69_and_a_restart_loop_brings_it_back(
        running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    """The modem's port vanishes and stays away: the agent climbs its ladder, waits for the
    port, then exits MODEM_LOST with ``failed`` and the reason in its status file. A
    service manager (here: this test) restarts it on every non-zero exit, forever; each
    failure in a row waits longer before it exits (agent/respawn.py: the unit has no start
    limit, systemd 252 no RestartSteps=). Once the modem is back, the restarted agent serves."""
    lab("agent", "stop")  # a clean stop: the count of failures in a row starts from 0
    log = open(LAB_DIR / "logs" / "agent-restart-loop.log", "ab")  # noqa: SIM115 - closed below
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_agent_argv(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until("the agent serving", lambda: agent_status().get("state") == "serving", 60)
        lab("fault", "usb-gone", "--seconds", "600")
        code = proc.wait(timeout=120)
        status = agent_status()
        print(f"\nmodem gone for good: exit {code}, status {status.get('state')}: {status.get('error')}")
        assert code == exitcodes.MODEM_LOST
        assert status["state"] == "failed" and status["exit_code"] == exitcodes.MODEM_LOST
        assert "modem" in status["error"]
        restarts = 0
        cleared_at: float | None = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # Restart=on-failure, RestartSec=1
            time.sleep(1.0)
            restarts += 1
            if restarts == 3:
                lab("fault", "clear")  # the modem comes back (under a new name)
                cleared_at = time.monotonic()
            proc = subprocess.Popen(_agent_argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            started = time.monotonic()
            try:
                code = proc.wait(timeout=respawn.CAP_S + 60 if cleared_at is None else 60)
            except subprocess.TimeoutExpired:
                break  # still running: it serves (checked below)
            assert code == exitcodes.MODEM_LOST, f"restart {restarts} exited {code}"
            floor = respawn.delay_s(restarts + 1, lambda low, high: low)  # failure n+1 in a row
            assert time.monotonic() - started >= floor, f"restart {restarts} did not wait its {floor:.0f} s"
        wait_until("the restarted agent serving", lambda: agent_status().get("state") == "serving", 60)
        assert cleared_at is not None and probe.wait_serving(cleared_at, 60) is not None
        print(f"restart loop: {restarts} starts; serving again")
    finally:
        with_signal(proc, signal.SIGTERM)
        log.close()
        lab("fault", "clear", check=False)
        lab("agent", "start")


def with_signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_short_chaos_soak(running_lab: dict[str, Any], probe: chaos.ServingProbe) -> None:
    """Random faults, one at a time, under LAN traffic: every one healed, no crash."""
    before = usage_cut(probe)
    lab("traffic", "start", "--kind", "web", "--duration", str(SOAK_SECONDS + 60))
    try:
        result = chaos.run_soak(lab, probe, SOAK_SECONDS, random.Random(99), agent_pid=agent_pid, log=print)
    finally:
        lab("traffic", "stop")
    after = usage_cut(probe)
    print(result, f"\nusage difference before the soak {before}, after {after}")
    assert result["crashes"] == 0
    assert all(row["failures"] == 0 for row in result["recovery"].values())
    assert result["served_share"] >= 0.9
    drops = sum(row["n"] for kind, row in result["recovery"].items() if BY_KIND[kind].cuts_service)
    for iccid, diff in after.items():
        for direction in ("up", "down"):
            moved = abs(diff[direction] - before[iccid][direction])
            assert moved == IN_FLIGHT_BYTES, f"{iccid} {direction}: {moved} bytes across {drops} bearer drops"

"""Chaos in the lab: is the router serving, and how long did it take to come back?

Used by the lab's fault tests and by ``make soak`` (tests/bench/soak.py). "Serving" is
what a user behind the router sees: a UDP echo from the LAN host through the router and
the carrier to the internet's reflector comes back. A ``ServingProbe`` sends one every
``PROBE_INTERVAL`` from a socket opened inside the LAN namespace and keeps the timeline.

``CATALOGUE`` is the list of faults the soak draws from, each with the modelled minimum
time the agent needs to serve again after the fault ends, computed from the virtual
modem's latency constants (the steps a perfect agent would take, nothing else).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import store
from agent.boardprofile import load_profile
from agent.clock import Clock
from agent.net.link import WanLink
from agent.net.rtnl import socket_in_netns  # the one way into a namespace
from agent.recordlog import scan
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from board.virtual.modem.model import (
    ATTACH_LATENCY,
    BOOT_LATENCY,
    CONTEXT_LATENCY,
    SLOT_SWITCH_LATENCY,
)

PROBE_INTERVAL = 0.2
"""Seconds between echoes: recovery times are measured to this resolution."""
PROBE_TIMEOUT = 0.5
"""An echo through the lab takes well under a millisecond; 0.5 s without one is a loss."""
ECHO_PORT = 7


class ServingProbe:
    """UDP echoes from the LAN host to the reflector, on a thread; a timeline of results."""

    def __init__(self, lan_ns: str, reflector: str, port: int = ECHO_PORT):
        self.sock = socket_in_netns(lan_ns)
        self.sock.settimeout(PROBE_TIMEOUT)
        self.target = (reflector, port)
        self.timeline: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="serving-probe", daemon=True)
        self._seq = 0

    def start(self) -> ServingProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def once(self) -> bool:
        self._seq += 1
        token = f"probe-{self._seq}-{time.monotonic_ns()}".encode()
        try:
            self.sock.sendto(token, self.target)
            deadline = time.monotonic() + PROBE_TIMEOUT
            while time.monotonic() < deadline:
                data, _ = self.sock.recvfrom(2048)
                if data == token:
                    return True
        except OSError:
            return False
        return False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No echoes meanwhile (a usage cut compares counters on a quiet link: the probe's
        own packets would be billed while the agent is stopped and counted only later)."""
        self._paused.set()
        time.sleep(PROBE_INTERVAL + PROBE_TIMEOUT)  # the echo in flight comes back or is lost
        try:
            yield
        finally:
            self._paused.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(PROBE_INTERVAL)
                continue
            started = time.monotonic()
            ok = self.once()
            with self._lock:
                self.timeline.append((started, ok))
            self._stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - started)))

    def serving_since(self, t: float) -> float | None:
        """The first moment at or after ``t`` an echo came back (None: not yet)."""
        with self._lock:
            return next((at for at, ok in self.timeline if at >= t and ok), None)

    def first_failure_since(self, t: float) -> float | None:
        with self._lock:
            return next((at for at, ok in self.timeline if at >= t and not ok), None)

    def window(self, start: float, end: float) -> list[tuple[float, bool]]:
        with self._lock:
            return [(at, ok) for at, ok in self.timeline if start <= at < end]

    def wait_serving(self, after: float, timeout: float) -> float | None:
        """Seconds from ``after`` until serving (None if not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.serving_since(after)
            if at is not None:
                return max(0.0, at - after)
            time.sleep(PROBE_INTERVAL / 2)
        return None

    def served_share(self, start: float, end: float) -> float:
        with self._lock:
            window = [ok for at, ok in self.timeline if start <= at < end]
        return sum(window) / len(window) if window else 0.0


@dataclass(frozen=True)
class FaultSpec:
    """One fault the soak injects: its options and the modelled minimum to serve again."""

    kind: str
    options: tuple[str, ...] = ()
    seconds: float = 0.0
    """How long it lasts (0: a one-shot event)."""
    minimum_s: float = 0.0
    """Modelled minimum from the end of the fault (or the event) to serving again."""
    bound_s: float = 15.0
    """What the tests accept (documented in docs/virtual-board.md)."""
    cuts_service: bool = True
    """Whether the network itself cannot serve while it lasts (excluded from "served share")."""


ATTACH_AND_CONTEXT = ATTACH_LATENCY + CONTEXT_LATENCY
CATALOGUE: tuple[FaultSpec, ...] = (
    FaultSpec("pdn-deact", minimum_s=CONTEXT_LATENCY, bound_s=5.0),
    FaultSpec("pdn-reject", ("--cause", "33"), 4.0, CONTEXT_LATENCY, bound_s=20.0),
    FaultSpec("outage", (), 4.0, ATTACH_AND_CONTEXT, bound_s=10.0),
    FaultSpec("reject", ("--cause", "15"), 4.0, ATTACH_AND_CONTEXT, bound_s=10.0),
    FaultSpec("reboot", minimum_s=BOOT_LATENCY + ATTACH_AND_CONTEXT, bound_s=12.0),
    FaultSpec("usb-gone", (), 4.0, BOOT_LATENCY + ATTACH_AND_CONTEXT, bound_s=20.0),
    FaultSpec("hang", (), 6.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("busy", ("--count", "4"), 0.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("garbage", ("--bytes", "256"), 0.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("radio", ("--rsrp", "-115", "--sinr", "-3"), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("congestion", (), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("broker-down", (), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("cloud-busy", ("--retry-after", "2"), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("clock", ("--step", "-3600"), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("state-ro", (), 3.0, 0.0, bound_s=5.0, cuts_service=False),
    FaultSpec("state-full", (), 3.0, 0.0, bound_s=5.0, cuts_service=False),
)
"""The soak's faults. auth-fail is left out: recovering from it takes a swap through the
cloud (SLOT_SWITCH_LATENCY + attach + context, twice), exercised by its own test."""

SWAP_MINIMUM_S = 2 * (SLOT_SWITCH_LATENCY + ATTACH_AND_CONTEXT)
"""auth-fail: back to the seed, then onto a new SIM (the assignment round trip not counted)."""


@dataclass
class Recovery:
    """What the soak measured for one fault kind."""

    times: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self, minimum: float) -> dict[str, Any]:
        if not self.times:
            return {"n": 0, "failures": self.failures, "minimum_s": round(minimum, 2)}
        ordered = sorted(self.times)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank
        return {"n": len(ordered), "median_s": round(statistics.median(ordered), 2), "p95_s": round(p95, 2),
                "worst_s": round(ordered[-1], 2), "minimum_s": round(minimum, 2),
                "goal_met": p95 <= minimum + 2.0, "failures": self.failures}


# ---- what the cloud and the carrier saw ---------------------------------------------------
def agent_pid(lab_dir: Path) -> int | None:
    """The lab agent's pid while that process lives, else None (a restart shows as a new pid)."""
    try:
        pid = int((lab_dir / "pids" / "agent.pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def cloud_outages(lab_dir: Path) -> list[dict[str, Any]]:
    """Outage records the reference cloud received (each as the agent reported it)."""
    out = []
    path = lab_dir / "cloud" / "events.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        if event.get("kind") == "outage":
            out.append(event["body"]["body"]["data"])
    return out


def agent_outages(lab_dir: Path) -> list[dict[str, Any]]:
    """The intervals in the agent's own outage log (read-only: a running agent owns it)."""
    path = lab_dir / "agent" / "state" / "outages.log"
    records, _ = scan(path.read_bytes()) if path.exists() else ([], 0)
    intervals: dict[int, dict[str, Any]] = {}
    for raw in records:
        ev = json.loads(raw)
        if ev.get("op") == "open":
            intervals[ev["id"]] = {"id": ev["id"], "kind": ev["kind"], "cause": ev["cause"], "start": ev["wall"],
                                   "end": None}
        elif ev.get("op") in ("close", "cause") and ev["id"] in intervals:
            key, value = ("end", ev["wall"]) if ev["op"] == "close" else ("cause", ev["cause"])
            intervals[ev["id"]][key] = value
    return [intervals[i] for i in sorted(intervals)]


def journal_pending(lab_dir: Path) -> dict[str, dict[str, int]]:
    """Per ICCID: bytes a *stopped* agent has not delivered to the cloud yet: journaled and
    not ingested (a record ingested but not acknowledged is pending here and de-duplicated
    by epoch and seq, as the cloud does: agent/epochs.py), plus what the data interface
    counted after the agent's last sample (``unsampled``)."""
    ingested = set()
    path = lab_dir / "cloud" / "events.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        if event.get("kind") == "usage":
            ingested.add((event["body"].get("epoch", ""), event["body"]["seq"]))
    journal = UsageJournal(lab_dir / "agent" / "state" / "usage.journal", clock=Clock())
    out: dict[str, dict[str, int]] = {}
    try:
        for seq, body in journal.pending(1_000_000):
            if (journal.epoch_of(seq)[0], seq) not in ingested:
                row = out.setdefault(body["iccid"], {"up": 0, "down": 0})
                row["up"] += body["tx_bytes"]
                row["down"] += body["rx_bytes"]
        baseline = journal.baseline()
    finally:
        journal.close()
    late = unsampled(lab_dir, baseline)
    if late is not None:
        iccid, bytes_ = late
        row = out.setdefault(iccid, {"up": 0, "down": 0})
        row["up"] += bytes_["up"]
        row["down"] += bytes_["down"]
    return out


LAB_BOARD_PROFILE = "virtual"
"""The lab's board profile (board/profiles/virtual.toml): its data interface and framing."""


def unsampled(lab_dir: Path, baseline: Counters | None) -> tuple[str, dict[str, int]] | None:
    """The SIM the stopped agent was on, and the IP bytes its data interface counted after
    the agent's last durable sample: the next start bills them to that SIM (the meter
    resumes from the journal's baseline), so an exact cut taken while it is stopped must
    count them. They are what arrives or leaves after the final sample of a stop: the
    cloud session's closing segments, a server's late retransmission (measured: -80 bytes
    up, -3,000 down in one cut before this was counted)."""
    current = store.read_json(lab_dir / "agent" / "state" / "current.json")
    lab = store.read_json(lab_dir / "lab.json")
    if not current or not lab or baseline is None:
        return None
    profile = load_profile(LAB_BOARD_PROFILE)
    wan = WanLink(profile.data_interface, netns=lab["namespaces"]["device"])
    try:
        now = wan.counters()
    finally:
        wan.close()
    if now.ifindex != baseline.ifindex:
        raise AssertionError(f"{profile.data_interface} was re-created while the agent was stopped")
    header = profile.link_header_bytes
    up = (now.tx_bytes - baseline.tx_bytes) - header * (now.tx_packets - baseline.tx_packets)
    down = (now.rx_bytes - baseline.rx_bytes) - header * (now.rx_packets - baseline.rx_packets)
    return current["iccid"], {"up": up, "down": down}


def usage_difference(usage: dict[str, Any], pending: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per ICCID: cloud + journal-pending - carrier, up and down (0 is exact)."""
    diff = {}
    for iccid, row in usage.items():
        p = pending.get(iccid, {"up": 0, "down": 0})
        diff[iccid] = {d: row["cloud"][d] + p[d] - row["carrier"][d] for d in ("up", "down")}
    return diff


# ---- the soak -------------------------------------------------------------------------------
Lab = Callable[..., Any]
"""Runs ``pocket-lab ARGS`` (raising on failure)."""


def inject(lab: Lab, spec: FaultSpec) -> float:
    """Inject ``spec``; returns when the board process applied it, on this process's
    monotonic clock (the command's own start-up and exit take a while on a busy machine
    and must not count as recovery)."""
    args = ["fault", spec.kind, *spec.options, "--json"]
    if spec.seconds:
        args += ["--seconds", str(spec.seconds)]
    out = lab(*args)
    reply = json.loads(getattr(out, "stdout", out))
    return time.monotonic() - max(0.0, time.time() - float(reply["at"]))


def recovery_after(probe: ServingProbe, spec: FaultSpec, applied: float, timeout: float) -> float | None:
    """Seconds from the end of the fault (``applied`` plus its seconds; a one-shot fault
    ends when it happens) to serving again. Service
    that breaks within ``SETTLE`` after the end counts too (a USB modem that comes back
    re-enumerates and reboots; a reboot takes a moment to bite). 0 when it never broke."""
    end = applied + spec.seconds
    time.sleep(max(0.0, end - time.monotonic()))
    broke = _first_failure(probe, end, SETTLE)
    if broke is None:
        return 0.0
    back = probe.wait_serving(broke, timeout)
    return None if back is None else broke + back - end


SETTLE = 3.0
"""Seconds after a fault's end in which a break of service still counts as its doing."""


def _first_failure(probe: ServingProbe, after: float, within: float) -> float | None:
    deadline = after + within
    while time.monotonic() < deadline:
        failed = probe.first_failure_since(after)
        if failed is not None:
            return failed
        time.sleep(PROBE_INTERVAL / 2)
    return None


def run_soak(lab: Lab, probe: ServingProbe, seconds: float, rng: random.Random, *,
             agent_pid: Callable[[], int | None], kinds: tuple[FaultSpec, ...] = CATALOGUE,
             gap: tuple[float, float] = (3.0, 6.0), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Random faults, one at a time, with serving periods between, for about ``seconds``.
    Returns per kind recovery figures, the share of seconds served while the network
    allowed it, and the crashes seen (the agent's pid changed or it is gone)."""
    recoveries = {spec.kind: Recovery() for spec in kinds}
    excluded: list[tuple[float, float]] = []
    first_pid = agent_pid()
    crashes = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        spec = rng.choice(kinds)
        applied = inject(lab, spec)
        took = recovery_after(probe, spec, applied, spec.bound_s + 30.0)
        if spec.cuts_service and spec.seconds:
            excluded.append((applied, applied + spec.seconds))
        if took is None:
            recoveries[spec.kind].failures += 1
            log(f"{spec.kind}: NOT serving {spec.bound_s + 30:.0f} s after it ended")
            lab("fault", "clear")
        else:
            recoveries[spec.kind].times.append(took)
            log(f"{spec.kind}: serving {took:.2f} s after it ended (modelled minimum {spec.minimum_s:.1f} s)")
        pid = agent_pid()
        if pid != first_pid:
            crashes += 1
            log(f"agent crashed or restarted (pid {first_pid} -> {pid})")
            first_pid = pid
        time.sleep(rng.uniform(*gap))
    end = time.monotonic()
    allowed = _allowed_samples(probe, start, end, excluded)
    return {
        "seconds": round(end - start, 1),
        "faults": sum(len(r.times) + r.failures for r in recoveries.values()),
        "served_share": round(sum(allowed) / len(allowed), 4) if allowed else 0.0,
        "crashes": crashes,
        "recovery": {spec.kind: recoveries[spec.kind].summary(spec.minimum_s) for spec in kinds},
    }


def _allowed_samples(probe: ServingProbe, start: float, end: float,
                     excluded: list[tuple[float, float]]) -> list[bool]:
    return [ok for at, ok in probe.window(start, end) if not any(a <= at < b for a, b in excluded)]

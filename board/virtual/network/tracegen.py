"""Record the health-trace library on real kernel parts (needs root).

    python -m board.virtual.network.tracegen --scenario police128_bulk --out tests/traces/police128_bulk.csv
    python -m board.virtual.network.tracegen --all --out-dir tests/traces --parallel 4

Topology (slot 0; slot k adds the suffix ``k`` to each namespace and uses the k-th /27
of 198.19.200.0/24)::

    pwtg-lan  lan0 .2/30 ── lan0 .1/30  pwtg-dev  wan0 .5/30 ── wanp .6/30  pwtg-net  srvp .9/30 ── srv0 .10/30  pwtg-srv
    (load client)                       (router: forwarding,                (carrier: forwards,                   (internet: TCP
                                         conntrack, recorder)                throttles)                            server, reflector)

The server sits one forwarding hop behind the carrier so the carrier's queues are real
network queues: on the server's own interface, TCP small queues would hold the data
back in the socket and no queue (no queueing delay) would ever build.

The carrier's throttle sits on the carrier side of the WAN veth, in pwtg-net:

- "police": an nftables ``limit rate over R bytes/second ... drop`` rule in both
  directions: a token-bucket policer that drops without queueing. (This kernel has no
  ``act_police``/``netem``; nft's limit is the same token bucket.) A 20 Mbit/s tbf
  stands for the unthrottled LTE link under it.
- "shape": a tbf at the rate with a 250 ms queue downlink (a shaper queues to a fixed
  rate), nft limit uplink.
- "congest": a tbf whose rate random-walks every 2 s between 0.6 and 4 Mbit/s with a
  500 ms queue: a busy cell, rate wandering with queueing delay.
- "poor": a tbf random-walking faster and lower (0.2-2.5 Mbit/s) plus 5 % random loss
  both ways (nft numgen), with weak radio columns: the lossy, wandering link a weak
  signal gives.
- "down": the carrier side of the link is down and the radio is unregistered.

Radio columns are synthesised per phase (radio is emulated anyway). Counters, flows,
RTT and loss are measured live by ``pocket-agent record`` running inside pwtg-dev.

The parts are the lab's own: namespaces through ``netns``, the internet's byte source and
echo reflector from ``services``, the load from ``traffic`` (the one traffic model the
lab's ``pocket-lab traffic`` uses too); only the topology and the carrier's link
behaviour (police, shape, wander) are the recorder's.
Each scenario is a script of phases; ``tests/traces/expected.json`` gets the states
each one should produce, written from the same script.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from board.virtual.network import netns
from board.virtual.network.services import ECHO_PORT, SOURCE_PORT

LOGGER = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
NS_PREFIX = os.environ.get("POCKET_TRACEGEN_PREFIX", "pwtg-")
"""Namespace prefix; another prefix lets two recordings (two worktrees) share a machine."""
TRACE_BULK_FLOWS = 3
"""Bulk load in a trace is three parallel downloads: the several flows a throttle check
sees on a router whose user downloads (the detector counts flows through conntrack)."""
TRACE_VIDEO_KBPS = 1200
"""Video load in a trace is a ~600 kB segment every 4 s (traffic's default)."""

BASE_LINK_KBIT = 20_000
"""The unthrottled LTE link: 20 Mbit/s is a typical 4G downlink for one user, and caps
the CPU a bulk TCP load burns on veth (which would otherwise run at many Gbit/s)."""

WANDER_PERIOD = {"congest": 1.0, "poor": 0.5, "wander3g": 0.25}
"""How often a busy cell / weak link changes its rate: the cell scheduler's share moves
with other users' bursts every second or so, fading within fractions of one. A 3G/EVDO
link's capacity (recorded 3G-class traces) moves several times a second."""

WANDER_SIGMA = 0.3
"""Log-normal step of the wander (+-35 % typical): a busy LTE cell's per-user rate
moves by tens of percent from second to second."""

WANDER_RANGE_KBIT = {"congest": (600, 4000), "poor": (200, 2500), "wander3g": (50, 1500)}
QUEUE_MS = {"shape": 250, "congest": 500, "poor": 150, "ok": 50, "wander3g": 250}
"""tbf latency (queue depth in time): carrier shapers hold a few hundred ms; a busy
cell's scheduler buffers deeper; our idle LTE link ~50 ms."""

DIP_CHANCE = 0.03
"""Per step (0.25 s) chance that a slow 3G link dips: about one dip every 8 s, as in the
recorded 3G-class capacity traces (the issue: dips of seconds)."""

DIP_KBIT, DIP_SECONDS = (50, 90), (1.0, 3.0)
"""A dip: capacity falls to 50-90 kbps for 1-3 s (a fade, a handover, a scheduler gap)."""

STREAM_CAPS = ((200, 128), (384, 200), (1000, 384), (1500, 1000))
"""(stream kbps, cap kbps): the same fixed-bitrate streams on a capped SIM, each capped at
the next throttle rate below it so the cap binds (a cap above a stream's own rate
changes nothing a router can see, and nothing the user notices)."""

POOR_LOSS_PCT = 5
START_TIMEOUT = 10.0
"""Recorder, server and namespaces come up in well under a second; 10 s means broken."""


@dataclass(frozen=True)
class Phase:
    seconds: float
    link: str = "ok"           # ok | police | shape | congest | poor | wander3g | down
    rate_kbps: int | None = None
    load: str = "bulk"         # bulk | web | video | mixed | idle | streamN (N kbps, one flow)
    radio: str = "good"        # good | weak | none
    expect: str | None = None
    """The expected state when the link alone does not say it (a wandering 3G link)."""

    def expected_state(self) -> str:
        if self.expect is not None:
            return self.expect
        if self.link == "down":
            return "no_service"
        if self.radio == "weak" or self.link == "poor":
            return "poor_radio"
        if self.load == "idle":
            return "idle"
        return {"police": "throttled", "shape": "throttled", "congest": "congested"}.get(
            self.link, "ok")

    def probe_kbps(self) -> float | None:
        """What the agent's active check (a download burst) would measure on this link: the
        cap's rate, the unthrottled link, a busy cell's or weak link's low end, and for a
        3G-class link a slow moment near a throttle rate (the worst case for us)."""
        if self.link == "down":
            return None
        if self.link in ("police", "shape"):
            return float(self.rate_kbps or 128)
        return {"congest": 600.0, "poor": 200.0, "wander3g": 200.0}.get(self.link, 0.9 * BASE_LINK_KBIT)


@dataclass(frozen=True)
class Scenario:
    name: str
    phases: tuple[Phase, ...]
    note: str = ""
    seed: int = 1

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def expectations(self) -> dict[str, Any]:
        """Expected states in order with the trace second each phase starts."""
        states, t, onset, rate, applied, mechanism = [], 0.0, None, None, None, None
        for p in self.phases:
            if p.link in ("police", "shape") and mechanism is None:
                mechanism = {"police": "policer", "shape": "shaper"}[p.link]
            st = p.expected_state()
            if p.link in ("police", "shape") and applied is None:
                applied = t
            states.append({"state": st, "from_t": t, "to_t": t + p.seconds,
                           "rate_kbps": p.rate_kbps if st == "throttled" else None,
                           "probe_kbps": p.probe_kbps()})
            if st == "throttled" and onset is None:
                onset, rate = t, p.rate_kbps
            t += p.seconds
        # throttle_onset_t: first second of throttling under load (what detection delay is
        # measured from); cap_applied_t: when the cap went on, possibly while idle.
        return {"note": self.note, "seconds": t, "phases": states, "throttle_onset_t": onset,
                "cap_applied_t": applied,
                "throttle_rate_kbps": rate, "throttled": onset is not None, "mechanism": mechanism}


def probe_model(expectation: dict[str, Any]) -> Callable[[float], float | None]:
    """An expected.json entry -> (trace second -> what an active check would measure then),
    for replaying a recorded trace with the check answered as the live link would have.
    Entries written before ``probe_kbps`` existed are modelled from their states."""
    def at(t: float) -> float | None:
        phase = next((p for p in expectation["phases"] if p["from_t"] <= t < p["to_t"]),
                     expectation["phases"][-1])
        if "probe_kbps" in phase:
            return phase["probe_kbps"]
        if phase["state"] == "no_service":
            return None
        return float(phase["rate_kbps"]) if phase["state"] == "throttled" else 0.9 * BASE_LINK_KBIT
    return at


def _p(*args: Any, **kw: Any) -> Phase:
    return Phase(*args, **kw)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("police128_bulk", (_p(30), _p(60, "police", 128)), "bulk TCP, carrier policer 128k"),
    Scenario("police200_web", (_p(30, load="web"), _p(70, "police", 200, "web")), "web, policer 200k"),
    Scenario("police384_video", (_p(30, load="video"), _p(70, "police", 384, "video")),
             "video chunks, policer 384k"),
    Scenario("police1000_mixed", (_p(30, load="mixed"), _p(60, "police", 1000, "mixed")),
             "bulk+web, policer 1000k"),
    Scenario("shape128_web", (_p(30, load="web"), _p(60, "shape", 128, "web")), "web, shaper 128k"),
    Scenario("shape200_bulk", (_p(30), _p(60, "shape", 200)), "bulk, shaper 200k"),
    Scenario("shape384_mixed", (_p(30, load="mixed"), _p(60, "shape", 384, "mixed")),
             "bulk+web, shaper 384k"),
    Scenario("shape1000_video", (_p(30, load="video"), _p(70, "shape", 1000, "video")),
             "video chunks, shaper 1000k"),
    Scenario("throttle_recover384", (_p(20), _p(50, "police", 384), _p(40)),
             "policed at 384k, then lifted (top-up)"),
    Scenario("throttle_while_idle128", (_p(25, load="web"), _p(30, "police", 128, "idle"),
                                        _p(50, "police", 128, "web")),
             "capped while the user is away; detected once they browse again"),
    Scenario("congested_bulk", (_p(20), _p(90, "congest")), "busy cell under bulk load"),
    Scenario("congested_video", (_p(20, load="video"), _p(80, "congest", load="video")),
             "busy cell under video load"),
    Scenario("poor_radio_bulk", (_p(20), _p(80, "poor", radio="weak")), "weak signal, lossy link"),
    Scenario("poor_radio_web", (_p(20, load="web"), _p(70, "poor", load="web", radio="weak")),
             "weak signal while browsing"),
    Scenario("idle_between_web", (_p(25, load="web"), _p(50, load="idle"), _p(25, load="web")),
             "user idle in the middle"),
    Scenario("bursts_ok", (_p(90, load="web"),), "unthrottled web bursts with think time"),
    Scenario("video_ok", (_p(90, load="video"),), "unthrottled video chunks"),
    Scenario("outage_bulk", (_p(30), _p(30, "down", radio="none"), _p(40)),
             "carrier link down and unregistered for 30 s"),
    # Issue 10: app-limited single streams near each throttle rate, uncapped (never
    # throttled) and the same streams on a capped SIM (throttled at the cap's rate).
    *[Scenario(f"app{r}_stream", (_p(70, load=f"stream{r}"),),
               f"one {r} kbps stream on an uncapped link (app-limited, not throttled)", seed=r)
      for r in (128, 200, 384, 1000)],
    *[Scenario(f"{kind}{cap}_stream{r}", (_p(20, load=f"stream{r}"), _p(50, kind, cap, f"stream{r}")),
               f"one {r} kbps stream, then the SIM {kind}d at {cap} kbps (the cap binds)", seed=r + 1)
      for kind in ("police", "shape") for r, cap in STREAM_CAPS],
    # A wandering link with a queue is what ``congested`` describes (rate moving, delay
    # queueing); the point of these traces is that it is never ``throttled``.
    Scenario("wander3g_bulk", (_p(90, "wander3g", load="bulk", expect="congested"),),
             "3G/EVDO-like capacity wandering 50-1500 kbps with dips, bulk load", seed=31),
    Scenario("wander3g_web", (_p(90, "wander3g", load="web", expect="congested"),),
             "3G/EVDO-like capacity wandering 50-1500 kbps with dips, web load", seed=32),
    Scenario("wander3g_stream128", (_p(90, "wander3g", load="stream128", expect="ok"),),
             "3G/EVDO-like link under a 128 kbps stream", seed=33),
]}


# ---------------------------------------------------------------- topology

@dataclass(frozen=True)
class Topology:
    slot: int = 0

    def ns(self, role: str) -> str:
        return f"{NS_PREFIX}{role}{self.slot or ''}"

    def addr(self, host: int) -> str:
        return f"198.19.200.{32 * self.slot + host}"

    @property
    def server_ip(self) -> str:
        return self.addr(10)


ROUTER_RULESET = ("add table inet pwtg; add chain inet pwtg routed { type filter hook forward priority 0; }; "
                  "add rule inet pwtg routed ct state established,related counter accept")
"""A rule that uses conntrack, so the kernel tracks the router's forwarded flows."""


def topology_down(topo: Topology) -> None:
    for role in ("lan", "dev", "net", "srv"):
        netns.delete(topo.ns(role))


def topology_up(topo: Topology) -> None:
    """Three namespaces, two veth pairs, forwarding and conntrack accounting in pwtg-dev."""
    topology_down(topo)
    dev, net, lan, srv = topo.ns("dev"), topo.ns("net"), topo.ns("lan"), topo.ns("srv")
    for ns in (dev, net, lan, srv):
        netns.add(ns)
    netns.run(["ip", "link", "add", "lan0", "netns", lan, "type", "veth", "peer", "name", "lan0", "netns", dev])
    netns.run(["ip", "link", "add", "wan0", "netns", dev, "type", "veth", "peer", "name", "wanp", "netns", net])
    netns.run(["ip", "link", "add", "srvp", "netns", net, "type", "veth", "peer", "name", "srv0", "netns", srv])
    for ns, ifname, host in ((lan, "lan0", 2), (dev, "lan0", 1), (dev, "wan0", 5), (net, "wanp", 6),
                             (net, "srvp", 9), (srv, "srv0", 10)):
        netns.run(["ip", "-n", ns, "addr", "add", f"{topo.addr(host)}/30", "dev", ifname])
        netns.run(["ip", "-n", ns, "link", "set", ifname, "up"])
    netns.run(["ip", "-n", lan, "route", "add", "default", "via", topo.addr(1)])
    netns.run(["ip", "-n", dev, "route", "add", "default", "via", topo.addr(6)])
    netns.run(["ip", "-n", net, "route", "add", f"{topo.addr(0)}/30", "via", topo.addr(5)])
    netns.run(["ip", "-n", srv, "route", "add", "default", "via", topo.addr(9)])
    netns.sysctl(dev, "net.ipv4.ip_forward", "1")
    netns.sysctl(net, "net.ipv4.ip_forward", "1")
    # A rule that uses conntrack makes the kernel track this namespace's forwarded flows.
    netns.run(["nft", ROUTER_RULESET], netns=dev)
    netns.sysctl(dev, "net.netfilter.nf_conntrack_acct", "1")
    netns.run(["ip", "-n", net, "link", "set", "wanp", "txqueuelen", "1000"])
    # No GSO super-packets on the carrier side: a tbf whose burst (a few kB at 128-384
    # kbit) is smaller than a 64 kB GSO packet stalls for good with it at the head.
    for ns, ifname in ((net, "wanp"), (net, "srvp"), (srv, "srv0"), (dev, "wan0"), (dev, "lan0"),
                       (lan, "lan0")):
        netns.run(["ip", "-n", ns, "link", "set", ifname, "gso_max_segs", "1"])


def set_tbf(topo: Topology, kbit: int, queue_ms: int) -> None:
    burst = max(3000, kbit * 1000 // 8 // 50)  # 20 ms of tokens, at least two full frames
    netns.run(["tc", "qdisc", "replace", "dev", "wanp", "root", "tbf", "rate", f"{kbit}kbit", "burst", str(burst),
               "latency", f"{queue_ms}ms"], netns=topo.ns("net"))


def set_nft(topo: Topology, down_kbps: int | None, up_kbps: int | None, loss_pct: int) -> None:
    """Replace the carrier's nft table: optional policer each way, optional random loss."""
    net = topo.ns("net")
    netns.run(["nft", "delete table inet pwtgcarrier"], netns=net, check=False)
    rules = []
    for chain, match, kbps in (("out", "oifname", down_kbps), ("in", "iifname", up_kbps)):
        if kbps:
            rate = kbps * 1000 // 8
            burst = max(4000, rate // 2)  # half a second of tokens: a typical carrier bucket
            rules.append(f"add rule inet pwtgcarrier {chain} {match} wanp "
                         f"limit rate over {rate} bytes/second burst {burst} bytes drop")
    if loss_pct:
        rules += [f"add rule inet pwtgcarrier out oifname wanp numgen random mod 100 < {loss_pct} drop",
                  f"add rule inet pwtgcarrier in iifname wanp numgen random mod 100 < {loss_pct} drop"]
    script = "\n".join([
        "add table inet pwtgcarrier",
        "add chain inet pwtgcarrier out { type filter hook postrouting priority 0; }",
        "add chain inet pwtgcarrier in { type filter hook prerouting priority 0; }",
        *rules]) + "\n"
    netns.run(["nft", "-f", "-"], netns=net, input_text=script)


class LinkDriver:
    """Applies phases to the carrier side; wanders the rate in congest/poor phases."""

    def __init__(self, topo: Topology, seed: int):
        self.topo = topo
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def apply(self, phase: Phase) -> None:
        self._stop_wander()
        net = self.topo.ns("net")
        netns.run(["ip", "-n", net, "link", "set", "wanp", "up" if phase.link != "down" else "down"])
        if phase.link == "down":
            return
        # Setting the link down flushed the carrier's route back to the LAN: restore it.
        netns.run(["ip", "-n", net, "route", "replace", f"{self.topo.addr(0)}/30", "via", self.topo.addr(5)])
        if phase.link == "shape":
            set_tbf(self.topo, int(phase.rate_kbps or 128), QUEUE_MS["shape"])
        else:
            set_tbf(self.topo, BASE_LINK_KBIT, QUEUE_MS["ok"])
        down = phase.rate_kbps if phase.link == "police" else None
        up = phase.rate_kbps if phase.link in ("police", "shape") else None
        set_nft(self.topo, down, up, POOR_LOSS_PCT if phase.link == "poor" else 0)
        if phase.link in WANDER_PERIOD:
            self._stop.clear()
            target = self._wander3g if phase.link == "wander3g" else self._wander
            self._thread = threading.Thread(target=target, args=(phase.link,), daemon=True)
            self._thread.start()

    def _wander(self, kind: str) -> None:
        lo, hi = WANDER_RANGE_KBIT[kind]
        centre = math.sqrt(lo * hi)
        kbit = centre
        while not self._stop.is_set():
            # mean-reverting random walk in log space around the range's centre
            step = 0.5 * math.log(kbit) + 0.5 * math.log(centre) + self.rng.gauss(0, WANDER_SIGMA)
            kbit = min(hi, max(lo, math.exp(step)))
            set_tbf(self.topo, int(kbit), QUEUE_MS[kind])
            self._stop.wait(WANDER_PERIOD[kind])

    def _wander3g(self, kind: str) -> None:
        """The slow wander plus dips: a 3G-class link's capacity changed several times a
        second, its average often sitting near a throttle rate."""
        lo, hi = WANDER_RANGE_KBIT[kind]
        centre = math.sqrt(lo * hi)
        kbit = centre
        dip_until = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < dip_until:
                rate = self.rng.uniform(*DIP_KBIT)
            elif self.rng.random() < DIP_CHANCE:
                dip_until = now + self.rng.uniform(*DIP_SECONDS)
                rate = self.rng.uniform(*DIP_KBIT)
            else:
                step = 0.7 * math.log(kbit) + 0.3 * math.log(centre) + self.rng.gauss(0, WANDER_SIGMA)
                kbit = rate = min(hi, max(lo, math.exp(step)))
            set_tbf(self.topo, int(rate), QUEUE_MS[kind])
            self._stop.wait(WANDER_PERIOD[kind])

    def _stop_wander(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self._stop_wander()


# ---------------------------------------------------------------- recording

RADIO = {"good": (-88.0, 2.0, -9.0, 0.7, 16.0, 2.0), "weak": (-117.0, 2.5, -15.5, 1.2, -1.0, 2.0)}


def synth_radio(rows: list[dict[str, str]], sc: Scenario) -> None:
    """Fill the radio columns per phase (seeded), in place."""
    rng = random.Random(sc.seed * 7919)
    bounds, t = [], 0.0
    for p in sc.phases:
        bounds.append((t + p.seconds, p.radio))
        t += p.seconds
    for row in rows:
        t = float(row["t"])
        radio = next((r for end, r in bounds if t < end), bounds[-1][1])
        if radio == "none":
            row.update(rsrp_dbm="", rsrq_db="", sinr_db="", registered="0")
            continue
        mp, sp, mq, sq, ms, ss = RADIO[radio]
        row.update(rsrp_dbm=f"{rng.gauss(mp, sp):.0f}", rsrq_db=f"{rng.gauss(mq, sq):.1f}",
                   sinr_db=f"{rng.gauss(ms, ss):.1f}", registered="1")


def _py(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, *args]


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def _wait_rows(path: Path, rows: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= rows + 1:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"recorder exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("recorder did not start")


def _same_load_run(phases: tuple[Phase, ...], i: int) -> list[Phase]:
    """Phase ``i`` and, for a stream, the phases right after it with the same load."""
    run = [phases[i]]
    if phases[i].load.startswith("stream"):
        for p in phases[i + 1:]:
            if p.load != phases[i].load:
                break
            run.append(p)
    return run


def record_scenario(sc: Scenario, out: Path, slot: int = 0, conntrack: bool = True) -> Path:
    """Bring the topology up, run the phases while recording, tear down; writes ``out``.
    ``conntrack`` False records as on a kernel without it: demand from LAN counters."""
    topo = Topology(slot)
    driver = LinkDriver(topo, sc.seed)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        topology_up(topo)
        with processes() as procs, tempfile.TemporaryDirectory(prefix="pwtg-") as tmp:
            srv = subprocess.Popen(_py(topo.ns("srv"), "-m", "board.virtual.network.services", "--host", topo.server_ip),
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            procs.append(srv)
            assert srv.stdout is not None
            if srv.stdout.readline().strip() != b"ready":
                raise RuntimeError("server did not start")
            driver.apply(sc.phases[0])
            raw = Path(tmp) / "raw.csv"
            rec = subprocess.Popen(_py(topo.ns("dev"), "-m", "agent.cli", "record", "--wan", "wan0",
                                       "--lan", "lan0", "--reflector", f"{topo.server_ip}:{ECHO_PORT}",
                                       "--duration", str(sc.seconds - 1), "--out", str(raw),
                                       *([] if conntrack else ["--no-conntrack"])), env=env)
            procs.append(rec)
            _wait_rows(raw, 1, rec)
            ld = None
            for i, phase in enumerate(sc.phases):
                started = time.monotonic()
                driver.apply(phase)
                # A stream goes on across phases (the same connection, as a player's would):
                # restarting it would show two flows for a moment at every phase change.
                if not (i and phase.load.startswith("stream") and phase.load == sc.phases[i - 1].load):
                    seconds = sum(p.seconds for p in _same_load_run(sc.phases, i))
                    ld = subprocess.Popen(_py(topo.ns("lan"), "-m", "board.virtual.network.traffic",
                                              "--kind", phase.load, "--host", topo.server_ip,
                                              "--port", str(SOURCE_PORT), "--duration", str(seconds),
                                              "--flows", str(TRACE_BULK_FLOWS), "--video-kbps", str(TRACE_VIDEO_KBPS),
                                              "--seed", str(sc.seed + i)),
                                          env=env, stdout=subprocess.DEVNULL)
                    procs.append(ld)
                time.sleep(max(0.0, phase.seconds - (time.monotonic() - started)))
                last_of_run = i + 1 == len(sc.phases) or sc.phases[i + 1].load != phase.load \
                    or not phase.load.startswith("stream")
                if last_of_run and ld is not None and ld.poll() is None:
                    ld.terminate()
            rec.wait(timeout=30)
            with open(raw, newline="") as fh:
                reader = csv.DictReader(fh)
                fields, rows = list(reader.fieldnames or []), list(reader)
            synth_radio(rows, sc)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
    finally:
        driver.close()
        topology_down(topo)
    return out


def write_expectations(path: Path, names: list[str]) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        data[name] = SCENARIOS[name].expectations()
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m board.virtual.network.tracegen")
    parser.add_argument("--scenario", action="append", default=[], help="scenario name (repeatable)")
    parser.add_argument("--all", action="store_true", help="every scenario")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", help="CSV path (one scenario)")
    parser.add_argument("--out-dir", default=str(REPO / "tests" / "traces"))
    parser.add_argument("--parallel", type=int, default=1, help="slots recording at once (max 8)")
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--no-conntrack", action="store_true",
                        help="record as on a kernel without conntrack (demand from LAN counters)")
    parser.add_argument("--seed", type=int, default=None,
                        help="override the scenarios' seeds (a fresh, held-out recording)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.list:
        for sc in SCENARIOS.values():
            print(f"{sc.name:28s} {sc.seconds:5.0f} s  {sc.note}")
        return 0
    names = list(SCENARIOS) if args.all else args.scenario
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown or no scenario: {unknown}; see --list")
    out_dir = Path(args.out_dir)
    if args.seed is not None:
        for n in names:
            SCENARIOS[n] = dataclasses.replace(SCENARIOS[n], seed=args.seed)
    if args.out and len(names) == 1:
        record_scenario(SCENARIOS[names[0]], Path(args.out), args.slot, conntrack=not args.no_conntrack)
        write_expectations(Path(args.out).parent / "expected.json", names)
        return 0
    slots = max(1, min(8, args.parallel))
    pending = list(names)
    lock = threading.Lock()

    def worker(slot: int) -> None:
        while True:
            with lock:
                if not pending:
                    return
                name = pending.pop(0)
            LOGGER.info("slot %d: recording %s (%.0f s)", slot, name, SCENARIOS[name].seconds)
            record_scenario(SCENARIOS[name], out_dir / f"{name}.csv", slot)
            LOGGER.info("slot %d: %s done", slot, name)

    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(worker, range(slots)))
    write_expectations(out_dir / "expected.json", names)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

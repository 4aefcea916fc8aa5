"""Exact usage across SIGKILL and power loss, on a real veth in pwt4- namespaces.

An agent-side harness (WanLink counters -> UsageMeter -> UsageJournal, sampling every
0.2 s, flushing every 1 s) runs in the router namespace while UDP (both ways) and TCP
traffic crosses the veth. It is SIGKILLed at random moments 20 times and restarted each
time; at the end the journal's total must equal the interface's IP-level byte count
exactly. Then a power cut: the harness dies, the veth is deleted and re-created
(counters back at zero) and the journal is what its last flush left: nothing may be
counted twice, and the loss must be at most about one flush interval of traffic.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.clock import Clock
from agent.net.link import ContextParams, WanLink
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from tests.integration.test_netlink import Pair, add_veth, delete_pair, make_pair, sh

REPO = Path(__file__).resolve().parents[2]
HEADER = 14  # Ethernet-framed veth: the board profile's link_header_bytes
SAMPLE_S, FLUSH_S = 0.2, 1.0
KILLS = 20
KILL_SEED = 4  # fixed seed: the kill moments are random but reproducible
TRAFFIC_RATE = 150_000  # bytes/s sent by the generator: a few MB in total over the test
KILL_AFTER_S = (0.05, 2.0)  # kills before and after the first flush of a run (FLUSH_S = 1)
STABLE_S = 0.3  # counters unchanged this long: in-flight packets (FIN, echoes) are done
START_TIMEOUT_S = 15.0  # a harness imports pyroute2 and reads counters in < 1 s
CTX = ContextParams(address="198.19.100.1", prefix=24, gateway="198.19.100.2", mtu=1500)

HARNESS = r"""
import signal, sys, time
from agent.clock import Clock
from agent.net.link import WanLink
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter

path, ifname, sample_s, flush_s, header = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
clock = Clock()
link = WanLink(ifname)
journal = UsageJournal(path, clock=clock, flush_interval_s=flush_s)
meter = UsageMeter(clock, header_bytes=header)
meter.set_active_sim("8981000000000000001", "440101234567890", "440")
if journal.baseline() is not None:
    meter.seed(journal.baseline(), journal.baseline_wall())
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))

def sample():
    deltas = meter.sample(link.counters())
    journal.add(deltas, meter.baseline(), meter.baseline_wall())

sample()
print("ready", flush=True)
while not stopping:
    time.sleep(sample_s)  # the sampler's period
    sample()
sample()
journal.close()
print("closed", flush=True)
"""

PEER = r"""
import select, socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 9999))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", 9998)); t.listen(4)
conns = []
print("ready", flush=True)
while True:
    r, _, _ = select.select([u, t] + conns, [], [], 1)
    for s in r:
        if s is u:
            data, addr = u.recvfrom(65536); u.sendto(data[: len(data) // 2], addr)  # echo half: downlink
        elif s is t:
            conns.append(t.accept()[0])
        elif not s.recv(65536):
            conns.remove(s); s.close()
"""

TRAFFIC = r"""
import random, socket, sys, time
dst, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.setblocking(False)
t = socket.create_connection((dst, 9998), timeout=5)
start = time.monotonic(); sent = 0
while time.monotonic() - start < seconds:
    n = rng.randint(40, 1400)
    m = rng.randint(100, 3000)
    u.sendto(bytes(n), (dst, 9999)); t.sendall(bytes(m)); sent += n + m
    try:
        while True: u.recv(65536)
    except BlockingIOError:
        pass
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)  # pacing the generator to a bounded rate
t.close()
print("sent", sent, flush=True)
"""


def ip_level(c: Counters) -> tuple[int, int]:
    return c.rx_bytes - HEADER * c.rx_packets, c.tx_bytes - HEADER * c.tx_packets


def journal_totals(path: Path) -> tuple[int, int]:
    bodies = [b for _, b in UsageJournal(path, clock=Clock()).pending(10**6)]
    return sum(b["rx_bytes"] for b in bodies), sum(b["tx_bytes"] for b in bodies)


class World:
    """The namespaces, the peer, and helpers to run harness and traffic in them."""

    def __init__(self, pair: Pair, journal: Path):
        self.pair, self.journal = pair, journal
        self.link = WanLink(pair.wan, netns=pair.a)
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, ns: str, script: str, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *map(str, args)],
                                cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def wait_line(self, proc: subprocess.Popen[str], want: str) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # the process prints it within START_TIMEOUT_S
        assert line.startswith(want), f"expected {want!r}, got {line!r} (rc {proc.poll()})"

    def harness(self) -> subprocess.Popen[str]:
        proc = self.spawn(self.pair.a, HARNESS, self.journal, self.pair.wan, SAMPLE_S, FLUSH_S, HEADER)
        self.wait_line(proc, "ready")
        return proc

    def traffic(self, seconds: float) -> subprocess.Popen[str]:
        return self.spawn(self.pair.a, TRAFFIC, self.pair.b_ip, seconds, TRAFFIC_RATE)

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        self.wait_line(proc, "closed")
        proc.wait(timeout=START_TIMEOUT_S)

    def quiesce(self) -> Counters:
        """Wait (bounded) until the counters stop moving; returns the settled reading."""
        deadline = time.monotonic() + START_TIMEOUT_S
        last = self.link.counters()
        while time.monotonic() < deadline:
            time.sleep(STABLE_S)  # polling an external process's effect with a deadline
            now = self.link.counters()
            if now == last:
                return now
            last = now
        raise AssertionError(f"counters never settled: {last}")

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=START_TIMEOUT_S)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    pair = make_pair("c")
    w = World(pair, tmp_path / "usage.journal")
    try:
        w.link.apply(CTX)
        peer = w.spawn(pair.b, PEER)
        w.wait_line(peer, "ready")
        yield w
    finally:
        w.cleanup()
        delete_pair(pair)


def test_sigkill_20_times_then_power_cut(world: World) -> None:
    rng = random.Random(KILL_SEED)
    c0 = world.link.counters()
    traffic = None
    for _ in range(KILLS):
        proc = world.harness()
        if traffic is None:
            traffic = world.traffic(seconds=120)  # killed below; bounded anyway
        time.sleep(rng.uniform(*KILL_AFTER_S))  # a random moment to SIGKILL at: that is the test
        proc.kill()
        proc.wait()
    assert traffic is not None
    traffic.kill()
    traffic.wait()
    world.quiesce()
    final = world.harness()
    world.stop(final)
    c1 = world.link.counters()
    want = tuple(e - s for e, s in zip(ip_level(c1), ip_level(c0)))
    got = journal_totals(world.journal)
    print(f"\nafter {KILLS} SIGKILLs: journal rx/tx {got}, interface IP-level {want}")
    assert sum(want) > 1_000_000  # a few MB really crossed
    assert got == want

    # -- power cut: harness and traffic die at once; the journal is what its last flush left
    proc = world.harness()
    c_start, t_start = world.link.counters(), time.monotonic()
    traffic = world.traffic(seconds=60)
    time.sleep(rng.uniform(1.5, 2.5))  # the cut falls at a random point of a flush interval
    proc.kill()
    traffic.kill()
    t_cut = time.monotonic()
    proc.wait()
    traffic.wait()
    c_cut = world.quiesce()
    durable = UsageJournal(world.journal, clock=Clock()).baseline()
    assert durable is not None and durable.ifindex == c_cut.ifindex
    lost = sum(ip_level(c_cut)) - sum(ip_level(durable))
    rate = (sum(ip_level(c_cut)) - sum(ip_level(c_start))) / (t_cut - t_start)
    flushed = journal_totals(world.journal)
    sh("ip", "-n", world.pair.a, "link", "del", world.pair.wan)
    add_veth(world.pair)
    world.link.apply(CTX)
    assert world.link.counters().ifindex != c_cut.ifindex
    proc = world.harness()
    world.traffic(seconds=1.0).wait(timeout=30)
    world.quiesce()
    world.stop(proc)
    new_ip = ip_level(world.link.counters())
    got = journal_totals(world.journal)
    assert got == (flushed[0] + new_ip[0], flushed[1] + new_ip[1])  # nothing counted twice
    print(f"power cut: lost {lost} IP bytes = {lost / rate:.2f} s of traffic at {rate / 1e3:.0f} kB/s "
          f"(flush interval {FLUSH_S} s, sample period {SAMPLE_S} s)")
    # at most one flush interval (+ one sample period and scheduling slack) of traffic
    assert 0 <= lost <= rate * (FLUSH_S + SAMPLE_S) * 1.5
    assert os.stat(world.journal).st_size < 64 << 10

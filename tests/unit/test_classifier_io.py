"""The classifier's inputs and its active check: trace CSV parsing, live sampler
pieces, the bounded probe and its budgets (real sockets on loopback)."""

from __future__ import annotations

import io
import itertools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from agent.clock import Clock, FakeClock
from agent.core.sampler import LiveSampler
from agent.errors import NetError
from agent.health.classifier import PROBE_BYTES
from agent.health.sample import COLUMNS, Sample
from agent.health.trace import TraceError, dumps, iter_samples, read_trace
from agent.net import activecheck
from agent.net.conntrack import ConntrackFlows, FlowBytes
from agent.net.ifstats import read_counters
from agent.net.reflector import UdpEchoProber
from agent.usage.own import OwnTraffic

HEADER = ",".join(COLUMNS)


def test_trace_round_trip_keeps_every_column(tmp_path: Path) -> None:
    samples = [Sample(t=0, wan_rx_bytes=10, wan_tx_bytes=5, flows=0, rtt_ms=None, registered=False),
               Sample(t=1.5, wan_rx_bytes=1010, wan_tx_bytes=50, lan_rx_bytes=40, lan_tx_bytes=900,
                      flows=2, rtt_ms=31.25, probes_sent=2, probes_lost=1, rsrp_dbm=-95.0,
                      rsrq_db=-11.5, sinr_db=7.0)]
    path = tmp_path / "t.csv"
    path.write_text(dumps(samples))
    assert path.read_text().splitlines()[0] == HEADER
    assert read_trace(path) == samples


@pytest.mark.parametrize("row, needle", [
    ("1,abc,0,0,0,0,,0,0,,,,1", "abc"),
    ("1,5,0,0,0,0,,0,0,,,,yes", "registered"),
    ("1,-5,0,0,0,0,,0,0,,,,1", "negative"),
    ("0,5,0,0,0,0,,0,0,,,,1", "backwards"),
])
def test_bad_rows_are_typed_errors_naming_line_and_text(row: str, needle: str) -> None:
    text = f"{HEADER}\n0,0,0,0,0,0,,0,0,,,,1\n{row}\n"
    with pytest.raises(TraceError) as err:
        list(iter_samples(io.StringIO(text)))
    assert err.value.line == 3 and needle in str(err.value) + (err.value.raw or "")


def test_missing_header_and_missing_file() -> None:
    with pytest.raises(TraceError, match="header"):
        list(iter_samples(io.StringIO("a,b\n1,2\n")))
    with pytest.raises(TraceError, match="cannot read"):
        read_trace("/nonexistent/trace.csv")


def test_counters_from_a_sysfs_tree(tmp_path: Path) -> None:
    stats = tmp_path / "wan0" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_bytes").write_text("1234\n")
    (stats / "tx_bytes").write_text("99\n")
    assert read_counters("wan0", tmp_path) == (1234, 99)
    with pytest.raises(NetError, match="lan9"):
        read_counters("lan9", tmp_path)


def ct(a: int, b: int, c: int, own: tuple[str, int] = ("9.9.9.9", 7)) -> list[FlowBytes]:
    """A conntrack table: one user TCP flow (a+b bytes) and the agent's echo flow (c)."""
    return [FlowBytes((6, "10.0.0.2", "1.2.3.4", 5555, 443), a + b),
            FlowBytes((17, "10.0.0.1", own[0], 4000, own[1]), 2 * c)]


def test_flows_count_only_those_that_moved_and_not_our_own(tmp_path: Path) -> None:
    table: list[list[FlowBytes]] = [ct(100, 5000, 40)]
    acct = tmp_path / "nf_conntrack_acct"
    acct.write_text("0\n")
    fc = ConntrackFlows(dump=lambda: table[0], active_seconds=3, acct_path=acct,
                        local_addresses=lambda: {"10.0.0.1"})
    assert acct.read_text().strip() == "1" and fc.available  # accounting switched on
    fc.own("9.9.9.9", 7)
    assert fc.update(0.0) == 1
    table[0] = ct(100, 5000, 80)
    assert fc.update(1.0) == 1  # still within 3 s of moving
    table[0] = ct(100, 5000, 120)
    assert fc.update(5.0) == 0  # stalled for 5 s; the echo flow never counts as demand
    table[0] = ct(160, 9000, 160)
    assert fc.update(6.0) == 1
    assert fc.own_bytes == 2 * 160  # the router's flow to an own endpoint: the agent's bytes
    # a LAN client's flow to the very same server and port is demand, not the agent's
    table[0] = [FlowBytes((17, "10.0.0.7", "9.9.9.9", 4001, 7), 10), *ct(160, 9000, 160)]
    assert fc.update(7.0) == 2
    # a LAN client reloading the router's own status page moves bytes, but asks the SIM for none
    table[0] = [*table[0], FlowBytes((6, "10.0.0.7", "10.0.0.1", 50000, 80), 5000)]
    assert fc.update(7.5) == 2


def test_accounting_refused_is_said_not_hidden(tmp_path: Path) -> None:
    fc = ConntrackFlows(dump=list, acct_path=tmp_path / "missing" / "nf_conntrack_acct")
    assert not fc.available and "nf_conntrack_acct" in fc.reason
    assert fc.update(0.0) is None


def test_without_conntrack_demand_comes_from_lan_counters(tmp_path: Path) -> None:
    def broken() -> list[FlowBytes]:
        raise NetError("conntrack dump over netlink failed: no such module")

    fc = ConntrackFlows(dump=broken, accounting=False)
    for name in ("wan0", "lan0"):
        (tmp_path / name / "statistics").mkdir(parents=True)

    def counters(wan: int, lan: int) -> None:
        for f in ("rx_bytes", "tx_bytes"):
            (tmp_path / "wan0" / "statistics" / f).write_text(str(wan))
        (tmp_path / "lan0" / "statistics" / "rx_bytes").write_text("0")
        (tmp_path / "lan0" / "statistics" / "tx_bytes").write_text(str(lan))

    clock = FakeClock()
    sampler = LiveSampler("wan0", "lan0", None, fc, root=tmp_path, clock=clock)
    counters(0, 0)
    assert sampler.sample(0.0).flows == 0
    clock.advance(1.0)
    counters(50_000, 50_000)  # 400 kbps through the LAN
    assert sampler.sample(1.0).flows == 1
    assert sampler.demand_source == "lan_counters" and "no such module" in fc.reason
    clock.advance(1.0)
    counters(50_100, 50_100)
    assert sampler.sample(2.0).flows == 0


def test_live_sampler_leaves_out_its_own_probe_flow(tmp_path: Path,
                                                    echo_server: tuple[str, int]) -> None:
    for name in ("wan0", "lan0"):
        stats = tmp_path / name / "statistics"
        stats.mkdir(parents=True)
        (stats / "rx_bytes").write_text("10")
        (stats / "tx_bytes").write_text("20")
    host, port = echo_server
    fc = ConntrackFlows(dump=lambda: ct(0, 0, 40, own=(host, port))[1:], accounting=False,
                        local_addresses=lambda: {"10.0.0.1"})
    sampler = LiveSampler("wan0", "lan0", UdpEchoProber(host, port), fc, root=tmp_path)
    try:
        sample = sampler.sample(0.0)
        assert (sample.wan_rx_bytes, sample.lan_tx_bytes, sample.probes_sent, sample.flows) == (10, 20, 1, 0)
        paused = sampler.sample(1.0, probe=False)
        assert paused.probes_sent == 1  # no echo while there is nothing to judge
        assert sampler.prober is not None and sampler.prober.bytes_sent == 44  # 16 B payload + 28 B headers
    finally:
        sampler.close()


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            sock.sendto(data, peer)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    yield sock.getsockname()
    stop.set()
    th.join(2)
    sock.close()


def test_udp_prober_measures_rtt_and_counts_loss(echo_server: tuple[str, int], mocker: MockerFixture) -> None:
    """The RTT is the probe's send-to-echo time on the prober's clock, not the tick period:
    the clock reads 100 s at the send, 100.012 s when the echo arrives (the receiver
    thread), 101 s at the next tick (and after, for its own echo), so the answer is exactly
    12 ms (no wall-clock bound)."""
    clock = mocker.create_autospec(Clock, instance=True)
    clock.monotonic.side_effect = itertools.chain([100.0, 100.012, 101.0], itertools.repeat(101.005))
    prober = UdpEchoProber(*echo_server, clock=clock)
    try:
        assert prober.tick() is None  # nothing answered yet
        waiter = threading.Event()
        for _ in range(500):  # the receiver thread takes the echo off a real socket: a poll
            if not prober._pending:
                break
            waiter.wait(0.02)
        else:
            raise AssertionError("no echo from the loopback reflector within 10 s")
        rtt = prober.tick()
        assert rtt == pytest.approx(12.0)
        assert prober.lost == 0
    finally:
        prober.close()
    clock = FakeClock()
    dead = UdpEchoProber("127.0.0.1", 9, clock=clock)  # nothing listens: all lost
    try:
        for _ in range(4):
            dead.tick()
            clock.advance(1.0)
        dead.tick()
        assert dead.sent == 5 and dead.lost == 2  # probes older than PROBE_LOSS_SECONDS
    finally:
        dead.close()


@pytest.fixture
def byte_source() -> Iterator[tuple[str, int, list[int]]]:
    """A loopback endpoint that streams what the probe asks for ("N\\n")."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    asked: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                n = int(conn.makefile().readline())
                asked.append(n)
                try:
                    conn.sendall(b"\0" * n)
                except OSError:
                    pass

    th = threading.Thread(target=run, daemon=True)
    th.start()
    yield (*srv.getsockname(), asked)
    stop.set()
    th.join(2)
    srv.close()


def test_probe_is_bounded_and_budgeted_across_restarts(byte_source: tuple[str, int, list[int]],
                                                       tmp_path: Path) -> None:
    host, port, asked = byte_source
    clock = FakeClock()
    ledger = tmp_path / "own.json"
    own = OwnTraffic.load(ledger, clock, check_budget_bytes=PROBE_BYTES + 1000)
    first = activecheck.run_check(min(PROBE_BYTES, own.check_allowance()), host, port)
    own.check_spent(first.bytes_used)
    assert asked == [PROBE_BYTES] and first.kbps and first.kbps > 1000
    assert first.bytes_used > PROBE_BYTES  # headers billed too
    again = OwnTraffic.load(ledger, clock, check_budget_bytes=PROBE_BYTES + 1000)  # a restart
    assert again.check_allowance() == 0 and again.report()["checks"] == 1
    refused = activecheck.run_check(again.check_allowance(), host, port)
    assert refused.kbps is None and refused.reason == "budget spent" and asked == [PROBE_BYTES]
    assert again.report()["check_refused"] == 2
    clock.advance(86400)  # a new plan day
    assert again.check_allowance() == PROBE_BYTES + 1000


def test_probe_to_a_dead_endpoint_is_a_result_not_a_crash() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        result = activecheck.run_check(PROBE_BYTES, "127.0.0.1", port)
    assert result.kbps is None and "refused" in result.reason.lower()


def test_with_no_bearer_the_echo_runs_even_when_paused(tmp_path: Path, echo_server: tuple[str, int]) -> None:
    """Issue 23: a data interface without its carrier (the data context refused) sends the
    echo anyway: it cannot leave, costs nothing, and its loss tells "no data path" from an
    idle user. With the carrier, a paused echo stays paused."""
    stats = tmp_path / "wan0" / "statistics"
    stats.mkdir(parents=True)
    for name in ("rx_bytes", "tx_bytes"):
        (stats / name).write_text("0")
    (tmp_path / "wan0" / "carrier").write_text("1\n")
    host, port = echo_server
    sampler = LiveSampler("wan0", None, UdpEchoProber(host, port), None, root=tmp_path)
    try:
        assert sampler.sample(0.0, probe=False).probes_sent == 0
        (tmp_path / "wan0" / "carrier").write_text("0\n")
        assert sampler.sample(1.0, probe=False).probes_sent == 1
    finally:
        sampler.close()

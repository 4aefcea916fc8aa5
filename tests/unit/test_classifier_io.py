"""The classifier's inputs and its active check: trace CSV parsing, live sampler
pieces, the bounded probe and its budgets (real sockets on loopback)."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.errors import NetError
from agent.health import probe
from agent.health.sample import COLUMNS, Sample
from agent.health.sampler import (
    FlowCounter,
    LiveSampler,
    UdpEchoProber,
    parse_cereg_registered,
    parse_cesq,
    read_counters,
)
from agent.health.trace import TraceError, dumps, iter_samples, read_trace

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


CT = ("ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=1.2.3.4 sport=5555 dport=443 "
      "packets=3 bytes={a} src=1.2.3.4 dst=10.0.0.2 sport=443 dport=5555 packets=3 bytes={b} [ASSURED]\n"
      "ipv4     2 udp      17 29 src=10.0.0.1 dst=9.9.9.9 sport=4000 dport=7 packets=1 bytes={c} "
      "src=9.9.9.9 dst=10.0.0.1 sport=7 dport=4000 packets=1 bytes={c}\n")


def test_flows_count_only_those_that_moved_and_not_our_prober() -> None:
    fc = FlowCounter(conntrack="/bin/true", active_seconds=3, ignore=(("9.9.9.9", 7),))
    assert fc.update(0.0, CT.format(a=100, b=5000, c=40)) == 1
    assert fc.update(1.0, CT.format(a=100, b=5000, c=80)) == 1  # still within 3 s of moving
    assert fc.update(5.0, CT.format(a=100, b=5000, c=120)) == 0  # stalled for 5 s
    assert fc.update(6.0, CT.format(a=160, b=9000, c=160)) == 1


def test_live_sampler_leaves_out_its_own_probe_flow(tmp_path: Path,
                                                    echo_server: tuple[str, int]) -> None:
    for name in ("wan0", "lan0"):
        stats = tmp_path / name / "statistics"
        stats.mkdir(parents=True)
        (stats / "rx_bytes").write_text("10")
        (stats / "tx_bytes").write_text("20")
    host, port = echo_server
    fc = FlowCounter(conntrack="/bin/true")
    sampler = LiveSampler("wan0", "lan0", UdpEchoProber(host, port), fc, root=tmp_path)
    try:
        own = (f"ipv4 2 udp 17 29 src=10.0.0.1 dst={host} sport=4000 dport={port} packets=1 bytes=40 "
               f"src={host} dst=10.0.0.1 sport={port} dport=4000 packets=1 bytes=40\n")
        assert fc.update(0.0, own) == 0
        sample = sampler.sample(0.0)
        assert (sample.wan_rx_bytes, sample.lan_tx_bytes, sample.probes_sent) == (10, 20, 1)
    finally:
        sampler.close()


def test_radio_parsers() -> None:
    assert parse_cesq("+CESQ: 99,99,255,255,20,40\r\nOK") == (-101.0, -10.0)
    assert parse_cesq("+CESQ: 99,99,255,255,255,255") == (None, None)
    assert parse_cereg_registered("+CEREG: 2,5,\"1A2B\"") is True
    assert parse_cereg_registered("+CEREG: 0,3") is False
    assert parse_cereg_registered("ERROR") is None


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


def test_udp_prober_measures_rtt_and_counts_loss(echo_server: tuple[str, int]) -> None:
    prober = UdpEchoProber(*echo_server)
    try:
        assert prober.tick() is None  # nothing answered yet
        waiter = threading.Event()
        for _ in range(100):  # wait for the receiver thread (real socket), bounded to 2 s
            if not prober._pending:
                break
            waiter.wait(0.02)
        rtt = prober.tick()
        assert rtt is not None and 0 < rtt < 500  # the real loopback RTT, not the tick period
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


def test_probe_is_bounded_and_budgeted(byte_source: tuple[str, int, list[int]]) -> None:
    host, port, asked = byte_source
    budget = probe.ProbeBudget(FakeClock(), daily_bytes=probe.PROBE_BYTES + 1000)
    first = probe.run_check(budget, host, port)
    assert first.bytes_used == probe.PROBE_BYTES and first.kbps and first.kbps > 1000
    second = probe.run_check(budget, host, port)  # only 1000 bytes left today
    assert second.bytes_used == 1000 and asked == [probe.PROBE_BYTES, 1000]
    third = probe.run_check(budget, host, port)
    assert third.kbps is None and third.reason == "budget spent"
    report = budget.report()
    assert report["used_today"] == probe.PROBE_BYTES + 1000 and report["refused"] == 1
    budget.clock.advance(86400)  # type: ignore[attr-defined]
    assert budget.allow() == probe.PROBE_BYTES  # a new JST day


def test_probe_to_a_dead_endpoint_is_a_result_not_a_crash() -> None:
    budget = probe.ProbeBudget(FakeClock())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        result = probe.run_check(budget, "127.0.0.1", port)
    assert result.kbps is None and "refused" in result.reason.lower()


def test_record_cli_refuses_an_unknown_interface_clearly() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "agent.cli", "record", "--wan", "nosuchif0",
                           "--no-conntrack", "--duration", "1"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "nosuchif0" in done.stderr


def test_record_writes_rows_on_schedule(tmp_path: Path) -> None:
    from agent.health.record import record
    from agent.health.sampler import LiveSampler
    from agent.health.trace import TraceWriter

    stats = tmp_path / "wan0" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_bytes").write_text("5")
    (stats / "tx_bytes").write_text("6")

    class Clock(FakeClock):
        def sleep(self, seconds: float) -> None:
            self.advance(seconds)

    buf = io.StringIO()
    rows = record(LiveSampler("wan0", None, None, None, root=tmp_path), TraceWriter(buf), 4.0, 1.0,
                  clock=Clock())
    samples = list(iter_samples(io.StringIO(buf.getvalue())))
    assert rows == 5 and [s.t for s in samples] == [0, 1, 2, 3, 4]

"""A black hole named (issue 23): registered, the router sends, not one byte comes back.
Told apart from no bearer at all (nothing leaves either), from an outage (not registered)
and from a slow or congested link (bytes arrive, echoes are answered late)."""

from __future__ import annotations

from agent.health.classifier import Classifier, StateChange
from agent.health.sample import Sample
from agent.health.thresholds import (
    BLACKHOLE_SECONDS,
    ENTER_HOLD,
    NO_SERVICE_SECONDS,
    SILENCE_PROBE_SECONDS,
)

FAST = 15_000 * 1000 // 8


class Trace:
    """Cumulative counters, second by second, with the uplink stated separately."""

    def __init__(self) -> None:
        self.t, self.rx, self.tx, self.lan, self.sent, self.lost = 0.0, 0, 0, 0, 0, 0
        self.samples = [Sample(0.0, 0, 0, rsrp_dbm=-88, rsrq_db=-9, sinr_db=15)]

    def second(self, *, rx: int = 0, tx: int = 0, lan: int = 0, flows: int = 0, probed: bool = True,
               answered: bool = True, rtt: float = 40.0, registered: bool = True) -> None:
        self.t += 1.0
        self.rx, self.tx, self.lan = self.rx + rx, self.tx + tx, self.lan + lan
        self.sent += 1 if probed else 0
        self.lost += 1 if probed and not answered else 0
        self.samples.append(Sample(self.t, self.rx, self.tx, lan_rx_bytes=self.lan, flows=flows,
                                   rtt_ms=rtt if probed and answered else None, probes_sent=self.sent,
                                   probes_lost=self.lost, rsrp_dbm=-88, rsrq_db=-9, sinr_db=15,
                                   registered=registered))

    def serving(self, seconds: int) -> None:
        for _ in range(seconds):
            self.second(rx=FAST, tx=FAST // 30, flows=3)

    def feed(self) -> tuple[list[StateChange], Classifier]:
        clf = Classifier()
        out: list[StateChange] = []
        for s in self.samples:
            out += clf.feed(s)
        return out, clf


def test_sending_into_silence_is_a_blackhole_with_its_evidence() -> None:
    trace = Trace()
    trace.serving(30)
    for _ in range(12):
        trace.second(tx=150, lan=400, flows=1, answered=False)
    changes, _ = trace.feed()
    assert [c.state for c in changes] == ["ok", "no_service"]
    hole = changes[-1]
    assert hole.t == 30 + BLACKHOLE_SECONDS + ENTER_HOLD["no_service"]
    ev = hole.evidence
    assert ev["cause"] == "blackhole" and ev["down_bytes"] == 0 and ev["up_bytes"] == 150 * BLACKHOLE_SECONDS
    assert ev["seconds_silent"] == BLACKHOLE_SECONDS and ev["probes_lost"] == BLACKHOLE_SECONDS - 1
    assert ev["radio"]["rsrp_dbm"] == -88  # a healthy radio: the core, not the cell


def test_nothing_sent_and_nothing_received_is_no_bearer_not_a_blackhole() -> None:
    trace = Trace()
    trace.serving(30)
    for _ in range(12):
        trace.second(answered=False)
    changes, _ = trace.feed()
    assert changes[-1].evidence["cause"] == "no_data"
    assert changes[-1].t == 30 + NO_SERVICE_SECONDS + ENTER_HOLD["no_service"]


def test_a_short_stall_is_not_a_blackhole() -> None:
    """Four silent seconds (a handover's stall) and the link is back: no verdict."""
    trace = Trace()
    trace.serving(30)
    for _ in range(int(BLACKHOLE_SECONDS) - 1):
        trace.second(tx=150, flows=1, answered=False)
    trace.serving(20)
    assert "no_service" not in [c.state for c in trace.feed()[0]]


def test_a_slow_congested_link_is_never_no_service() -> None:
    """Bytes arrive, slowly and unevenly, and echoes come back late: congestion territory,
    never a black hole (the lab's congestion fault: 1-12 Mbit/s, 400 ms queues)."""
    trace = Trace()
    trace.serving(30)
    for i in range(60):
        kbps = (1_000, 9_000, 3_000, 12_000, 2_000)[i % 5]
        trace.second(rx=kbps * 125, tx=kbps * 4, flows=2, rtt=450.0 + 100 * (i % 3), answered=i % 4 != 0)
    assert "no_service" not in [c.state for c in trace.feed()[0]]


def test_an_outage_is_named_not_registered_not_blackhole() -> None:
    trace = Trace()
    trace.serving(30)
    for _ in range(10):
        trace.second(registered=False, probed=False)
    changes, _ = trace.feed()
    assert changes[-1].state == "no_service" and changes[-1].evidence["cause"] == "not_registered"


def test_the_echo_runs_once_something_is_sent_into_silence_even_without_a_flow() -> None:
    """On a fast link the echo runs one second in ten; a LAN host's SYNs retried into
    nothing (no flow has moved data yet) ask for it every second; an idle link does not."""
    clf = Classifier()
    trace = Trace()
    trace.serving(30)
    for s in trace.samples:
        clf.feed(s)
    t, rx, tx = trace.t, trace.rx, trace.tx
    for i in range(1, SILENCE_PROBE_SECONDS + 1):
        clf.feed(Sample(t + i, rx, tx + 60 * i, lan_rx_bytes=60 * i, flows=0, probes_sent=trace.sent,
                        probes_lost=trace.lost, rsrp_dbm=-88, registered=True))
    assert clf.wants_traffic_probe
    idle = Classifier()
    for i in range(10):
        idle.feed(Sample(float(i), 0, 0, flows=0, registered=True))
    assert not idle.wants_traffic_probe

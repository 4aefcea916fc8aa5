"""The classifier's rules at their edges (issue 29 #9, #10): "no service" from silent
probes on a registered SIM, congestion entered on both of its signs only, and the hold
rule that needs both the time and the samples. Each asserts the state a swap decision
would read, at the second it is decided."""

from __future__ import annotations

from agent.health.classifier import Classifier, StateChange
from agent.health.sample import Sample
from agent.health.thresholds import ENTER_HOLD, NO_SERVICE_SECONDS
from tests.unit.test_classifier import OK, run, states

FAST = 15_000 * 1000 // 8
"""Bytes a second at 15 Mbit/s: a healthy LTE link, faster than any throttle rate."""


class Trace:
    """Samples built second by second: cumulative bytes and probe counters, as the sampler
    keeps them, so a test states only what each second looked like."""

    def __init__(self) -> None:
        self.t, self.rx, self.sent, self.lost = 0.0, 0, 0, 0
        self.samples = [Sample(0.0, 0, 0, rsrp_dbm=-88, rsrq_db=-9, sinr_db=15)]

    def second(self, *, rx: int = 0, flows: int = 0, answered: bool = True, probed: bool = True,
               registered: bool = True, after: float = 1.0) -> None:
        self.t += after
        self.rx += rx
        self.sent += 1 if probed else 0
        self.lost += 1 if probed and not answered else 0
        self.samples.append(Sample(self.t, self.rx, self.rx // 30, flows=flows,
                                   rtt_ms=40.0 if probed and answered else None,
                                   probes_sent=self.sent, probes_lost=self.lost, rsrp_dbm=-88, rsrq_db=-9,
                                   sinr_db=15, registered=registered))

    def serving(self, seconds: int) -> None:
        for _ in range(seconds):
            self.second(rx=FAST, flows=3)

    def feed(self) -> tuple[list[StateChange], Classifier]:
        clf = Classifier()
        out: list[StateChange] = []
        for s in self.samples:
            out += clf.feed(s)
        return out, clf


def test_silent_probes_on_a_registered_sim_are_no_service_from_the_third_second() -> None:
    """Registered, a probe sent every second and none answered, not a byte: no service
    (cause no_data). The candidate stands once NO_SERVICE_SECONDS ticks are silent, the
    state ENTER_HOLD later: at t = 33 + 2 for silence from t = 31."""
    trace = Trace()
    trace.serving(30)
    for _ in range(10):
        trace.second(answered=False)
    changes, clf = trace.feed()
    assert states(changes) == ["ok", "no_service"]
    down = changes[-1]
    assert down.t == 30 + NO_SERVICE_SECONDS + ENTER_HOLD["no_service"]
    assert down.evidence["cause"] == "no_data" and down.evidence["seconds_silent"] == NO_SERVICE_SECONDS
    assert down.evidence["probes_lost"] == NO_SERVICE_SECONDS - 1 and clf.state == "no_service"


def test_silence_is_not_no_service_when_bytes_move_a_probe_answers_or_none_was_sent() -> None:
    """The other side of the rule: traffic without echoes, echoes without traffic (the user
    is idle) and silence while the prober is paused prove the SIM is served or prove
    nothing; none of them is no service."""
    for second in ({"rx": FAST // 100, "flows": 1, "answered": False},  # bytes, but no echo back
                   {"answered": True},  # the echo answers: the user is idle, not the SIM dead
                   {"probed": False}):  # no probe sent: silence proves nothing
        trace = Trace()
        trace.serving(30)
        for _ in range(20):
            trace.second(**second)  # type: ignore[arg-type]
        changes, _ = trace.feed()
        assert "no_service" not in states(changes), second


def test_no_service_needs_the_third_silent_second() -> None:
    """Two silent seconds then service: never a candidate, so never the state, and the
    third alone (onset) is what makes one."""
    trace = Trace()
    trace.serving(30)
    for _ in range(int(NO_SERVICE_SECONDS) - 1):
        trace.second(answered=False)
    trace.serving(30)
    assert "no_service" not in states(trace.feed()[0])


def test_congestion_is_entered_on_both_signs_not_one() -> None:
    """A busy cell both wanders and queues; a wandering rate with no queue (a light radio
    limit) or a queue at a flat rate (a shaper well above any throttle rate) alone is not
    congestion: the docstring's rule, 'entering needs both signs'."""
    wander_only = {"seconds": 60, "wander": (300, 3000), "rtt": 30, "rtt_jitter": 4}
    queue_only = {"seconds": 60, "kbps": 6000, "jitter": 0.02, "rtt": 350, "rtt_jitter": 10}
    both = {"seconds": 60, "wander": (300, 3000), "rtt": 350, "rtt_jitter": 300}
    assert "congested" not in states(run([OK, wander_only])[0])
    assert "congested" not in states(run([OK, queue_only])[0])
    assert states(run([OK, both])[0])[-1] == "congested"


def test_a_candidate_seen_once_before_a_pause_does_not_win_on_elapsed_time() -> None:
    """Hold rule: time *and* about as many samples. Coming back from no service, one fast
    second, then a 20 s gap (no sample), then one more: the hold's 4 s have passed but
    only two samples agreed, so the state stays; it changes on the fourth sample."""
    trace = Trace()
    trace.serving(30)
    for _ in range(10):
        trace.second(registered=False, answered=False)
    trace.second(rx=FAST, flows=3)  # t = 41: service back, one second of it
    trace.second(rx=FAST * 20, flows=3, after=20.0)  # t = 61, after a gap: 2 samples, 20 s
    changes, clf = trace.feed()
    assert states(changes) == ["ok", "no_service"] and clf.state == "no_service"
    trace.serving(2)  # t = 62, 63: the third and fourth samples
    changes, clf = trace.feed()
    assert states(changes) == ["ok", "no_service", "ok"] and changes[-1].t == 63.0
    assert ENTER_HOLD["ok"] == 4.0  # the numbers above are this hold's

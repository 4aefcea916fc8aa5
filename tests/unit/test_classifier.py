"""Classifier unit logic on synthetic samples (the recorded library is in
tests/integration/test_trace_library.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from agent.health.classifier import (
    ENTER_HOLD,
    KNOWN_RATES_KBPS,
    Classifier,
    StateChange,
    nearest_known,
)
from agent.health.sample import Sample


def synth(phases: list[dict], seed: int = 1) -> Iterator[Sample]:
    """Samples from phases: seconds, kbps (list or number), jitter, flows, rtt, radio."""
    rng = random.Random(seed)
    t, rx, tx, sent, lost, lan_rx, lan_tx = 0.0, 0, 0, 0, 0, 0, 0
    yield Sample(t=0.0, wan_rx_bytes=0, wan_tx_bytes=0, rsrp_dbm=-88, rsrq_db=-9, sinr_db=15)
    for ph in phases:
        for _ in range(ph["seconds"]):
            t += 1.0
            kbps = ph.get("kbps", 0.0)
            kbps = kbps * (1 + rng.uniform(-ph.get("jitter", 0.04), ph.get("jitter", 0.04)))
            if "wander" in ph:
                kbps = rng.uniform(*ph["wander"])
            rx += int(kbps * 1000 / 8)
            tx += int(kbps * 1000 / 8 * 0.03)
            sent += 1
            answered = ph.get("registered", True) and rng.random() >= ph.get("loss", 0.0)
            lost += 0 if answered else 1
            rtt = ph.get("rtt", 30.0) + rng.uniform(0, ph.get("rtt_jitter", 5.0))
            radio = ph.get("radio", (-88.0, -9.0, 15.0))
            lan_rx += int(kbps * 1000 / 8 * 0.03 * ph.get("lan_factor", 1.0))
            lan_tx += int(kbps * 1000 / 8 * ph.get("lan_factor", 1.0))
            yield Sample(t=t, wan_rx_bytes=rx, wan_tx_bytes=tx, lan_rx_bytes=lan_rx, lan_tx_bytes=lan_tx,
                         flows=ph.get("flows", 3 if kbps > 0 else 0),
                         rtt_ms=rtt if answered else None, probes_sent=sent, probes_lost=lost,
                         rsrp_dbm=radio[0] if radio else None, rsrq_db=radio[1] if radio else None,
                         sinr_db=radio[2] if radio else None, registered=ph.get("registered", True))


def run(phases: list[dict], plan: float | None = None, probe_kbps: float | None = None,
        ) -> tuple[list[StateChange], Classifier]:
    clf = Classifier(plan_rate_kbps=plan)
    out: list[StateChange] = []
    for s in synth(phases):
        out += clf.feed(s)
        if clf.wants_probe is not None:
            clf.probe_result(probe_kbps, 262144 if probe_kbps else 0)
    return out, clf


def states(changes: list[StateChange]) -> list[str]:
    return [c.state for c in changes]


OK = {"seconds": 30, "kbps": 15000, "jitter": 0.3, "rtt": 40}


@pytest.mark.parametrize("rate", [128, 200, 384, 1000])
def test_policer_under_bulk_is_throttled_within_ten_seconds(rate: int) -> None:
    changes, clf = run([OK, {"seconds": 40, "kbps": rate * 0.95, "rtt": 20, "flows": 4}])
    assert states(changes) == ["ok", "throttled"]
    thr = changes[1]
    assert thr.t - 30 <= 10
    assert thr.evidence["known_rate_kbps"] == rate and thr.evidence["mechanism"] == "policer"
    assert abs(thr.rate_kbps - rate * 0.95) < rate * 0.05  # type: ignore[operator]
    assert clf.probes_requested == 0  # passive signals agreed: no data spent


def test_shaper_queue_is_recognised() -> None:
    changes, _ = run([OK, {"seconds": 30, "kbps": 200, "jitter": 0.02, "rtt": 300, "rtt_jitter": 20,
                           "flows": 1}])
    assert states(changes) == ["ok", "throttled"]
    assert changes[1].evidence["mechanism"] == "shaper"


def test_plan_rate_is_a_known_rate() -> None:
    phases = [OK, {"seconds": 30, "kbps": 700, "flows": 3}]
    assert "throttled" not in states(run(phases)[0])
    changes, _ = run(phases, plan=700)
    assert states(changes)[-1] == "throttled"
    assert changes[-1].evidence["plan_rate_kbps"] == 700


def test_congestion_wanders_and_is_not_throttled() -> None:
    changes, _ = run([OK, {"seconds": 60, "wander": (300, 3000), "rtt": 350, "rtt_jitter": 300}])
    assert "throttled" not in states(changes)
    assert states(changes)[-1] == "congested"


def test_a_rate_drifting_through_a_throttle_rate_is_not_throttled() -> None:
    ramp = [{"seconds": 1, "kbps": 1400 * 0.95 ** i, "jitter": 0.0, "flows": 3} for i in range(30)]
    changes, _ = run([OK, *ramp])  # 1400 -> 300 kbps, 5 % a second, through 1000/512/384/300
    assert "throttled" not in states(changes)


def test_weak_signal_at_a_throttle_rate_is_poor_radio() -> None:
    changes, _ = run([OK, {"seconds": 40, "kbps": 128, "flows": 3, "radio": (-118.0, -16.0, -2.0),
                           "loss": 0.1}])
    assert states(changes) == ["ok", "poor_radio"]
    assert "rsrp" in changes[1].evidence["below"]


def test_idle_user_is_idle_not_throttled() -> None:
    changes, _ = run([OK, {"seconds": 40, "kbps": 2, "flows": 0}])
    assert states(changes) == ["ok", "idle"]
    assert changes[1].t - 30 >= ENTER_HOLD["idle"]


def test_unregistered_is_no_service_then_recovers() -> None:
    changes, _ = run([OK, {"seconds": 20, "kbps": 0, "flows": 0, "registered": False, "radio": None},
                      OK])
    assert states(changes) == ["ok", "no_service", "ok"]
    assert changes[1].evidence["cause"] == "not_registered"


def test_single_flow_at_a_known_rate_asks_for_a_probe() -> None:
    flat_one_flow = {"seconds": 40, "kbps": 128, "flows": 1, "rtt": 25}
    # the probe runs at 20 Mbit/s: an application sending 128 kbps by itself, not a cap
    changes, clf = run([OK, flat_one_flow], probe_kbps=20000)
    assert clf.probes_requested == 1 and "throttled" not in states(changes)
    # the probe gets 130 kbps: the cap is confirmed
    changes, clf = run([OK, flat_one_flow], probe_kbps=130)
    assert states(changes)[-1] == "throttled"
    assert changes[-1].evidence["probe"]["result"] == "confirmed"
    # no probe possible: a suspect observation, never throttled (issue 10)
    changes, clf = run([OK, flat_one_flow], probe_kbps=None)
    assert "throttled" not in states(changes)
    assert clf.last_suspect is not None and clf.last_suspect.evidence["known_rate_kbps"] == 128


def test_throttle_lifted_returns_to_ok() -> None:
    changes, _ = run([OK, {"seconds": 30, "kbps": 384, "flows": 3}, OK])
    assert states(changes) == ["ok", "throttled", "ok"]


def test_think_time_keeps_throttled() -> None:
    web = []
    for _ in range(6):
        web += [{"seconds": 7, "kbps": 200, "flows": 3}, {"seconds": 3, "kbps": 1, "flows": 0}]
    changes, _ = run([OK, *web])
    assert states(changes) == ["ok", "throttled"]


def test_replay_line_form() -> None:
    changes, _ = run([OK, {"seconds": 30, "kbps": 128, "flows": 3}])
    assert changes[-1].previous == "ok" and changes[-1].onset_t <= changes[-1].t  # type: ignore[operator]
    assert changes[-1].evidence["known_rate_kbps"] == 128 and changes[-1].mechanism == "policer"
    js = changes[-1].to_json()
    assert set(js) >= {"t", "state", "rate_kbps", "evidence"}


def test_nearest_known() -> None:
    assert nearest_known(121, KNOWN_RATES_KBPS) == 128
    assert nearest_known(700, KNOWN_RATES_KBPS) is None
    assert nearest_known(990, KNOWN_RATES_KBPS) == 1000


def test_time_going_backwards_and_counter_reset_do_not_crash() -> None:
    clf = Classifier()
    clf.feed(Sample(t=1, wan_rx_bytes=1000, wan_tx_bytes=0))
    assert clf.feed(Sample(t=0.5, wan_rx_bytes=2000, wan_tx_bytes=0)) == []
    assert clf.feed(Sample(t=2, wan_rx_bytes=0, wan_tx_bytes=0)) == []  # modem reset: counters at 0


from hypothesis import given, settings
from hypothesis import strategies as st

from agent.health.classifier import STATES

_step = st.tuples(
    st.floats(0.1, 5.0), st.integers(0, 3_000_000), st.integers(0, 10), st.one_of(st.none(), st.floats(0, 3000)),
    st.booleans(), st.one_of(st.none(), st.floats(-140, -40)), st.one_of(st.none(), st.floats(-20, 30)),
    st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(_step, min_size=1, max_size=120), st.one_of(st.none(), st.floats(64, 2000)))
def test_any_sample_sequence_gives_known_states_and_never_raises(steps: list, plan: float | None) -> None:
    clf = Classifier(plan_rate_kbps=plan)
    t, rx, lost = 0.0, 0, 0
    for sent, (dt, drx, flows, rtt, lose, rsrp, sinr, reg) in enumerate(steps, start=1):
        t += dt
        rx += drx
        lost += int(lose)
        for change in clf.feed(Sample(t=t, wan_rx_bytes=rx, wan_tx_bytes=rx // 20, flows=flows,
                                      rtt_ms=rtt, probes_sent=sent, probes_lost=lost, rsrp_dbm=rsrp,
                                      sinr_db=sinr, registered=reg)):
            assert change.state in STATES and change.t == t
            assert (change.rate_kbps is not None) == (change.state == "throttled")
            assert change.onset_t is None or change.onset_t <= change.t
        if clf.wants_probe is not None:
            clf.probe_result(None)
    assert clf.state is None or clf.state in STATES

"""Issue 10: a flat rate near a throttle rate is ``throttled`` only when other evidence
agrees; app-limited single streams and wandering slow links never are."""

from __future__ import annotations

import random

import pytest

from agent.health.classifier import (
    FAST_KBPS,
    KNOWN_RATES_KBPS,
    SLOW_LINK_BUSY_SECONDS,
    SUSPECT_REPEAT_SECONDS,
    Classifier,
    Observation,
    StateChange,
)
from agent.health.sample import Sample
from tests.unit.test_classifier import OK, run, states, synth


def feed_all(samples: list[Sample], probe_kbps: float | None = None
             ) -> tuple[list[StateChange], list[Observation], Classifier]:
    clf = Classifier()
    changes: list[StateChange] = []
    seen: list[Observation] = []
    for s in samples:
        changes += clf.feed(s)
        seen += clf.take_observations()
        if clf.wants_probe is not None:
            clf.probe_result(probe_kbps, 0, "" if probe_kbps else "no endpoint")
    return changes, seen, clf


@pytest.mark.parametrize("rate", [128, 200, 384, 1000])
def test_app_limited_single_stream_is_suspect_never_throttled(rate: int) -> None:
    # a fixed-bitrate stream: one flow, +-1 %, no queue, no loss, LAN = WAN; 3 minutes
    stream = {"seconds": 180, "kbps": rate * 1.05, "jitter": 0.01, "flows": 1, "rtt": 25}
    changes, seen, clf = feed_all(list(synth([OK, stream])))
    assert "throttled" not in states(changes)
    assert states(changes)[-1] == "ok"
    suspects = [o for o in seen if o.kind == "suspect"]
    assert suspects and all(o.evidence["known_rate_kbps"] == rate for o in suspects)
    # repeated at most once a minute while it lasts
    assert len(suspects) <= 180 / SUSPECT_REPEAT_SECONDS + 1
    assert "mechanism" not in suspects[0].evidence
    assert clf.last_suspect == suspects[-1]


def test_a_refuting_check_makes_a_stream_ok_and_asks_once_per_rate() -> None:
    stream = {"seconds": 120, "kbps": 200 * 1.05, "jitter": 0.01, "flows": 1, "rtt": 25}
    changes, seen, clf = feed_all(list(synth([OK, stream])), probe_kbps=18000)
    assert "throttled" not in states(changes) and not seen
    assert clf.probes_requested == 1


@pytest.mark.parametrize("evidence, phase", [
    ("policer_loss", {"loss": 0.3}),
    ("lan_demand", {"lan_factor": 1.6}),
    ("shaper_queue", {"rtt": 280, "rtt_jitter": 15}),
    ("flows", {"flows": 3}),
])
def test_one_agreeing_sign_is_enough(evidence: str, phase: dict) -> None:
    capped = {"seconds": 40, "kbps": 384 * 0.97, "flows": 1, "rtt": 25, **phase}
    changes, seen, _ = feed_all(list(synth([OK, capped])))
    assert states(changes)[-1] == "throttled", (states(changes), seen)
    assert evidence in changes[-1].evidence["agreement"]
    assert changes[-1].t - 30 <= 12


def test_a_second_flow_for_a_moment_is_not_several_flows() -> None:
    stream = [{"seconds": 20, "kbps": 400, "jitter": 0.01, "flows": 1, "rtt": 25},
              {"seconds": 2, "kbps": 400, "jitter": 0.01, "flows": 2, "rtt": 25},
              {"seconds": 40, "kbps": 400, "jitter": 0.01, "flows": 1, "rtt": 25}]
    changes, _, _ = feed_all(list(synth([OK, *stream])))
    assert "throttled" not in states(changes)


def wandering_3g(seconds: int, seed: int) -> list[dict]:
    """3G/EVDO-like capacity: 50-1,500 kbps, moving every second, dips of seconds, and
    (the field case) ~193 kbps with a steady ~220 ms queue for five seconds in between."""
    rng = random.Random(seed)
    out: list[dict] = []
    while sum(p["seconds"] for p in out) < seconds:
        roll = rng.random()
        if roll < 0.15:
            out.append({"seconds": rng.randint(1, 3), "kbps": rng.uniform(50, 90), "flows": 3, "rtt": 400})
        elif roll < 0.3 and out and out[-1]["kbps"] != 193:  # never two in a row: 10 flat s
            out.append({"seconds": 5, "kbps": 193, "jitter": 0.03, "flows": 3, "rtt": 240, "rtt_jitter": 20})
        else:
            out.append({"seconds": 1, "kbps": rng.uniform(80, 1500), "flows": 3, "rtt": 150,
                        "rtt_jitter": 200})
    return out


@pytest.mark.parametrize("seed", range(8))
def test_a_wandering_slow_link_is_never_throttled(seed: int) -> None:
    changes, _, _ = feed_all(list(synth(wandering_3g(300, seed), seed=seed)), probe_kbps=200)
    assert "throttled" not in states(changes), [c.to_json() for c in changes if c.state == "throttled"]


def test_five_busy_seconds_are_not_a_shaper_on_a_slow_link() -> None:
    slow = {"seconds": 30, "kbps": 600, "jitter": 0.6, "flows": 3, "rtt": 120, "rtt_jitter": 150}
    field_case = {"seconds": 6, "kbps": 193, "jitter": 0.03, "flows": 3, "rtt": 240, "rtt_jitter": 20}
    changes, _, _ = feed_all(list(synth([slow, field_case, slow])))
    assert "throttled" not in states(changes)
    # the same five seconds after a fast link are a shaper (the ordinary case)
    changes, _ = run([OK, {**field_case, "seconds": 12}])
    assert states(changes)[-1] == "throttled" and changes[-1].mechanism == "shaper"


def test_a_real_cap_on_a_slow_link_is_found_after_more_seconds() -> None:
    slow = {"seconds": 30, "kbps": 600, "jitter": 0.6, "flows": 3, "rtt": 120, "rtt_jitter": 150}
    cap = {"seconds": 40, "kbps": 128, "jitter": 0.03, "flows": 3, "rtt": 240, "rtt_jitter": 20}
    changes, _, _ = feed_all(list(synth([slow, cap])))
    assert states(changes)[-1] == "throttled"
    thr = changes[-1]
    assert thr.evidence["slow_link"] is True and thr.evidence["busy_seconds"] == SLOW_LINK_BUSY_SECONDS
    assert SLOW_LINK_BUSY_SECONDS <= thr.t - 30 <= SLOW_LINK_BUSY_SECONDS + 8


def test_constants_are_consistent() -> None:
    assert FAST_KBPS >= max(KNOWN_RATES_KBPS) * 1.5  # a policed 1000k's bucket never reads as fast

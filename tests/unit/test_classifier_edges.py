"""The classifier's decisions at their edges, on exact synthetic seconds (issue 29): what a
capped SIM does once throttled (stays, or leaves only on traffic clearly above its cap),
the active check's life (asked once, pending while it runs, valid for a while, retried
later), the shaper/policer edges, the fast-link memory past the first five minutes, the
echo's own budget, and the evidence each state sends upstream (docs/health.md).

Bytes are whole: ``kbps * 125`` a second, so 128 kbps is exactly 16,000 B and the rules'
averages are exact; RTTs are given per second (None: the echo was lost)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agent.health.classifier import Classifier, Observation, StateChange
from agent.health.sample import Sample
from agent.health.thresholds import (
    ENTER_HOLD,
    EXCEED_FACTOR,
    FAST_ECHO_EVERY,
    FAST_KBPS,
    PROBE_CONFIRM_FACTOR,
    PROBE_RETRY_SECONDS,
    PROBE_VALID_SECONDS,
    SHAPER_QUEUE_MS,
    SUSPECT_REPEAT_SECONDS,
)

GOOD_RADIO = (-88.0, -9.0, 15.0)


class Link:
    """Cumulative counters built second by second, as the sampler keeps them."""

    def __init__(self) -> None:
        self.t, self.rx, self.lan, self.sent, self.lost = 0.0, 0, 0, 0, 0
        self.samples = [Sample(0.0, 0, 0, rsrp_dbm=GOOD_RADIO[0], rsrq_db=GOOD_RADIO[1], sinr_db=GOOD_RADIO[2])]

    def second(self, kbps: float = 0.0, *, flows: int = 3, rtt: float | None = 40.0,
               lan_factor: float = 1.0, after: float = 1.0) -> None:
        self.t += after
        self.rx += round(kbps * 125 * after)
        self.lan += round(kbps * 125 * after * lan_factor)
        self.sent += 1
        self.lost += rtt is None
        self.samples.append(Sample(self.t, self.rx, 0, lan_rx_bytes=0, lan_tx_bytes=self.lan,
                                   flows=flows if kbps else 0, rtt_ms=rtt, probes_sent=self.sent,
                                   probes_lost=self.lost, rsrp_dbm=GOOD_RADIO[0], rsrq_db=GOOD_RADIO[1],
                                   sinr_db=GOOD_RADIO[2]))

    def tail(self) -> Link:
        """The same counters from here on, without the samples already fed."""
        more = Link()
        more.t, more.rx, more.lan, more.sent, more.lost = self.t, self.rx, self.lan, self.sent, self.lost
        more.samples = []
        return more

    def steady(self, seconds: int, kbps: float, **kw: Any) -> None:
        for _ in range(seconds):
            self.second(kbps, **kw)

    def each(self, rates: Iterable[float], rtts: Iterable[float | None] | None = None, **kw: Any) -> None:
        rates = list(rates)
        for kbps, rtt in zip(rates, rtts if rtts is not None else [40.0] * len(rates)):
            self.second(kbps, rtt=rtt, **kw)


Answer = Callable[[Classifier], tuple[float | None, int, str] | None]
"""What the active check answers when asked (kbps, bytes, reason), or None to leave it running."""


def feed(link: Link, answer: Answer | None = None, clf: Classifier | None = None,
         ) -> tuple[list[StateChange], list[Observation], Classifier]:
    clf = clf or Classifier()
    changes: list[StateChange] = []
    seen: list[Observation] = []
    for s in link.samples:
        changes += clf.feed(s)
        seen += clf.take_observations()
        if clf.wants_probe is not None and answer is not None:
            got = answer(clf)
            if got is not None:
                clf.probe_result(*got)
    return changes, seen, clf


def fast_then(build: Callable[[Link], None]) -> Link:
    """30 s of a fast LTE link (15 Mbit/s, RTT 40 ms), then ``build``."""
    link = Link()
    link.steady(30, 15_000.0)
    build(link)
    return link


def states(changes: list[StateChange]) -> list[str]:
    return [c.state for c in changes]


def throttled_at(rate: float, seconds: int = 20) -> Link:
    """A policer at ``rate`` under three flows (agreement: flows), entered from a fast link."""
    return fast_then(lambda link: link.steady(seconds, rate))


# --- once throttled --------------------------------------------------------------------

def test_a_cap_that_wobbles_under_its_ceiling_stays_throttled_not_congested() -> None:
    """Throttled at 384 kbps, the rate then swings (100-560 kbps: no flat ceiling, and no
    3-s average above 1.5x 384) with a wandering queue: still the cap, still a swap; not
    congestion, which is never one, and not ok."""
    link = throttled_at(384)
    wobble = [100, 100, 560, 560] * 8
    queue = [300, 120, 380, 90] * 8
    link.each(wobble, queue)
    changes, _, clf = feed(link)
    assert states(changes) == ["ok", "throttled"] and clf.state == "throttled"
    assert clf.rate_kbps == 384


def test_two_averages_above_one_and_a_half_times_the_cap_lift_it_from_their_start() -> None:
    """Leaving throttled: 3-s averages above EXCEED_FACTOR x the ceiling, twice; the ok
    change dates the recovery from the first of them, with what it saw."""
    link = throttled_at(128)
    link.steady(12, 3000.0)
    changes, _, _clf = feed(link)
    assert states(changes) == ["ok", "throttled", "ok"]
    up = changes[-1]
    assert up.previous == "throttled" and up.onset_t == 49.0  # the first 3-s run holding a fast second
    assert set(up.evidence) == {"kbps", "above_ceiling_averages", "ceiling_kbps"}
    assert up.evidence["ceiling_kbps"] == 128 and up.evidence["above_ceiling_averages"] >= 2
    assert up.evidence["kbps"] > EXCEED_FACTOR * 128 and up.evidence["kbps"] == round(up.evidence["kbps"], 1)
    assert up.t == 52.0 + ENTER_HOLD["ok"]  # a candidate from the second such average (t 52), held 4 s


def test_the_same_cap_on_one_flow_stays_throttled_without_spending_a_check() -> None:
    """A load that thins to one flow at the same rate keeps the verdict (``same_cap``); it
    does not reopen the question nor spend data on a check."""
    link = throttled_at(384)
    link.steady(40, 384, flows=1)
    changes, _, clf = feed(link, lambda c: (None, 0, "none"))
    assert states(changes) == ["ok", "throttled"] and clf.state == "throttled"
    assert clf.probes_requested == 0


# --- the fast-link memory --------------------------------------------------------------

def test_a_link_seen_fast_stays_fast_after_the_first_five_minutes() -> None:
    """Slow-link patience (15 flat seconds) is for links never seen fast in the last 5
    minutes; a link fast until t=400 then capped is judged on 5 seconds, as at t=30."""
    link = Link()
    link.steady(400, 15_000.0)
    link.steady(20, 384)
    changes, _, _ = feed(link)
    assert states(changes)[-1] == "throttled"
    thr = changes[-1]
    assert "slow_link" not in thr.evidence and thr.evidence["busy_seconds"] == 5
    assert thr.t - 400 <= 10


# --- the active check --------------------------------------------------------------------

def one_flow(link: Link, seconds: int, rate: float = 128) -> None:
    """A single quiet flow, flat at ``rate``, no queue, no loss, LAN = WAN: only a check can tell."""
    link.steady(seconds, rate, flows=1)


def test_a_check_still_running_is_no_verdict_and_no_second_request() -> None:
    """While the check runs (no answer yet) the classifier neither raises throttled nor asks
    again; the answer, when it comes, counts for the request it answers."""
    link = fast_then(lambda lk: one_flow(lk, 20))
    changes, _, clf = feed(link, lambda c: None)
    assert states(changes) == ["ok"] and clf.probes_requested == 1
    request = clf.wants_probe
    assert request is not None and request.known_rate_kbps == 128 and request.ceiling_kbps == 128.0
    assert request.reason and request.t < link.t
    more = link.tail()
    one_flow(more, 5)
    clf.probe_result(PROBE_CONFIRM_FACTOR * 128.0, 40_000, "")  # exactly at the confirm bound
    changes, _, clf = feed(more, clf=clf)
    assert states(changes) == ["throttled"] and changes[0].evidence["agreement"] == ["active_check"]
    assert changes[0].evidence["probe"] == {"result": "confirmed", "probe_kbps": round(1.3 * 128.0, 1),
                                            "bytes": 40_000}
    assert clf.probe_bytes_used == 40_000 and clf.probes_requested == 1


def test_an_unavailable_check_is_retried_only_after_ten_minutes_and_suspects_meanwhile() -> None:
    """No endpoint: one request, then ``suspect`` about once a minute for as long as the
    flat single flow lasts (its answer stands 5 min, then "retry later"), never throttled,
    and a second request once PROBE_RETRY_SECONDS have passed; the bytes are counted."""
    link = fast_then(lambda lk: one_flow(lk, 700))
    requests: list[float] = []

    def answer(c: Classifier) -> tuple[float | None, int, str]:
        requests.append(c.wants_probe.t)  # type: ignore[union-attr]
        return None, 100, "no endpoint"

    changes, seen, clf = feed(link, answer)
    assert "throttled" not in states(changes)
    assert len(requests) == 2 and requests[1] - requests[0] == PROBE_RETRY_SECONDS
    assert clf.probes_requested == 2 and clf.probe_bytes_used == 200
    suspects = [o for o in seen if o.kind == "suspect"]
    gaps = [b.t - a.t for a, b in itertools.pairwise(suspects)]
    assert all(g >= SUSPECT_REPEAT_SECONDS for g in gaps) and min(gaps) == SUSPECT_REPEAT_SECONDS
    assert len(suspects) >= 700 // SUSPECT_REPEAT_SECONDS
    first, later = suspects[0], next(o for o in suspects if o.t - requests[0] > PROBE_VALID_SECONDS)
    assert first.t == requests[0] + 1 and first.rate_kbps == 128  # the next second reads the answer
    assert first.evidence["probe"] == {"result": "unavailable", "reason": "no endpoint"}
    assert later.evidence["probe"] == {"result": "unavailable", "reason": "retry later"}
    assert first.evidence["why"] and "mechanism" not in first.evidence
    assert first.evidence["known_rate_kbps"] == 128 and first.evidence["ceiling_kbps"] == 128.0


def test_a_refuting_check_late_in_the_day_makes_the_stream_ok_app_limited() -> None:
    """Past t = 600 (the answer's age is a difference, not a sum), a check that ran at
    20 Mbit/s refutes the cap for the next 5 minutes: the stream stays ok, no second
    check, no suspect; a stream that starts after that asks again."""
    link = Link()
    link.steady(600, 15_000.0)
    one_flow(link, 40, 384)
    changes, seen, clf = feed(link, lambda c: (20_000.0, 262_144, ""))
    assert states(changes) == ["ok"] and clf.probes_requested == 1 and seen == []
    assert clf.probe_bytes_used == 262_144


def test_an_unsolicited_answer_is_kept_without_raising() -> None:
    """``probe_result`` without a request (a check the health task ran on its own) is kept,
    dated at the latest sample, and counts no bytes by default."""
    clf = Classifier()
    clf.probe_result(None)
    assert clf.probe_bytes_used == 0 and clf.wants_probe is None


# --- shaper and policer edges ------------------------------------------------------------

def capped_with_rtts(rtts: Sequence[float | None], rate: float = 200, flows: int = 1) -> Link:
    """Fast at RTT 40 ms (the base), then a flat cap whose seconds carry ``rtts``."""
    return fast_then(lambda lk: lk.each([rate] * len(rtts), rtts, flows=flows))


def test_a_steady_queue_of_exactly_the_shaper_bound_is_a_shaper() -> None:
    """Queue (median RTT over base) of exactly SHAPER_QUEUE_MS and a spread of exactly half
    of it: both edges belong to the shaper, so a single flow is a cap with no check."""
    edge = [40 + SHAPER_QUEUE_MS + d for d in (-20, -20, 0, 20, 20)]  # median 120, IQR 40
    changes, _, clf = feed(capped_with_rtts(edge * 4), lambda c: (None, 0, "none"))
    assert states(changes)[-1] == "throttled", [c.to_json() for c in changes]
    assert changes[-1].mechanism == "shaper" and "shaper_queue" in changes[-1].evidence["agreement"]
    assert clf.probes_requested == 0


def test_a_wandering_queue_at_the_shaper_bound_is_neither_shaper_nor_policer() -> None:
    """Queue exactly SHAPER_QUEUE_MS but spread beyond half of it: a busy cell's queue, not
    a cap's signature; no verdict from the ceiling (three flows notwithstanding)."""
    wander = [40 + SHAPER_QUEUE_MS + d for d in (-50, -50, 0, 50, 50)]
    changes, _, _ = feed(capped_with_rtts(wander * 4, flows=3), lambda c: (None, 0, "none"))
    assert "throttled" not in states(changes)


def test_no_queue_on_one_steady_flow_is_not_a_shaper() -> None:
    """RTT at its base, perfectly steady: a policer's signature or an app's own rate; one
    flow with nothing else agreeing asks for a check."""
    changes, _, clf = feed(capped_with_rtts([40.0] * 20), lambda c: (None, 0, "none"))
    assert "throttled" not in states(changes) and clf.probes_requested == 1


def test_a_queue_that_fills_and_drains_names_a_shaper() -> None:
    """Three flows flat at 200 kbps; the ceiling's seconds queue little, but a quarter of the
    window's echoes queued >= 80 ms: a shaper under TCP before it settles, named so."""
    rtts = [300.0, 300.0, 300.0, 300.0, 300.0, 50.0, 50.0, 50.0, 50.0, 50.0]
    changes, _, _ = feed(capped_with_rtts(rtts + [50.0] * 3, flows=3))
    thr = [c for c in changes if c.state == "throttled"]
    assert thr and thr[0].mechanism == "shaper"


# --- the echo's budget -------------------------------------------------------------------

def test_the_echo_thins_on_a_fast_link_and_runs_every_second_otherwise() -> None:
    """Every second with nothing known, while a non-ok state stands, and on a link never
    seen faster than FAST_KBPS; one second in FAST_ECHO_EVERY on a fast link with users;
    never when nobody's flow is up."""
    clf = Classifier()
    assert clf.wants_traffic_probe
    link = Link()
    link.steady(40, 15_000.0)
    asked: list[bool] = []
    for s in link.samples:
        clf.feed(s)
        asked.append(clf.wants_traffic_probe)
    assert clf.state == "ok"
    assert asked[-FAST_ECHO_EVERY * 2:].count(True) == 2
    quiet = Link()
    quiet.steady(40, 15_000.0)
    quiet.steady(3, 0.0)
    _changes, _, clf = feed(quiet)
    assert not clf.wants_traffic_probe  # no flow: the bytes are the agent's own
    slow = Link()
    slow.steady(41, float(FAST_KBPS))  # exactly FAST_KBPS is not faster than it (41: not an echo second)
    _, _, clf = feed(slow)
    assert clf.state == "ok" and clf.wants_traffic_probe
    capped = throttled_at(384)
    _, _, clf = feed(capped)
    assert clf.state == "throttled" and clf.wants_traffic_probe


def test_a_fast_check_thins_the_echo_for_three_seconds() -> None:
    """An ok link at 700 kbps (never fast) is echoed every second; a check that ran faster
    than FAST_KBPS shows it is fast: for the next SMOOTH_SECONDS the echo runs one second
    in FAST_ECHO_EVERY only. A check at exactly FAST_KBPS is not faster than it."""
    for check, thinned in ((FAST_KBPS + 1, True), (float(FAST_KBPS), False)):
        link = Link()
        link.steady(27, 700)
        _, _, clf = feed(link)
        assert clf.state == "ok" and clf.wants_traffic_probe
        clf.probe_result(check, 0)
        after = link.tail()
        echo = []
        for _ in range(4):
            after.second(700)
            clf.feed(after.samples[-1])
            echo.append(clf.wants_traffic_probe)
        # 27 ticks before: the next three are the 28th-30th (the 30th is an echo second), then 31st
        assert echo == ([False, False, True, True] if thinned else [True] * 4), (check, echo)


# --- congestion: entered on both signs at full strength, kept on either at half ----------

def alternating(link: Link, seconds: int, low: float, high: float, rtt: float | None) -> None:
    """Busy seconds alternating ``low``/``high``: over a 10-s window, median (low+high)/2 and
    a spread of (high-low)/2, exactly; the queue is ``rtt`` minus the 40 ms base."""
    for i in range(seconds):
        link.second(low if i % 2 == 0 else high, rtt=rtt)


CONGESTED = {"median_kbps", "cv", "busy_seconds", "rtt_ms", "base_rtt_ms", "queue_ms", "rtt_spread_ms",
             "queue_q3_ms", "loss_pct", "radio"}
"""What a ``congested`` event's evidence names (docs/health.md)."""


def test_congestion_is_entered_at_exactly_both_bounds_and_names_its_evidence() -> None:
    """A rate wandering by exactly CONGEST_SPREAD (cv 0.25: 525/875 kbps around 700, which
    is no throttle rate) with a queue of exactly SHAPER_QUEUE_MS enters congestion."""
    link = fast_then(lambda lk: alternating(lk, 30, 525, 875, 40 + SHAPER_QUEUE_MS))
    changes, _, _ = feed(link)
    assert states(changes) == ["ok", "congested"]
    ev = changes[-1].evidence
    assert set(ev) == CONGESTED and ev["cv"] == 0.25 and ev["queue_ms"] == SHAPER_QUEUE_MS
    assert ev["median_kbps"] == 700.0 and ev["busy_seconds"] == 10
    assert changes[-1].onset_t == changes[-1].t - 9  # dated from the window's first busy second
    assert ev["radio"] == {"rsrp_dbm": -88.0, "rsrq_db": -9.0, "sinr_db": 15.0}


def test_congestion_needs_full_strength_signs_to_enter() -> None:
    """Both signs at half strength (cv 0.2, queue 60 ms) are a cell that is merely busy."""
    link = fast_then(lambda lk: alternating(lk, 30, 560, 840, 100))
    assert "congested" not in states(feed(link)[0])


def test_congestion_just_above_its_bounds_is_entered() -> None:
    """cv 0.3 and a 100 ms queue: both signs, a little over their bounds."""
    link = fast_then(lambda lk: alternating(lk, 30, 490, 910, 140))
    assert states(feed(link)[0]) == ["ok", "congested"]


def test_congestion_stays_on_either_sign_at_half_strength() -> None:
    """Once congested, a cell that calms to cv 0.2 without a queue, or to a 60 ms queue at a
    flat rate, is still congested (no flapping to ok); with neither sign it leaves."""
    for calmer in (lambda lk: alternating(lk, 30, 560, 840, 40.0),   # wanders at half strength
                   lambda lk: lk.steady(30, 700, rtt=100.0)):        # queues at half strength
        link = fast_then(lambda lk: alternating(lk, 30, 490, 910, 140))
        calmer(link)
        changes, _, clf = feed(link)
        assert states(changes) == ["ok", "congested"] and clf.state == "congested"
    link = fast_then(lambda lk: alternating(lk, 30, 490, 910, 140))
    link.steady(30, 700, rtt=40.0)
    assert states(feed(link)[0]) == ["ok", "congested", "ok"]


# --- what a verdict rests on -------------------------------------------------------------

DELAY = {"rtt_ms", "base_rtt_ms", "queue_ms", "rtt_spread_ms", "queue_q3_ms", "loss_pct"}
THROTTLED = {"ceiling_kbps", "known_rate_kbps", "plan_rate_kbps", "nominal_kbps", "flat_fraction", "cv", "drift", "busy_seconds",
             "flows", "mechanism", "radio", "agreement"} | DELAY
"""What a ``throttled`` event's evidence names (docs/health.md), before ``probe`` or ``slow_link``."""


def decimals(x: float) -> int:
    """Digits after the point in ``x``'s shortest repr (0.125 -> 3)."""
    text = repr(float(x))
    return 0 if text.endswith(".0") else len(text.split(".")[1])


def test_throttled_evidence_names_its_figures_rounded_for_the_event() -> None:
    """A policer at ~384 kbps under three flows, its rate moving by a few % a second: the
    event carries the ceiling (0.1 kbps), flatness (0.01), cv and drift (0.001), the
    busy seconds and flows it judged, the radio medians and the agreeing signs."""
    rates = [384 * f for f in (0.97, 1.013, 0.991, 1.022, 0.984, 1.007)] * 4
    changes, _, _ = feed(fast_then(lambda lk: lk.each(rates)))
    assert states(changes) == ["ok", "throttled"]
    ev = changes[-1].evidence
    assert set(ev) == THROTTLED
    assert ev["known_rate_kbps"] == 384 and ev["plan_rate_kbps"] is None and ev["nominal_kbps"] is None
    assert ev["agreement"] == ["flows"]
    assert ev["busy_seconds"] == 5 and ev["flows"] == 3 and ev["mechanism"] == "policer"
    assert ev["radio"] == {"rsrp_dbm": -88.0, "rsrq_db": -9.0, "sinr_db": 15.0}
    assert abs(ev["ceiling_kbps"] - 384) < 8
    assert 0.8 <= ev["flat_fraction"] <= 1.0 and decimals(ev["flat_fraction"]) <= 2
    assert 0 < ev["cv"] < 0.05 and decimals(ev["cv"]) == 3
    assert 0 < ev["drift"] < 0.08 and decimals(ev["drift"]) == 3
    assert changes[-1].rate_kbps == round(ev["ceiling_kbps"])


def test_a_cap_drifting_by_counter_quantisation_is_still_a_cap() -> None:
    """At 128 kbps one full frame is ~3 % of a 3-s average: averages 11 % apart by where
    second boundaries fall (107/149 kbps seconds in pairs) are within DRIFT_MAX plus two
    frames, so the cap is found; a drift beyond that (the ramp in test_classifier.py) is not."""
    changes, _, _ = feed(fast_then(lambda lk: lk.each([107, 107, 149, 149] * 6)))
    assert states(changes)[-1] == "throttled"
    assert 0.08 < changes[-1].evidence["drift"] < 0.145 and changes[-1].evidence["known_rate_kbps"] == 128


def test_a_cap_moving_to_another_rate_on_one_flow_reopens_the_question() -> None:
    """Throttled at 384, then one flow flat at 128: not the same cap, so the classifier asks
    for a check (keyed by 128) and only its confirmation moves the verdict to 128."""
    link = throttled_at(384)
    one_flow(link, 20, 128)
    keys: list[int | None] = []

    def confirm(c: Classifier) -> tuple[float, int, str]:
        keys.append(c.wants_probe.known_rate_kbps)  # type: ignore[union-attr]
        return 130.0, 1000, ""

    changes, _, clf = feed(link, confirm)
    assert keys == [128] and clf.state == "throttled" and clf.rate_kbps == 128
    assert states(changes) == ["ok", "throttled"]


def test_suspects_are_limited_per_rate_not_overall() -> None:
    """A flat single flow at 128 then at 384 within the minute: two suspects, one per rate."""
    link = fast_then(lambda lk: one_flow(lk, 12, 128))
    link.steady(5, 15_000.0)
    one_flow(link, 12, 384)
    _, seen, _ = feed(link, lambda c: (None, 0, "no endpoint"))
    assert [o.evidence["known_rate_kbps"] for o in seen if o.kind == "suspect"] == [128, 384]


def test_the_check_request_names_the_ceiling_to_a_tenth() -> None:
    link = fast_then(lambda lk: lk.steady(8, 128.32, flows=1))  # 16,040 B a second
    _, _, clf = feed(link, lambda c: None)
    assert clf.wants_probe is not None and clf.wants_probe.ceiling_kbps == 128.3


def test_a_refuted_cap_is_ok_app_limited_with_the_check_figures() -> None:
    """Back from idle on one flat flow: the check ran at 20 Mbit/s, so the state that comes
    is ok with ``why: app_limited`` and what the check measured and cost."""
    link = fast_then(lambda lk: lk.steady(12, 0.0))
    one_flow(link, 20, 384)
    changes, _, _ = feed(link, lambda c: (20_000.0, 262_144, ""))
    assert states(changes) == ["ok", "idle", "ok"]
    ev = changes[-1].evidence
    assert ev["why"] == "app_limited" and ev["probe"] == {"result": "refuted", "probe_kbps": 20_000.0,
                                                            "bytes": 262_144}
    assert changes[-1].onset_t is not None and changes[-1].onset_t <= changes[-1].t


def test_poor_radio_idle_and_no_service_evidence_names() -> None:
    """The other states' evidence, as docs/health.md lists it."""
    from tests.unit.test_classifier import OK, run

    weak = run([OK, {"seconds": 20, "kbps": 2000, "radio": (-118.0, -16.0, -2.0)}])[0][-1]
    assert weak.state == "poor_radio" and set(weak.evidence) == {"radio", "below"} | DELAY
    assert weak.evidence["below"] == ["rsrp", "rsrq", "sinr"]
    assert weak.evidence["radio"] == {"rsrp_dbm": -118.0, "rsrq_db": -16.0, "sinr_db": -2.0}
    quiet = run([OK, {"seconds": 20, "kbps": 2, "flows": 0}])[0][-1]
    assert quiet.state == "idle" and quiet.evidence == {"flows": 0, "idle_seconds": 10, "kbps": quiet.evidence["kbps"]}
    assert (quiet.t, quiet.onset_t) == (40.0, 31.0)  # the tenth quiet second, dated from the first
    assert 0 < quiet.evidence["kbps"] < 16 and decimals(quiet.evidence["kbps"]) == 1
    gone = run([OK, {"seconds": 10, "kbps": 0, "flows": 0, "registered": False, "radio": None}])[0][-1]
    assert gone.state == "no_service" and gone.evidence == {"cause": "not_registered"}
    assert gone.onset_t == 31.0  # the first unregistered sample


def test_ok_names_the_fastest_second_and_the_busy_seconds() -> None:
    """The first verdict on a fast link: ok, from the first busy second on, with the fastest
    second of the window (0.1 kbps) and how many busy seconds it judged."""
    link = Link()
    link.each([15_000.3, 14_000.0, 16_000.7, 15_000.0, 15_500.0, 15_000.0, 15_000.0, 15_000.0, 15_000.0])
    changes, _, _ = feed(link)
    assert states(changes) == ["ok"]
    assert changes[0].evidence == {"kbps": 16_000.7, "busy_seconds": 5} and changes[0].t == 5.0
    assert changes[0].previous is None and changes[0].onset_t == 1.0


def test_while_throttled_a_flat_rate_under_one_and_a_half_times_keeps_the_cap() -> None:
    """Throttled at 1000 kbps, then flat at 1200 (no known rate, but not 1.5x the ceiling):
    not clearly above the cap, so still throttled; at 1600 it lifts."""
    link = throttled_at(1000)
    link.steady(30, 1200)
    changes, _, clf = feed(link)
    assert states(changes) == ["ok", "throttled"] and 1000 <= clf.rate_kbps < 1100  # type: ignore[operator]
    link.steady(10, 1600)
    assert states(feed(link)[0]) == ["ok", "throttled", "ok"]


def test_back_from_idle_one_second_faster_than_any_cap_is_ok_and_the_cap_times_one_and_a_half_is_not() -> None:
    """Four busy seconds among think time after idle: too few to judge a ceiling, so ok
    needs one of them faster than EXCEED_FACTOR x the highest throttle rate (1,500 kbps);
    exactly that is what a policed 1000k's bucket can show, so it is no proof."""
    top = EXCEED_FACTOR * 1000
    for kbps, back in ((top, False), (top + 100, True)):
        link = fast_then(lambda lk: lk.steady(12, 0.0))
        for _ in range(4):
            link.second(kbps)
            link.second(0.0)
        changes = feed(link)[0]
        assert states(changes) == (["ok", "idle", "ok"] if back else ["ok", "idle"]), kbps
    link = fast_then(lambda lk: lk.steady(12, 0.0))
    link.steady(9, 700)  # five busy seconds at no throttle rate are enough to judge, then the hold
    assert states(feed(link)[0]) == ["ok", "idle", "ok"]


def test_a_sample_out_of_order_is_ignored_and_costs_no_time() -> None:
    """A sample at the same time as the last (a duplicate read) or earlier (a clock step) is
    dropped; the next is measured from the last good one, so silent probes are still no
    service at exactly the third silent second plus the hold."""
    from tests.unit.test_classifier_rules import Trace

    trace = Trace()
    trace.serving(30)
    for i in range(10):
        trace.second(answered=False)
        last = trace.samples[-1]
        if i == 0:
            trace.samples.append(last)  # the same reading twice
        if i == 5:
            trace.samples.append(Sample(last.t - 0.5, last.wan_rx_bytes, last.wan_tx_bytes,
                                        probes_sent=last.probes_sent, registered=True))
    changes, _ = trace.feed()
    assert states(changes) == ["ok", "no_service"]
    assert changes[-1].t == 30 + 3 + ENTER_HOLD["no_service"] and changes[-1].evidence["seconds_silent"] == 3


def test_silence_while_the_prober_skips_seconds_proves_nothing() -> None:
    """No service from silence needs a probe sent every second of it; a prober that skips
    every other second (paused for its budget) leaves the question open."""
    from tests.unit.test_classifier_rules import Trace

    trace = Trace()
    trace.serving(30)
    for i in range(20):
        trace.second(answered=False, probed=i % 2 == 0)
    assert "no_service" not in states(trace.feed()[0])


def test_a_trickle_of_bytes_without_echoes_is_service() -> None:
    """Silence means not a byte: 100 B a second (0.8 kbps, a keep-alive) still moves, so
    lost echoes alone are not no service."""
    from tests.unit.test_classifier_rules import Trace

    trace = Trace()
    trace.serving(30)
    for _ in range(20):
        trace.second(rx=100, answered=False)
    assert "no_service" not in states(trace.feed()[0])

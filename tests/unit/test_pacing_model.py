"""Pacing against a reference model of its rules (issue 29: property tests against an oracle).

The model below is the module doc of agent/cloud/pacing.py written out as plainly as
possible: it counts failures instead of keeping a back-off object, grows a ceiling by
doubling it once per failure, and finds a busy refusal's widened step by trying every
count in turn. Each rule answers an *interval*; the pacer must draw from exactly that
interval and uniformly (its random source here is scripted, so a delay is
``low + f * (high - low)`` for a known ``f``: a wrong bound, a draw pinned to one end or
a back-off that does not grow each give a different number).

Hypothesis drives both with the same random policies and event sequences, so every
path (boot, drop, resume, own pause, failure, busy and plain refusals, "retry after",
silence, no capacity, served, a new policy mid-way) is compared in many orders.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cloud import pacing
from agent.cloud.pacing import (
    BOUNDS,
    BUSY_REASONS,
    OWN_PAUSE_JITTER_S,
    RETRY_SPREAD,
    Pacer,
    PacingPolicy,
)

NOT_AUTHORIZED = 0x87
"""A CONNACK refusal that is not "busy": a plain failure."""


class Scripted(random.Random):
    """A real ``random.Random`` whose every draw is the next fraction of a script, so that
    ``uniform(a, b)`` is exactly ``a + f * (b - a)`` (CPython's definition)."""

    def __init__(self, fractions: list[float]):
        super().__init__(0)
        self.fractions = fractions
        self.used: list[float] = []

    def random(self) -> float:
        f = self.fractions[len(self.used) % len(self.fractions)]
        self.used.append(f)
        return f


@dataclass
class Model:
    """One device's pacing, from the rules in the module doc of agent/cloud/pacing.py."""

    policy: PacingPolicy
    failures: int = 0  # failures since the last success: the back-off's progress
    window: float = 0.0  # the spread the device is returning within
    booted: bool = True
    streak: int = 0  # unanswered or refused requests in a row
    floor: float = 0.0  # what the next request waits after a "no capacity"

    def __post_init__(self) -> None:
        self.window = self.policy.reconnect_window_s

    def ceiling(self, failures: int) -> float:
        """The back-off ceiling after ``failures`` failures: base, doubled each time, capped."""
        value = self.policy.backoff_base_s
        for _ in range(failures):
            value = min(self.policy.backoff_cap_s, value * 2)
        return min(self.policy.backoff_cap_s, value)

    def returning(self, window: float, high: float) -> tuple[float, float]:
        self.failures = 0
        self.window = window
        return (0.0, high)

    def after_boot(self) -> tuple[float, float]:
        self.booted = False
        return self.returning(self.policy.request_window_s, self.policy.request_window_s)

    def after_drop(self) -> tuple[float, float]:
        return self.returning(self.policy.reconnect_window_s, self.policy.reconnect_window_s)

    def after_resume(self) -> tuple[float, float]:
        return self.returning(self.policy.resume_window_s, self.policy.resume_window_s)

    def after_own_pause(self) -> tuple[float, float]:
        return self.returning(self.policy.backoff_base_s, OWN_PAUSE_JITTER_S)

    def after_failure(self) -> tuple[float, float]:
        """Full jitter over the back-off ceiling or half the return window, whichever is wider."""
        high = max(self.ceiling(self.failures), min(self.policy.backoff_cap_s, self.window / 2))
        self.failures += 1
        return (0.0, high)

    def after_refusal(self, reason: int) -> tuple[float, float]:
        """Busy: twice the ceiling (or half the window), capped, drawn from its upper half;
        the back-off continues from the first step at least that wide."""
        if reason not in BUSY_REASONS:
            return self.after_failure()
        target = min(self.policy.backoff_cap_s, max(2 * self.ceiling(self.failures), self.window / 2))
        self.failures = next(n for n in range(self.failures, self.failures + 64) if self.ceiling(n) >= target)
        return (target / 2, target)

    def before_request(self) -> tuple[float, float]:
        if self.booted:
            self.booted = False
            return (0.0, self.policy.request_window_s)
        floor, self.floor = self.floor, 0.0
        return (floor, floor)

    def retry_after(self, seconds: float) -> tuple[float, float]:
        """At least ``seconds`` (never below 0 nor above the cap), up to half again or the
        streak's doubling of the base, whichever is wider, capped."""
        cap = self.policy.backoff_cap_s
        low = min(max(seconds, 0.0), cap)
        self.streak += 1
        widened = self.policy.backoff_base_s * 2 ** self.streak
        return (low, max(low, min(cap, max(low * (1 + RETRY_SPREAD), widened))))

    def after_silence(self) -> tuple[float, float]:
        self.streak += 1
        return (0.0, min(self.policy.backoff_cap_s, self.policy.backoff_base_s * 2 ** self.streak))

    def no_capacity(self, draw: float) -> None:
        low, high = self.retry_after(self.policy.backoff_base_s)
        self.floor = low + draw * (high - low)

    def served(self) -> None:
        self.streak = 0
        self.floor = 0.0

    def set_policy(self, policy: PacingPolicy) -> None:
        """A new policy changes the knobs, not the progress nor the window being returned in."""
        self.policy = policy


def knob(name: str) -> st.SearchStrategy[float]:
    bound = BOUNDS[name]
    # Whole and half seconds: exact in binary, so the model and the pacer agree to the bit.
    return st.integers(int(bound.low * 2), int(bound.high * 2)).map(lambda n: n / 2)


@st.composite
def policies(draw: st.DrawFn) -> PacingPolicy:
    base = draw(knob("backoff_base_s"))
    cap = draw(knob("backoff_cap_s").filter(lambda c: c >= base))
    return pacing.check(PacingPolicy(
        version=draw(st.integers(0, 9)), reconnect_window_s=draw(knob("reconnect_window_s")),
        resume_window_s=draw(knob("resume_window_s")), request_window_s=draw(knob("request_window_s")),
        swap_window_s=draw(knob("swap_window_s")), backoff_base_s=base, backoff_cap_s=cap))


EVENTS = st.one_of(
    st.sampled_from(["after_boot", "after_drop", "after_resume", "after_own_pause", "before_request",
                     "after_silence", "no_capacity", "served"]).map(lambda e: (e, None)),
    st.tuples(st.just("after_failure"), st.none()),
    st.tuples(st.just("after_failure"), st.none()),  # failures in a row are what grows the back-off
    st.tuples(st.just("after_refusal"), st.sampled_from([*sorted(BUSY_REASONS), NOT_AUTHORIZED])),
    st.tuples(st.just("retry_after"), st.integers(-5, 4000).map(float)),
    st.tuples(st.just("set_policy"), policies()),
)
FRACTIONS = st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.999]), min_size=1, max_size=5)


def replay(pacer: Pacer, model: Model, rng: Scripted, events: list[tuple[str, object]]) -> Iterator[str]:
    """Apply each event to both; yield a description of every disagreement."""
    for step, (event, arg) in enumerate(events):
        if event == "set_policy":
            assert isinstance(arg, PacingPolicy)
            pacer.set_policy(arg)
            model.set_policy(arg)
            continue
        if event in ("served", "no_capacity"):
            before = len(rng.used)
            getattr(pacer, event)()
            if event == "served":
                model.served()
            else:
                model.no_capacity(rng.used[before] if len(rng.used) > before else 0.0)
            continue
        before = len(rng.used)
        got = getattr(pacer, event)(arg) if arg is not None else getattr(pacer, event)()
        low, high = getattr(model, event)(arg) if arg is not None else getattr(model, event)()
        drawn = rng.used[before:]
        want = low + drawn[0] * (high - low) if drawn else low
        if len(drawn) > 1 or got != pytest.approx(want, rel=1e-12, abs=1e-12):
            yield f"step {step} {event}({arg!r}): got {got}, want {want} from [{low}, {high}] (draws {drawn})"


@settings(max_examples=400, deadline=None)
@given(policy=policies(), events=st.lists(EVENTS, max_size=40), fractions=FRACTIONS,
       booted=st.booleans())
def test_every_delay_is_a_uniform_draw_from_the_interval_the_rules_give(
        policy: PacingPolicy, events: list[tuple[str, object]], fractions: list[float], booted: bool) -> None:
    rng = Scripted(fractions)
    pacer = Pacer(policy, rng, booted=booted)
    model = Model(policy, booted=booted)
    assert list(replay(pacer, model, rng, events)) == []


@settings(max_examples=200, deadline=None)
@given(policy=policies(), failures=st.integers(1, 30))
def test_failures_in_a_row_never_shrink_the_ceiling_and_reach_the_cap(policy: PacingPolicy, failures: int) -> None:
    """Read at the top of each draw, the ceilings after an own pause (no window term) are
    base, 2 base, 4 base ... capped: each at least the last, doubling until the cap."""
    pacer = Pacer(policy, Scripted([1.0]))
    pacer.after_own_pause()
    tops = [pacer.after_failure() for _ in range(failures)]
    for before, after in itertools.pairwise(tops):
        assert after == min(policy.backoff_cap_s, 2 * before)
    assert tops[0] == policy.backoff_base_s
    enough = next(n for n in range(64) if policy.backoff_base_s * 2 ** n >= policy.backoff_cap_s)
    if failures > enough:
        assert tops[-1] == policy.backoff_cap_s


def test_a_fresh_pacer_returns_within_the_reconnect_window() -> None:
    """Before any connection event, a failure spreads over half the reconnect window (the
    device may be one of a fleet that lost the broker together), not a plain back-off."""
    policy = PacingPolicy(reconnect_window_s=300.0, backoff_base_s=1.0, backoff_cap_s=600.0)
    assert Pacer(policy, Scripted([1.0])).after_failure() == 150.0
    assert Pacer(policy, Scripted([1.0])).backoff.first_delay() == 300.0  # its back-off knows the window too


def test_a_new_policy_moves_the_backoffs_knobs_and_keeps_its_progress() -> None:
    policy = PacingPolicy(reconnect_window_s=10.0, backoff_base_s=1.0, backoff_cap_s=600.0)
    pacer = Pacer(policy, Scripted([1.0]))
    pacer.after_own_pause()
    assert [pacer.after_failure() for _ in range(3)] == [1.0, 2.0, 4.0]
    pacer.set_policy(PacingPolicy(reconnect_window_s=40.0, backoff_base_s=2.0, backoff_cap_s=12.0))
    assert [pacer.after_failure() for _ in range(2)] == [12.0, 12.0]  # 2 x 2^3 = 16, capped at the new 12
    assert pacer.backoff.first_delay() == 12.0  # min(the new reconnect window 40, the new cap)
    pacer.set_policy(PacingPolicy(reconnect_window_s=5.0, backoff_base_s=1.0, backoff_cap_s=600.0))
    assert pacer.backoff.first_delay() == 5.0


@pytest.mark.parametrize("event", ["after_boot", "after_drop", "after_resume", "after_own_pause"])
def test_a_connection_event_starts_the_backoff_again(event: str) -> None:
    policy = PacingPolicy(reconnect_window_s=2.0, resume_window_s=2.0, request_window_s=2.0,
                          backoff_base_s=1.0, backoff_cap_s=600.0)
    pacer = Pacer(policy, Scripted([1.0]))
    for _ in range(5):
        pacer.after_failure()
    getattr(pacer, event)()
    assert pacer.after_failure() == 1.0


def test_after_boot_the_first_request_rides_on_the_connections_spread() -> None:
    policy = PacingPolicy(request_window_s=300.0)
    pacer = Pacer(policy, Scripted([1.0]))
    assert pacer.after_boot() == 300.0
    assert pacer.before_request() == 0.0  # no second spread
    assert pacer.after_failure() == 150.0  # a failure now spreads over half the request window


def test_a_long_running_device_asks_at_once() -> None:
    assert Pacer(PacingPolicy(request_window_s=300.0), Scripted([1.0]), booted=False).before_request() == 0.0


def test_a_busy_refusal_draws_from_the_upper_half_of_the_widened_ceiling() -> None:
    policy = PacingPolicy(reconnect_window_s=10.0, backoff_base_s=1.0, backoff_cap_s=100.0)
    low, high = Pacer(policy, Scripted([0.0])), Pacer(policy, Scripted([1.0]))
    for p in (low, high):
        p.after_own_pause()  # window = base: only the doubling widens
    assert (low.after_refusal(pacing.SERVER_BUSY), high.after_refusal(pacing.SERVER_BUSY)) == (1.0, 2.0)
    assert (low.after_refusal(pacing.SERVER_BUSY), high.after_refusal(pacing.SERVER_BUSY)) == (2.0, 4.0)
    assert high.after_failure() == 4.0  # a plain failure continues from the widened ceiling
    assert (low.after_refusal(NOT_AUTHORIZED), high.after_refusal(NOT_AUTHORIZED)) == (0.0, 8.0)


def test_retry_after_with_the_draw_at_each_end() -> None:
    policy = PacingPolicy(backoff_base_s=1.0, backoff_cap_s=60.0)
    low, high = Pacer(policy, Scripted([0.0])), Pacer(policy, Scripted([1.0]))
    assert (low.retry_after(10.0), high.retry_after(10.0)) == (10.0, 15.0)  # [T, 1.5 T]: streak 1 gives 2
    for p in (low, high):
        for _ in range(4):
            p.retry_after(10.0)
    assert (low.retry_after(10.0), high.retry_after(10.0)) == (10.0, 60.0)  # 2^6 = 64 > 1.5 T, capped
    assert (low.retry_after(-3.0), high.retry_after(-3.0)) == (0.0, 60.0)  # "retry in the past": now, widened
    low.served()
    high.served()
    assert (low.retry_after(1.0), high.retry_after(1.0)) == (1.0, 2.0)


def test_silence_doubles_per_request_in_a_row_and_is_served_away() -> None:
    pacer = Pacer(PacingPolicy(backoff_base_s=1.5, backoff_cap_s=20.0), Scripted([1.0]))
    assert [pacer.after_silence() for _ in range(5)] == [3.0, 6.0, 12.0, 20.0, 20.0]
    pacer.served()
    assert pacer.after_silence() == 3.0


def test_no_capacity_delays_only_the_next_request() -> None:
    pacer = Pacer(PacingPolicy(backoff_base_s=2.0, backoff_cap_s=60.0), Scripted([1.0]), booted=False)
    pacer.no_capacity()
    assert pacer.before_request() == 4.0  # base 2 as "retry after": [2, max(3, 2 x 2)]
    assert pacer.before_request() == 0.0
    pacer.no_capacity()
    pacer.served()
    assert pacer.before_request() == 0.0

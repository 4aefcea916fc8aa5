"""The swap decision as the swap loop reads it (issue 29): agent/core/swap_control.py swaps
only when ``decision.swap and decision.reason``, and sends the reason upstream (the swap
request and the ``swap`` event, docs/protocol.md), so every trigger is checked for all
three of swap, reason and urgency, at each boundary from both sides; the damping windows
and the back-off are compared with a brute-force count over random histories; a cloud
policy with other modules' keys in any order is compared with applying its known keys."""

from __future__ import annotations

import random
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cloud import protocol as proto
from agent.core import policy as pol
from agent.errors import ProtocolError
from tests.unit.test_policy import P, decide

NOW = 10_000.0
"""``decide`` in test_policy.py evaluates at this monotonic time."""

UPSTREAM_REASONS = ("throttled", "no_service", "command", "allowance", "auth_failed", "boot", "technician")
"""The ``swap`` event's reason codes (docs/protocol.md, events): the platform counts swaps by them."""

LOW = P.swap_below_bytes - 1
"""One byte under the allowance threshold."""


@pytest.mark.parametrize("inputs, reason, urgent, fact", [
    ({"on_seed": True}, "boot", True, "bootstrap"),
    ({"health": "throttled"}, "throttled", True, "throttle"),
    ({"order": pol.Order("cmd-42", due=NOW - 1)}, "command", True, "cmd-42"),
    ({"health": "no_service", "health_for_s": 200.0}, "no_service", True, "200 s"),
    ({"remaining_bytes": LOW, "traffic_kbps": 3.0}, "allowance", False, f"{LOW} bytes left"),
    ({"remaining_bytes": LOW, "traffic_kbps": 5000.0, "low_since": NOW - 700}, "allowance", False, "700 s"),
])
def test_each_trigger_swaps_with_its_upstream_reason_and_says_why(
        inputs: dict[str, Any], reason: str, urgent: bool, fact: str) -> None:
    """A trigger that swaps carries the reason the swap loop requires and the platform
    counts; a cap, an outage, a command or the seed SIM cannot wait for a lull (urgent), a
    low allowance can; the log line names the fact behind it."""
    d = decide(**inputs)
    assert (d.swap, d.reason, d.urgent) == (True, reason, urgent)
    assert reason in UPSTREAM_REASONS
    assert fact in d.why


def test_a_low_allowance_waiting_for_a_lull_is_not_a_swap_and_says_so() -> None:
    d = decide(remaining_bytes=LOW, traffic_kbps=5000.0, low_since=NOW - 10)
    assert (d.swap, d.reason, d.urgent) == (False, "allowance", False)
    assert "lull" in d.why


def test_a_held_back_trigger_is_no_swap_but_names_what_it_held_back() -> None:
    """Back-off and damping turn a swap into a wait: ``swap`` is False (not None) and the
    reason says which trigger waits, the why how long or which limit."""
    backoff = decide(health="throttled", blocked=NOW + 30)
    assert (backoff.swap, backoff.reason) == (False, "throttled") and backoff.swap is False
    assert "for 30 s more" in backoff.why
    hour = tuple(NOW - 60 * i for i in range(P.max_per_hour))
    damped = decide(history=hour, health="no_service", health_for_s=P.no_service_swap_s)
    assert (damped.swap, damped.reason) == (False, "no_service") and damped.swap is False


def test_the_back_off_ends_at_its_instant_and_there_is_none_by_default() -> None:
    """``blocked_until`` is the first moment a swap may start again; without one nothing
    is blocked, even a second after boot (the monotonic clock starts near zero)."""
    assert decide(health="throttled", blocked=NOW).swap
    assert not decide(health="throttled", blocked=NOW + 0.5).swap
    early = pol.decide(P, pol.Inputs(now=0.5, health="throttled"), ())
    assert (early.swap, early.reason) == (True, "throttled")


def test_a_command_is_due_at_its_moment_not_a_second_later() -> None:
    at = decide(order=pol.Order("c1", due=NOW))
    assert (at.swap, at.reason) == (True, "command")
    assert not decide(order=pol.Order("c1", due=NOW + 0.5)).swap


def test_the_allowance_threshold_and_the_lull_are_boundaries_from_both_sides() -> None:
    """"Less than ``swap_below_bytes`` left" is strict: exactly that much is no trigger at
    all; traffic exactly at ``lull_kbps`` is a lull."""
    assert decide(remaining_bytes=P.swap_below_bytes, traffic_kbps=0.0) == pol.NO
    lull = decide(remaining_bytes=LOW, traffic_kbps=P.lull_kbps, low_since=NOW)
    assert (lull.swap, lull.reason) == (True, "allowance")
    busy = decide(remaining_bytes=LOW, traffic_kbps=P.lull_kbps + 0.1, low_since=NOW)
    assert (busy.swap, busy.reason) == (False, "allowance")


def test_without_a_low_since_the_lull_wait_has_not_begun() -> None:
    """``low_since`` None (the supervisor had not yet seen the allowance low): the wait
    counts from zero, so a busy user is not interrupted at once unless the policy says not
    to wait at all."""
    patient = replace(P, lull_wait_s=0.5)
    d = pol.decide(patient, pol.Inputs(now=NOW, remaining_bytes=LOW, traffic_kbps=5000.0), ())
    assert (d.swap, d.reason) == (False, "allowance")
    eager = replace(P, lull_wait_s=0.0)
    d = pol.decide(eager, pol.Inputs(now=NOW, remaining_bytes=LOW, traffic_kbps=5000.0), ())
    assert (d.swap, d.reason) == (True, "allowance")


# --- damping and back-off against a brute-force count ---------------------------------

def allowed_by_count(history: list[float], now: float, max_hour: int, max_day: int) -> bool:
    """The rule written out the slow way: the swaps strictly inside the last hour and the
    last day, counted one by one."""
    in_hour = in_day = 0
    for t in history:
        age = now - t
        if 0 <= age < pol.HOUR:
            in_hour += 1
        if 0 <= age < pol.DAY:
            in_day += 1
    return in_hour < max_hour and in_day < max_day


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 100_000), max_size=60), st.integers(1, 30), st.integers(1, 200),
       st.integers(0, 200_000), st.sampled_from(["throttled", "command"]))
def test_damping_matches_a_count_of_the_swaps_in_each_window(
        ages: list[int], max_hour: int, max_day: int, blocked_for: int, trigger: str) -> None:
    """Whole seconds, so the window edges (exactly an hour, exactly a day ago) come up
    often. The back-off holds a throttled swap until it ends; a command is the platform
    asking and is never held by it; both obey the hourly and daily limits."""
    now = 200_000.0
    history = [now - a for a in ages]
    policy = replace(P, max_per_hour=max_hour, max_per_day=max_day)
    inputs = pol.Inputs(now=now, health="throttled") if trigger == "throttled" else \
        pol.Inputs(now=now, order=pol.Order("c", due=now))
    blocked_until = now + blocked_for - 100_000  # past, now, or ahead
    d = pol.decide(policy, inputs, history, blocked_until)
    held = trigger == "throttled" and now < blocked_until
    assert d.swap is (not held and allowed_by_count(history, now, max_hour, max_day))
    assert d.reason == trigger
    assert pol.decide(policy, replace(inputs, on_seed=True), history, 0.0).swap  # the seed SIM never waits


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 86_400.0), st.integers(0, 2**32 - 1))
def test_a_command_window_is_spread_from_its_first_instant_to_its_last(window: float, seed: int) -> None:
    """Each device picks one moment in [now, now + window]; over a fleet the moments reach
    both ends (the first tenth and the last tenth of the window), so none is lost and no
    fraction of a window is skipped, however short."""
    rng = random.Random(seed)
    dues = [pol.schedule_order("c", 50.0, window, rng).due for _ in range(200)]
    assert all(50.0 <= d <= 50.0 + window for d in dues)
    assert min(dues) < 50.0 + window / 10 and max(dues) > 50.0 + window * 0.9


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_back_off_after_a_failure_may_be_short_or_the_whole_ceiling(failures: int, seed: int) -> None:
    """Full jitter: uniform from zero (one device may retry at once, so the fleet does not
    retry in step) to the ceiling."""
    rng = random.Random(seed)
    ceiling = min(P.backoff_cap_s, P.backoff_base_s * 2 ** (failures - 1))
    # 2000 draws: with 300, one seed in ~430 had none below a fiftieth of the ceiling
    # (0.98^300), and hypothesis finds such a seed in one run of ten (seed 1710)
    delays = [pol.backoff_delay(failures, P, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert min(delays) < ceiling / 50 and max(delays) > ceiling * 0.9


# --- the cloud's policy ----------------------------------------------------------------

INT_FIELDS = {f.name for f in fields(pol.SwapPolicy) if f.type in ("int", int)}


def known_value(name: str) -> st.SearchStrategy[Any]:
    """A value the bounds accept for ``name`` (ints for counts, ints or floats otherwise)."""
    if name == "version":
        return st.integers(0, 10_000)
    lo, hi = pol.BOUNDS[name]
    if name in INT_FIELDS:
        return st.integers(int(lo), int(hi))
    return st.one_of(st.integers(int(lo), int(hi)), st.floats(lo, hi))


KNOWN = [f.name for f in fields(pol.SwapPolicy)]
OTHER_KEYS = st.sampled_from(["report_interval_s", "pacing", "future_knob", "usage", "zz"])
OTHER_VALUES = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.integers(), st.dictionaries(
    st.sampled_from(KNOWN), st.integers(), max_size=2))


@st.composite
def cloud_bodies(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """(the body's items in the order they arrive, the known keys' values)."""
    chosen = draw(st.lists(st.sampled_from(KNOWN), unique=True))
    known = {name: draw(known_value(name)) for name in chosen}
    others = draw(st.dictionaries(OTHER_KEYS, OTHER_VALUES, max_size=4))
    items = list(known.items()) + list(others.items())
    return draw(st.permutations(items)), known


@settings(max_examples=150, deadline=None)
@given(cloud_bodies(), st.sampled_from([P, replace(P, max_per_hour=2, lull_kbps=5.0, backoff_cap_s=7200.0)]))
def test_a_cloud_policy_applies_every_known_key_wherever_other_keys_sit(
        body: tuple[list[tuple[str, Any]], dict[str, Any]], base: pol.SwapPolicy) -> None:
    """The result is the base with the known keys replaced (counts as int, the rest as
    float), whatever other modules' keys come before, between or after them; refused whole
    only when the back-off cap ends up below its base."""
    items, known = body
    typed: dict[str, Any] = {k: int(v) if k in INT_FIELDS else float(v) for k, v in known.items()}
    expected = replace(base, **typed)
    if expected.backoff_cap_s < expected.backoff_base_s:
        with pytest.raises(ProtocolError) as err:
            pol.policy_from_dict(dict(items), base)
        assert err.value.reason == "schema"
        return
    got = pol.policy_from_dict(dict(items), base)
    assert got == expected
    assert all(type(getattr(got, k)) is (int if k in INT_FIELDS else float) for k in KNOWN)


def test_a_back_off_cap_equal_to_its_base_is_a_fixed_interval_and_allowed() -> None:
    p = pol.policy_from_dict({"backoff_base_s": 60, "backoff_cap_s": 60})
    assert (p.backoff_base_s, p.backoff_cap_s) == (60.0, 60.0)


@pytest.mark.parametrize("body, names", [
    ({"max_per_hour": "six"}, "max_per_hour"),
    ({"lull_kbps": None}, "lull_kbps"),
    ({"max_per_day": 12.5}, "max_per_day"),
    ({"attach_timeout_s": 301}, "attach_timeout_s"),
    ({"backoff_base_s": 600, "backoff_cap_s": 60}, "backoff_cap_s"),
])
def test_a_refused_policy_is_a_schema_error_naming_the_field_upstream(body: dict[str, Any], names: str) -> None:
    """The typed error's reason is ``schema``, and the text the platform receives as the
    error event's detail (validate_policy, agent/cloud/inbox.py) names the field at fault."""
    with pytest.raises(ProtocolError) as err:
        pol.policy_from_dict(body)
    assert err.value.reason == "schema" and names in str(err.value)
    with pytest.raises(ProtocolError) as upstream:
        proto.validate_policy({"version": 1, **body})
    assert upstream.value.reason == "schema" and names in str(upstream.value)


def test_a_command_that_failed_waits_out_its_own_back_off() -> None:
    """A command is not held by another trigger's back-off (the platform is asking), but a
    command that itself failed waits like any swap: a standing command the cloud could not
    serve was asked again every second, each request on the SIM's bytes."""
    inputs = pol.Inputs(now=NOW, order=pol.Order("cmd-7", due=NOW - 1))
    blocked_until = NOW + 30
    assert pol.decide(P, inputs, [], blocked_until, blocked_by="throttled").swap
    assert pol.decide(P, inputs, [], blocked_until).swap
    held = pol.decide(P, inputs, [], blocked_until, blocked_by="command")
    assert (held.swap, held.reason) == (False, "command") and "back-off" in held.why
    assert pol.decide(P, replace(inputs, now=blocked_until), [], blocked_until, blocked_by="command").swap

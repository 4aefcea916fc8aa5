"""Escaping a dead carrier (issue 23): the pure rules of agent/core/escape.py and the
policy's ``escape`` trigger (agent/core/policy.py)."""

from __future__ import annotations

import pytest

from agent.core import escape as esc
from agent.core import policy as pol
from agent.errors import ProtocolError

POLICY = pol.SwapPolicy(escape_after_s=60.0, escape_retry_cap_s=300.0, escape_budget_bytes=50_000)


@pytest.mark.parametrize(("cause", "down"), [
    ("not_registered", True), ("not_registered: searching", True), ("blackhole", True), ("no_data", True),
    ("registration_rejected: EMM cause #3", False), ("no_signal", False), (None, False), (7, False)])
def test_causes_that_blame_the_carrier(cause: object, down: bool) -> None:
    assert esc.carrier_down(cause) is down


def test_retry_delay_grows_from_the_bound_and_stops_at_the_cap() -> None:
    assert [esc.retry_delay(n, POLICY) for n in (1, 2, 3, 4, 5)] == [60.0, 120.0, 240.0, 300.0, 300.0]


def test_a_seed_on_the_failing_carrier_is_skipped_once_then_tried() -> None:
    assert not esc.seed_can_help("44010", "44010", failures=0)
    assert esc.seed_can_help("44010", "44010", failures=1)
    assert esc.seed_can_help("44010", "44020", failures=0)
    assert esc.seed_can_help(None, "44020", failures=0) and esc.seed_can_help("44010", None, failures=0)


def test_an_assignment_on_the_failing_carrier_is_wrong() -> None:
    assert esc.wrong_carrier("44020", ["44020"])
    assert not esc.wrong_carrier("44010", ["44020"])
    assert not esc.wrong_carrier("", ["44020"])  # a profile without a PLMN cannot be checked
    assert not esc.wrong_carrier("44020", [])


def test_the_budget_counts_a_day_of_escapes_and_then_forgets() -> None:
    budget = esc.EscapeBudget()
    budget.record(0.0, 30_000)
    assert not budget.exhausted(10.0, POLICY)
    budget.record(100.0, 20_000)
    assert budget.used(100.0) == 50_000 and budget.exhausted(100.0, POLICY)
    assert budget.used(pol.DAY + 1.0) == 20_000 and not budget.exhausted(pol.DAY + 1.0, POLICY)


def test_escape_state_retries_later_each_time_and_forgets_when_done() -> None:
    state = esc.EscapeState()
    assert not state.active and state.avoid == []
    state.begin("44020", {"cause": "blackhole"})
    assert state.active and state.avoid == ["44020"] and state.due(0.0)
    assert state.could_not(1000.0, POLICY) == 60.0 and not state.due(1059.0) and state.due(1060.0)
    assert state.could_not(1060.0, POLICY) == 120.0
    state.begin("44020", {"cause": "blackhole"})  # the same carrier: the delays go on growing
    assert state.failures == 2
    state.begin("44030", {})  # another carrier failing: a fresh start
    assert state.failures == 0 and state.due(0.0)
    state.done()
    assert not state.active and state.evidence == {}


def inputs(**kw: object) -> pol.Inputs:
    base = {"now": 1000.0, "health": "no_service", "carrier_down": True}
    return pol.Inputs(**{**base, **kw})  # type: ignore[arg-type]


def test_policy_escapes_once_the_bound_is_reached_and_not_before() -> None:
    assert pol.decide(POLICY, inputs(health_for_s=59.9), []) == pol.NO
    escape = pol.decide(POLICY, inputs(health_for_s=60.0), [])
    assert escape.swap and escape.reason == "escape" and escape.urgent


def test_no_swap_over_a_dead_carrier_link_while_the_escape_waits() -> None:
    """Past ``no_service_swap_s`` but the carrier is the cause: only the escape can leave."""
    policy = pol.SwapPolicy(escape_after_s=600.0, no_service_swap_s=180.0)
    assert pol.decide(policy, inputs(health_for_s=200.0), []) == pol.NO
    plain = pol.decide(policy, inputs(health_for_s=200.0, carrier_down=False), [])
    assert plain.reason == "no_service"


def test_on_the_seed_sim_it_is_the_boot_swap_not_another_escape() -> None:
    assert pol.decide(POLICY, inputs(health_for_s=600.0, on_seed=True), []).reason == "boot"


def test_escapes_count_against_the_hourly_limit() -> None:
    history = [900.0 + i for i in range(POLICY.max_per_hour)]
    held = pol.decide(POLICY, inputs(health_for_s=600.0), history)
    assert not held.swap and "last hour" in held.why


@pytest.mark.parametrize(("key", "value"), [("escape_after_s", 5), ("escape_after_s", 100_000),
                                            ("escape_retry_cap_s", 10), ("escape_budget_bytes", 2.5)])
def test_escape_fields_out_of_bounds_are_refused(key: str, value: float) -> None:
    with pytest.raises(ProtocolError):
        pol.policy_from_dict({key: value})


def test_escape_fields_the_platform_sets() -> None:
    policy = pol.policy_from_dict({"escape_after_s": 30, "escape_budget_bytes": 200_000})
    assert policy.escape_after_s == 30.0 and policy.escape_budget_bytes == 200_000
    assert pol.SwapPolicy().escape_after_s == 120.0

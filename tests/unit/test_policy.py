"""The swap policy (agent/core/policy.py): triggers, damping, back-off and bounds."""

from __future__ import annotations

import random

import pytest

from agent.core import policy as pol
from agent.errors import ProtocolError

P = pol.SwapPolicy()


def decide(history: tuple[float, ...] = (), blocked: float = 0.0, **kw: object) -> pol.Decision:
    return pol.decide(P, pol.Inputs(now=10_000.0, **kw), history, blocked)  # type: ignore[arg-type]


def test_throttled_swaps_now_and_urgently() -> None:
    d = decide(health="throttled")
    assert (d.swap, d.reason, d.urgent) == (True, "throttled", True)


@pytest.mark.parametrize("state", ["poor_radio", "congested", "idle", "ok", "suspect"])
def test_never_a_swap_for_radio_cell_or_user(state: str) -> None:
    assert not decide(health=state, health_for_s=10_000).swap


def test_no_service_swaps_only_beyond_the_bound() -> None:
    assert not decide(health="no_service", health_for_s=P.no_service_swap_s - 1).swap
    assert decide(health="no_service", health_for_s=P.no_service_swap_s).reason == "no_service"


def test_command_waits_for_its_moment() -> None:
    order = pol.Order("c1", due=10_005.0)
    assert not decide(order=order).swap
    assert decide(order=pol.Order("c1", due=9_999.0)).reason == "command"


def test_command_window_spreads_devices_uniformly() -> None:
    rng = random.Random(7)
    dues = [pol.schedule_order("c", 0.0, 3600.0, rng).due for _ in range(2000)]
    assert 0 <= min(dues) and max(dues) <= 3600
    per_quarter = [sum(1 for d in dues if q * 900 <= d < (q + 1) * 900) for q in range(4)]
    assert all(400 < n < 600 for n in per_quarter), per_quarter  # no burst at the window's start
    assert pol.schedule_order("c", 5.0, None, rng).due == 5.0


def test_low_allowance_waits_for_a_lull_then_gives_up_waiting() -> None:
    low = P.swap_below_bytes - 1
    busy = decide(remaining_bytes=low, traffic_kbps=5000, low_since=10_000.0 - 10)
    assert not busy.swap and busy.reason == "allowance"
    assert decide(remaining_bytes=low, traffic_kbps=10, low_since=10_000.0).swap
    late = decide(remaining_bytes=low, traffic_kbps=5000, low_since=10_000.0 - P.lull_wait_s)
    assert late.swap and late.reason == "allowance"
    assert not decide(remaining_bytes=P.swap_below_bytes + 1, traffic_kbps=0).swap


def test_damping_per_hour_and_day() -> None:
    hour = tuple(10_000.0 - 60 * i for i in range(P.max_per_hour))
    d = decide(history=hour, health="throttled")
    assert not d.swap and "last hour" in d.why
    day = tuple(10_000.0 - 3601 - 1000 * i for i in range(P.max_per_day))
    assert "last day" in decide(history=day, health="throttled").why
    assert decide(history=hour[1:], health="throttled").swap


def test_seed_sim_is_never_damped() -> None:
    hour = tuple(10_000.0 - 60 * i for i in range(P.max_per_hour))
    assert decide(history=hour, on_seed=True).swap


def test_platform_backoff_blocks_until_it_expires() -> None:
    d = decide(blocked=10_030.0, health="throttled")
    assert not d.swap and "back-off" in d.why
    assert decide(blocked=9_999.0, health="throttled").swap
    assert decide(blocked=10_030.0, order=pol.Order("c1", due=0.0)).swap  # the platform asked


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    for failures in range(1, 20):
        ceiling = min(P.backoff_cap_s, P.backoff_base_s * 2 ** (failures - 1))
        delays = [pol.backoff_delay(failures, P, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > ceiling / 2  # spread over the range, not pinned


def test_policy_from_cloud_is_bounded_and_keeps_other_keys_for_others() -> None:
    p = pol.policy_from_dict({"version": 3, "max_per_hour": 20, "report_interval_s": 300})
    assert (p.version, p.max_per_hour, p.max_per_day) == (3, 20, P.max_per_day)
    for bad in ({"max_per_hour": 0}, {"max_per_hour": 10_000}, {"backoff_base_s": 0},
                {"backoff_base_s": 600, "backoff_cap_s": 60}, {"lull_wait_s": "soon"}, {"max_per_day": True}):
        with pytest.raises(ProtocolError):
            pol.policy_from_dict(bad)


def test_policy_round_trips() -> None:
    p = pol.policy_from_dict({"max_per_hour": 9, "lull_kbps": 12.5})
    assert pol.policy_from_dict(pol.policy_to_dict(p)) == p

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


# --- issue 29: the decisions themselves, at their boundaries ------------------------------


def test_no_service_past_the_bound_swaps_urgently_and_one_second_short_does_not() -> None:
    """The swap decision itself, not only its reason: a SIM the network does not serve is
    swapped (urgently) once no service held for ``no_service_swap_s``."""
    at = decide(health="no_service", health_for_s=P.no_service_swap_s)
    assert (at.swap, at.reason, at.urgent) == (True, "no_service", True)
    short = decide(health="no_service", health_for_s=P.no_service_swap_s - 1)
    assert (short.swap, short.reason) == (False, None)


def spaced(count: int, gap: float, first_ago: float) -> tuple[float, ...]:
    """``count`` swaps, ``gap`` apart, the latest ``first_ago`` seconds before now (10,000)."""
    return tuple(10_000.0 - first_ago - gap * i for i in range(count))


def test_the_daily_limit_allows_one_fewer_and_counts_each_swap_once() -> None:
    """``max_per_day - 1`` swaps in the last day (none in the last hour) leave room for
    one more; ``max_per_day`` do not. A count that doubled each swap, or a wider window,
    would block the first case."""
    below = spaced(P.max_per_day - 1, 3601.0, 3601.0)  # 23 swaps over 23 hours
    assert max(below) < 10_000.0 - pol.HOUR and min(below) > 10_000.0 - pol.DAY
    assert decide(history=below, health="throttled").swap
    at = decide(history=(*below, 10_000.0 - pol.DAY + 1), health="throttled")
    assert not at.swap and at.why == f"{P.max_per_day} swaps in the last day (limit {P.max_per_day})"


def test_the_day_and_the_hour_are_windows_of_exactly_that_length() -> None:
    """A swap exactly a day (an hour) ago has left the window; one a second later has not."""
    below_day = spaced(P.max_per_day - 1, 3601.0, 3601.0)
    assert decide(history=(*below_day, 10_000.0 - pol.DAY), health="throttled").swap
    assert not decide(history=(*below_day, 10_000.0 - pol.DAY + 1), health="throttled").swap
    below_hour = spaced(P.max_per_hour - 1, 60.0, 60.0)
    assert decide(history=(*below_hour, 10_000.0 - pol.HOUR), health="throttled").swap
    blocked = decide(history=(*below_hour, 10_000.0 - pol.HOUR + 1), health="throttled")
    assert not blocked.swap and blocked.why == f"{P.max_per_hour} swaps in the last hour (limit {P.max_per_hour})"


def test_an_unknown_key_before_known_ones_drops_none_of_them() -> None:
    """The cloud's policy carries other modules' keys (reporting, pacing) in any order; a
    known key after an unknown one is applied like any other."""
    p = pol.policy_from_dict({"report_interval_s": 300, "pacing": {"backoff_cap_s": 60}, "max_per_hour": 20,
                              "future_knob": True, "lull_kbps": 12.5, "max_per_day": 50})
    assert (p.max_per_hour, p.lull_kbps, p.max_per_day) == (20, 12.5, 50)

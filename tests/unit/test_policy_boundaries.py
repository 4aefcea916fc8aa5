"""The swap decisions at their boundaries (issue 29): the decision itself (``.swap``, not
only ``.reason``), one below and at each limit, the exact length of the damping windows,
and a cloud policy's known keys whatever comes before them."""

from __future__ import annotations

from agent.core import policy as pol
from tests.unit.test_policy import P, decide


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

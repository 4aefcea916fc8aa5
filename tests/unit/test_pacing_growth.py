"""The reconnect back-off grows after each failure (issue 29, pacing.py:265: a back-off that
never grows passed, hidden by the ``window / 2`` term when the window is wide). Every delay
is drawn from [0, ceiling]; with the draw pinned to the top of its range the ceilings are
read exactly and compared with the rule written out: base x 2^n capped, or half the window
the device is returning within if that is wider."""

from __future__ import annotations

import random

import pytest
from pytest_mock import MockerFixture

from agent.cloud.pacing import Pacer, PacingPolicy


def ceilings(pacer: Pacer, failures: int) -> list[float]:
    return [pacer.after_failure() for _ in range(failures)]


def rule(policy: PacingPolicy, window: float, n: int) -> float:
    """The ceiling of the (n+1)th failure in a row (n = 0 first), as the docstring states it."""
    return max(min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** n), min(policy.backoff_cap_s, window / 2))


@pytest.mark.parametrize("start,window", [("own pause", 1.0), ("drop", 400.0), ("resume", 10.0)])
def test_each_failure_in_a_row_doubles_the_ceiling_up_to_the_cap(mocker: MockerFixture, start: str,
                                                                  window: float) -> None:
    policy = PacingPolicy(reconnect_window_s=400.0, resume_window_s=10.0, backoff_base_s=1.0, backoff_cap_s=600.0)
    top = mocker.create_autospec(random.Random, instance=True)
    top.uniform.side_effect = lambda low, high: high  # every delay at the top of its range
    pacer = Pacer(policy, top)
    {"own pause": pacer.after_own_pause, "drop": pacer.after_drop, "resume": pacer.after_resume}[start]()
    got = ceilings(pacer, 14)
    assert got == [rule(policy, window, n) for n in range(14)]
    assert got[-1] == policy.backoff_cap_s and got[0] < got[-1]  # it grew, and stopped at the cap


def test_success_starts_the_growth_again(mocker: MockerFixture) -> None:
    policy = PacingPolicy(backoff_base_s=2.0, backoff_cap_s=60.0)
    top = mocker.create_autospec(random.Random, instance=True)
    top.uniform.side_effect = lambda low, high: high
    pacer = Pacer(policy, top)
    pacer.after_own_pause()
    assert ceilings(pacer, 4) == [2.0, 4.0, 8.0, 16.0]
    pacer.after_own_pause()  # connected, then paused again for a swap
    assert ceilings(pacer, 2) == [2.0, 4.0]

"""Rollout waves and the abort rule (board/virtual/cloud/rollout.py) and the fleet scenario
"update 100,000 routers" (board/fleet/update.py), at a size a unit test can afford."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from board.fleet.update import BROKER_MSGS_PER_S, simulate
from board.virtual.cloud.rollout import FAILURE, SUCCESS, Rollout, RolloutPlan, offer_time, wave_of


def test_waves_take_their_shares_and_are_stable_per_rollout():
    plan = RolloutPlan()
    waves = Counter(wave_of("r1", f"rtr-{i:06d}", plan) for i in range(20_000))
    shares = [waves[0], waves[0] + waves[1], waves[0] + waves[1] + waves[2]]
    assert [round(s / 20_000, 2) for s in shares] == [0.01, 0.10, 0.50]
    assert wave_of("r1", "rtr-000042", plan) == wave_of("r1", "rtr-000042", plan)
    canaries_1 = {i for i in range(20_000) if wave_of("r1", f"rtr-{i:06d}", plan) == 0}
    canaries_2 = {i for i in range(20_000) if wave_of("r2", f"rtr-{i:06d}", plan) == 0}
    assert len(canaries_1 & canaries_2) < len(canaries_1) / 10  # not always the same canaries


def test_offers_are_spread_over_the_whole_window():
    plan = RolloutPlan(window_s=600)
    rng = random.Random(3)
    times = [offer_time(1000.0, plan, rng) for _ in range(5000)]
    assert 1000 <= min(times) < 1010 and 1590 < max(times) <= 1600


def test_the_abort_rule_stops_the_rollout_and_waits_for_enough_outcomes():
    rollout = Rollout("r1", RolloutPlan(abort_min_outcomes=20, abort_failure_rate=0.05), started=0.0)
    for _ in range(19):
        rollout.record(0, FAILURE, 10.0)
    assert rollout.aborted_at is None and rollout.may_offer(0, 10.0)  # 19 outcomes: too few to judge
    rollout.record(0, SUCCESS, 11.0)
    assert rollout.aborted_at == 11.0 and not rollout.may_offer(0, 12.0)


def test_a_good_wave_opens_the_next_one_only_after_its_window():
    rollout = Rollout("r1", RolloutPlan(window_s=100), started=0.0)
    for _ in range(50):
        rollout.record(0, SUCCESS, 50.0)
    assert rollout.may_offer(0, 50.0) and not rollout.may_offer(1, 99.0) and rollout.may_offer(1, 100.0)


@pytest.mark.parametrize("waves", [(), (0.5, 0.1, 1.0), (0.1, 0.9)])
def test_plans_whose_waves_do_not_rise_to_the_whole_fleet_are_refused(waves):
    with pytest.raises(ValueError):
        RolloutPlan(waves=waves)


def test_a_bad_release_is_stopped_in_the_canary():
    out = simulate(20_000, bad=True)
    assert out.aborted_at_s is not None and out.offered < 0.01 * 20_000 and out.committed == 0


def test_a_good_release_reaches_99_percent_within_its_waves_under_the_broker_limit():
    out = simulate(20_000, bad=False)
    assert out.committed == 20_000 and out.aborted_at_s is None
    assert out.t99_s is not None and out.t99_s <= 4 * RolloutPlan().window_s + 3600
    assert out.peak_msgs_per_s < BROKER_MSGS_PER_S

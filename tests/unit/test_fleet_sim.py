"""The fleet simulator on a 2,000-device fleet: paced devices never overrun the platform, the
2020 behaviour does, and no throttled SIM is handed out again.

The platform is scaled to a tenth of the 100,000-device model (25 connections/s, 20
assignments/s), so a 2,000-device fleet meets it with the same kind of windows the big
one gets; every run is seeded and takes well under a second.
"""

from __future__ import annotations

import pytest

from agent.cloud import pacing
from board.fleet import scenarios
from board.fleet.__main__ import main as fleet_main
from board.fleet.sim import Load, Resource

N, SCALE = 2000, 0.1
SMALL = {"restart": {"down_s": 2.0}}
"""The broker restart is 10 s at 100,000 devices (a 422 s window); with this fleet's 85 s
window the same share of the window is 2 s."""


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_paced_fleet_never_overruns_the_platform_and_everyone_is_served(name: str) -> None:
    for seed in (1, 2, 3):
        o = scenarios.SCENARIOS[name](N, True, seed=seed, scale=SCALE, **SMALL.get(name, {}))
        assert o.within_capacity(), f"{name} seed {seed}: offered above what the platform answers"
        assert o.busy_s(o.conn) == 0 and o.busy_s(o.assign) == 0
        assert max(o.conn.admitted) <= o.conn.resource.admit_per_s
        assert o.unserved == 0
        assert o.reassigned_throttled == 0
        # At 25 connections a second the per-second noise is a fifth of the rate, so more
        # devices are refused and come back half a window later than at 250/s (the bench's
        # 100,000 devices meet the 10 % goal). Bound here: what capacity allows plus one
        # widened retry.
        bound = o.ideal + o.policy.reconnect_window_s / 2
        assert o.t99 is not None and o.t99 <= bound, f"{name}: 99 % after {o.t99:.0f} s, bound {bound:.0f} s"


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_the_2020_behaviour_overruns_the_same_platform(name: str) -> None:
    o = scenarios.SCENARIOS[name](N, False, scale=SCALE, **SMALL.get(name, {}))
    assert not o.within_capacity()
    assert o.busy_s(o.conn) + o.busy_s(o.assign) > 60
    paced = scenarios.SCENARIOS[name](N, True, scale=SCALE, **SMALL.get(name, {}))
    assert o.t99 is None or o.t99 > paced.t99  # and it serves everyone later, or never


def test_a_platform_that_forgets_throttled_sims_hands_them_out_again() -> None:
    """The simulator can see the 2020 failure at all: an unpaced fleet on a platform that
    tracks nothing but admits everything (no bulk meltdown) gets capped SIMs back."""
    fleet = scenarios._fleet(N, False, pacing.PacingPolicy(), seed=1,
                             assignments=Resource("assignments", 10_000, 10_000), tracks_throttled=False)
    fleet.after_connect = lambda dev, t: None
    fleet.free_sims = list(range(N, N + 300))
    fleet.affected = list(range(300))
    for dev in fleet.affected:
        fleet._capped(dev, 0.0)
        fleet.ask(dev, 1.0)
    fleet.run()
    assert fleet.reassigned_throttled > 0
    assert fleet.unserved() > 0


def test_an_overrun_keeps_the_resource_busy_and_it_answers_nothing() -> None:
    load = Load(Resource("x", admit_per_s=2, answer_per_s=3, busy_s=10.0), horizon=100)
    assert [load.offer(0.1) for _ in range(3)] == ["ok", "ok", "refused"]
    assert load.offer(0.2) == "busy"  # the fourth in one second overruns it
    assert load.offer(5.0) == "busy" and load.offer(10.3) == "ok"
    assert load.busy_seconds() == pytest.approx(10.0)


def test_sizing_follows_the_fleet_and_stays_inside_the_bounds() -> None:
    small = scenarios.size_policy(2_000, 600)
    big = scenarios.size_policy(100_000, 30_000)
    huge = scenarios.size_policy(10_000_000, 3_000_000)
    assert small.reconnect_window_s < big.reconnect_window_s <= huge.reconnect_window_s
    assert big.reconnect_window_s == pytest.approx(100_000 / (0.95 * 250), abs=1)
    for p in (small, big, huge):
        assert pacing.check(p) is p


def test_cli_prints_a_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet_main(["--devices", "500", "--scale", "0.05", "--scenario", "outage", "--variant", "paced"]) == 0
    out = capsys.readouterr().out
    assert "regional outage 30 min, paced: 500 devices" in out and "99 % served again after" in out

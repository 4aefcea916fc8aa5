"""The swap policy on the exact rule (issue 22, step 3): it predicts when each rule
throttles at the current rate and swaps in a lull before it, with today's damping; a
used-up calendar rule that resets within minutes is not worth a swap.

SwapControl is fed the real allowance (agent/plans/tracker.py) of a SIM whose ledger holds
the usage under test; the decision is the real policy's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agent.clock import FakeClock
from agent.core import policy as pol
from agent.core.status import StatusFile
from agent.core.swap_control import SwapControl
from agent.plans.tracker import Allowance
from board.virtual.cloud.plans import GB, MB, plan

JST = timezone(timedelta(hours=9))
ICCID = "8981100000001000019"


def sim(name: str) -> dict[str, Any]:
    return {"slot": 1, "iccid": ICCID, "imsi": "440100000100001", "seed": False, "assignment_id": "a-1",
            "plan": plan(name)}


def decide(tmp_path: Path, name: str, used: int, kbps: float, at: datetime,
           health: dict[str, Any] | None = None) -> pol.Decision:
    clock = FakeClock(epoch=at.timestamp())
    facts = sim(name)
    allowance = Allowance(tmp_path, clock)
    allowance.on_sim(facts)
    allowance.ledger.add(ICCID, at.date().isoformat(), clock.wall() - 120, clock.wall() - 60, used, 0)
    ctl = SwapControl(lambda: clock, tmp_path, StatusFile(None), current=lambda: facts, used_on_current=lambda: 0,
                      traffic_kbps=lambda: kbps, rules=lambda: allowance.status(facts))
    if health is not None:
        ctl.on_health(health)
    return pol.decide(ctl.policy, ctl._inputs(), [])


NOON = datetime(2026, 1, 14, 12, 0, tzinfo=JST)


def test_the_72_hour_cap_a_few_seconds_away_at_this_rate_swaps_without_a_lull(tmp_path: Path) -> None:
    decision = decide(tmp_path, "100MB-3days", 98 * MB, kbps=5000, at=NOON)
    assert decision.swap and decision.reason == "allowance" and "72h" in decision.why


def test_a_low_rule_swaps_at_the_lull(tmp_path: Path) -> None:
    decision = decide(tmp_path, "100MB-3days", 95 * MB, kbps=10, at=NOON)
    assert decision.swap and "lull" in decision.why


def test_far_from_every_cap_there_is_no_swap(tmp_path: Path) -> None:
    assert not decide(tmp_path, "100MB-3days", 50 * MB, kbps=100, at=NOON).swap
    assert not decide(tmp_path / "b", "5GB-month", 100 * MB, kbps=100, at=NOON).swap


def test_the_rule_nearest_in_time_is_the_one_watched(tmp_path: Path) -> None:
    """5 GB / month with 797 MB in the last 72 h: the 800 MB rule is the near one."""
    decision = decide(tmp_path, "5GB-month", 797 * MB, kbps=8000, at=NOON)
    assert decision.swap and "72h" in decision.why


def test_a_fast_user_on_a_fresh_sim_does_not_swap_until_the_cap_is_seconds_away(tmp_path: Path) -> None:
    """Measured in the lab: at 17 Mbit/s a fresh 100 MB SIM is 44 s from its cap; a swap
    then only wastes the SIM. It swaps once the cap is within the margin."""
    assert not decide(tmp_path, "100MB-3days", 3 * MB, kbps=17_000, at=NOON).swap
    assert not decide(tmp_path / "b", "100MB-3days", 60 * MB, kbps=17_000, at=NOON).swap
    late = decide(tmp_path / "c", "100MB-3days", 93 * MB, kbps=17_000, at=NOON)
    assert late.swap and "s away" in late.why


def test_a_busy_user_with_a_low_rule_waits_for_a_lull_while_the_cap_is_minutes_away(tmp_path: Path) -> None:
    # 8 MB left at 200 kbit/s: 320 s; below the rule's 10 MB mark, beyond the margin.
    decision = decide(tmp_path, "100MB-3days", 92 * MB, kbps=200, at=NOON)
    assert not decision.swap and decision.reason == "allowance"


def test_a_flat_rate_sim_never_swaps_for_allowance(tmp_path: Path) -> None:
    assert not decide(tmp_path, "200kbps", 50 * GB, kbps=10, at=NOON).swap


def test_a_day_pass_used_up_late_in_the_day_is_not_worth_a_swap(tmp_path: Path) -> None:
    throttled = {"state": "throttled", "kbps": 384, "rule": "day", "age_s": 0.0}
    late = datetime(2026, 1, 14, 23, 50, tzinfo=JST)
    decision = decide(tmp_path, "daypass-3GB", 3 * GB + 1, kbps=10, at=late, health=throttled)
    assert not decision.swap and "resets" in decision.why
    morning = datetime(2026, 1, 14, 9, 0, tzinfo=JST)
    assert decide(tmp_path / "b", "daypass-3GB", 3 * GB + 1, kbps=10, at=morning, health=throttled).swap


def test_a_month_rule_that_resets_before_the_cap_is_reached_is_no_reason_to_swap(tmp_path: Path) -> None:
    last_minutes = datetime(2026, 1, 31, 23, 58, tzinfo=JST)
    assert not decide(tmp_path, "monthly-100GB", 100 * GB - 40 * MB, kbps=10, at=last_minutes).swap
    assert decide(tmp_path / "b", "monthly-100GB", 100 * GB - 40 * MB, kbps=10,
                  at=datetime(2026, 1, 20, 12, tzinfo=JST)).swap

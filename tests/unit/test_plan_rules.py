"""Plans as the contracts write them (issue 22): every row of domain.md's table reads,
round-trips through the sealed profile's plan, and bad plans are refused whole with the
field named."""

from __future__ import annotations

from typing import Any

import pytest

from agent.cloud.profilecheck import ProfileFieldError, check_plan
from agent.errors import PlanError
from agent.plans.rules import LEGACY_RULE_ID, parse_plan
from agent.sim import Plan
from board.virtual.cloud.plans import GB, MB, PLANS, plan


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_plan_of_the_table_round_trips(name: str) -> None:
    parsed = parse_plan(plan(name))
    assert parse_plan(parsed.to_dict()) == parsed
    wire = Plan.from_dict(plan(name)).to_dict()
    assert parse_plan(wire) == parsed


def test_the_tables_numbers() -> None:
    five = parse_plan(plan("5GB-month"))
    assert [(r.id, r.window, r.hours, r.cap_bytes) for r in five.rules] == [
        ("month", "month", None, 5 * GB), ("72h", "rolling", 72, 800 * MB)]
    assert [r.until for r in five.rules] == ["window_end", "below_cap"]
    day = parse_plan(plan("daypass-3GB")).rules[0]
    assert (day.window, day.cap_bytes, day.throttle_kbps, day.until) == ("day", 3 * GB, 384, "window_end")
    flat = parse_plan(plan("200kbps"))
    assert flat.rules == () and flat.nominal_kbps == 200 and flat.throttle_rates() == []
    tiered = parse_plan(plan("tiered"))
    assert [r.cap_bytes for r in tiered.rules] == [GB, 5 * GB, 20 * GB, 40 * GB]
    assert not any(r.throttles for r in tiered.rules)
    assert parse_plan(plan("monthly-100GB")).throttle_rates() == [128]


def test_an_old_single_rule_plan_still_reads() -> None:
    old = parse_plan({"name": "5GB-month", "cap_bytes": 5 * GB, "window": "month", "throttle_kbps": 128,
                      "remaining_bytes": 10, "tz": "+09:00"})
    assert [(r.id, r.window, r.cap_bytes, r.throttle_kbps) for r in old.rules] == [(LEGACY_RULE_ID, "month", 5 * GB, 128)]
    assert old.remaining == {LEGACY_RULE_ID: 10}
    rolling = parse_plan({"cap_bytes": 100 * MB, "window": "rolling72h", "throttle_kbps": 128})
    assert (rolling.rules[0].window, rolling.rules[0].hours) == ("rolling", 72)


def test_an_old_flat_rate_plans_rate_is_its_nominal_not_a_throttle() -> None:
    """The bug of issue 22: the 200 kbps plan's rate was taken for a throttle rate."""
    old = parse_plan({"name": "200kbps", "cap_bytes": None, "window": "none", "throttle_kbps": 200})
    assert old.nominal_kbps == 200 and old.throttle_rates() == []


def _with(body: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    rules = [dict(r) for r in body["rules"]]
    rules[index].update(changes)
    return {**body, "rules": rules}


BAD = [
    (_with(plan("5GB-month"), 0, window="week"), "plan.rules[0].window"),
    (_with(plan("5GB-month"), 1, cap_bytes=-1), "plan.rules[1].cap_bytes"),
    (_with(plan("5GB-month"), 1, hours=None), "plan.rules[1].hours"),
    (_with(plan("5GB-month"), 1, window="month", hours=None), "plan.rules[1]"),
    (_with(plan("5GB-month"), 1, id="month"), "plan.rules[1].id"),
    (_with(plan("5GB-month"), 0, window="none"), "plan.rules[0].window"),
    (_with(plan("5GB-month"), 0, until="below_cap"), "plan.rules[0].until"),
    (_with(plan("daypass-3GB"), 0, cap_bytes=None), "plan.rules[0].cap_bytes"),
    (_with(plan("tiered"), 0, throttle_kbps=128), "plan.rules[0].throttle_kbps"),
    (_with({**plan("daypass-3GB"), "nominal_kbps": 384}, 0), "plan.rules[0].throttle_kbps"),
    ({**plan("5GB-month"), "cap_bytes": 1}, "plan.cap_bytes"),
    ({**plan("5GB-month"), "remaining": {"day": 1}}, "plan.remaining"),
    ({**plan("5GB-month"), "remaining": {"month": -1}}, "plan.remaining.month"),
    ({**plan("5GB-month"), "rules": [plan("5GB-month")["rules"][0]] * 9}, "plan.rules"),
    ({"window": "fortnight"}, "plan.window"),
    ({"cap_bytes": 10, "window": "none"}, "plan.window"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f for _, f in BAD])
def test_a_bad_plan_is_refused_whole_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(body)
    assert caught.value.field == field
    with pytest.raises(ProfileFieldError) as sealed:
        check_plan(body)
    assert sealed.value.field == field and sealed.value.reason == "profile_field"

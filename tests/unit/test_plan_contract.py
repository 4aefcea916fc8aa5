"""A plan read as its contract says, each bound one step either side, and each refusal as the
cloud sees it (issue 22; issue 29's mutation run on agent/plans/rules.py).

A refused plan update reaches the platform as an ``error`` event whose ``detail`` is the
refusal's text (agent/core/supervisor.py ``_plan_update``), and a refused profile names the
field (agent/cloud/profilecheck.py): both are what an operator reads to fix a contract, so
each refusal's field and text are asserted exactly. A plan that is accepted is asserted as
the rules it reads to (window, cap, directions counted, action, rate), not only as "no error".
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import PlanError
from agent.plans.rules import (
    LEGACY_RULE_ID,
    MAX_KBPS,
    MAX_PLAN_BYTES,
    MAX_ROLLING_HOURS,
    MAX_RULES,
    Rule,
    parse_plan,
    plan_of,
)
from board.virtual.cloud.plans import GB, MB, plan


def month(**changes: Any) -> dict[str, Any]:
    return {"id": "month", "window": "month", "cap_bytes": 5 * GB, **changes}


def rolling(**changes: Any) -> dict[str, Any]:
    return {"id": "72h", "window": "rolling", "hours": 72, "cap_bytes": 800 * MB, **changes}


def with_rules(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "contract", "rules": list(rules), **top}


def refusal(body: Any) -> tuple[str, str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(body)
    assert caught.value.reason == "plan"
    return caught.value.field, str(caught.value)


def steps(n: int) -> list[dict[str, Any]]:
    """``n`` price steps at 1, 2, ... GB: distinct caps, so no two overlap."""
    return [{"id": f"step-{i}", "window": "month", "cap_bytes": i * GB, "action": "price_step"} for i in range(1, n + 1)]


R0 = "plan.rules[0]"
WHOLE_KBPS = f"is not a whole number from 1 to {MAX_KBPS}"
REFUSALS: list[tuple[str, Any, str, str]] = [
    # the plan as a whole
    ("not an object", ["month"], "plan", "is not an object"),
    ("unknown field", {"name": "x", "colour": "red", "size": 1}, "plan.<unknown>",
     "is not a field of the contract (2 unknown)"),
    ("empty name", {"name": ""}, "plan.name", "is not 1-64 printable ASCII characters"),
    ("65-character name", {"name": "n" * 65}, "plan.name", "is not 1-64 printable ASCII characters"),
    ("non-ASCII name", {"name": "プラン"}, "plan.name", "is not 1-64 printable ASCII characters"),
    ("numeric name", {"name": 5}, "plan.name", "is not 1-64 printable ASCII characters"),
    ("tz without a sign", {"tz": "09:00"}, "plan.tz", "is not a UTC offset like +09:00"),
    ("tz beyond +14", {"tz": "+15:00"}, "plan.tz", "is not a UTC offset like +09:00"),
    ("tz with other digits", {"tz": "+0\u0663:00"}, "plan.tz", "is not a UTC offset like +09:00"),
    ("numeric tz", {"tz": 9}, "plan.tz", "is not a UTC offset like +09:00"),
    ("nominal 0", {"nominal_kbps": 0}, "plan.nominal_kbps", WHOLE_KBPS),
    ("nominal above 10 Gbit/s", {"nominal_kbps": MAX_KBPS + 1}, "plan.nominal_kbps", WHOLE_KBPS),
    ("nominal as text", {"nominal_kbps": "200"}, "plan.nominal_kbps", WHOLE_KBPS),
    ("nominal as a boolean", {"nominal_kbps": True}, "plan.nominal_kbps", WHOLE_KBPS),
    ("as_of before 1970", {"as_of": -1}, "plan.as_of", "is not a non-negative number of UNIX seconds"),
    ("as_of as a boolean", {"as_of": True}, "plan.as_of", "is not a non-negative number of UNIX seconds"),
    ("as_of as text", {"as_of": "now"}, "plan.as_of", "is not a non-negative number of UNIX seconds"),
    ("old window beside rules", {**plan("5GB-month"), "window": "month"}, "plan.window",
     "contradicts plan.rules (old single-rule fields beside rules)"),
    ("old cap and rate beside rules", {**plan("5GB-month"), "throttle_kbps": 128, "cap_bytes": 1}, "plan.cap_bytes",
     "contradicts plan.rules (old single-rule fields beside rules)"),
    ("remaining_bytes beside rules", {**plan("5GB-month"), "remaining_bytes": 1}, "plan.remaining_bytes",
     "is the old single-rule field: use plan.remaining"),
    # the rules list
    ("rules not a list", with_rules() | {"rules": {"month": month()}}, "plan.rules", "is not a list"),
    ("nine rules", with_rules(*steps(MAX_RULES + 1)), "plan.rules", f"has more than {MAX_RULES} rules"),
    ("repeated id", with_rules(month(), rolling(id="month")), "plan.rules[1].id", "repeats another rule's id"),
    ("two throttles on one window", with_rules(rolling(), month(), month(id="again", cap_bytes=GB)),
     "plan.rules[2]", "overlaps rules[1] (same window and directions)"),
    ("two price steps at one cap", with_rules(*steps(2), {**steps(2)[1], "id": "again"}),
     "plan.rules[2]", "overlaps rules[1] (same window and directions)"),
    # one rule
    ("rule not an object", with_rules("month"), R0, "is not an object"),
    ("unknown rule field", with_rules(month(colour="red")), f"{R0}.<unknown>",
     "is not a field of the contract (1 unknown)"),
    ("capital id", with_rules(month(id="Month")), f"{R0}.id", "is not 1-32 lowercase letters, digits, '-' or '_'"),
    ("numeric id", with_rules(month(id=5)), f"{R0}.id", "is not 1-32 lowercase letters, digits, '-' or '_'"),
    ("33-character id", with_rules(month(id="m" * 33)), f"{R0}.id", "is not 1-32 lowercase letters, digits, '-' or '_'"),
    ("unknown window", with_rules(month(window="week")), f"{R0}.window",
     "is not one of ['month', 'day', 'rolling', 'none']"),
    ("0 hours", with_rules(rolling(hours=0)), f"{R0}.hours", f"is not a whole number from 1 to {MAX_ROLLING_HOURS}"),
    ("745 hours", with_rules(rolling(hours=MAX_ROLLING_HOURS + 1)), f"{R0}.hours",
     f"is not a whole number from 1 to {MAX_ROLLING_HOURS}"),
    ("rolling without hours", with_rules(rolling(hours=None)), f"{R0}.hours",
     "is required by a rolling window and only by one"),
    ("month with hours", with_rules(month(hours=24)), f"{R0}.hours", "is required by a rolling window and only by one"),
    ("cap missing", with_rules({"id": "month", "window": "month"}), f"{R0}.cap_bytes", "is missing (null: no cap)"),
    ("negative cap", with_rules(month(cap_bytes=-1)), f"{R0}.cap_bytes",
     f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
    ("cap above 1 PB", with_rules(month(cap_bytes=MAX_PLAN_BYTES + 1)), f"{R0}.cap_bytes",
     f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
    ("unknown count", with_rules(month(count="up")), f"{R0}.count", "is not one of ['both', 'rx', 'tx']"),
    ("unknown action", with_rules(month(action="bill")), f"{R0}.action", "is not one of ['throttle', 'price_step']"),
    ("throttle 0 kbps", with_rules(month(throttle_kbps=0)), f"{R0}.throttle_kbps", WHOLE_KBPS),
    ("a cap that never resets", with_rules(month(window="none")), f"{R0}.window",
     "is 'none' with a cap: a cap that never resets"),
    ("a day window with no cap", with_rules(month(window="day", cap_bytes=None)), f"{R0}.cap_bytes",
     "is null in a 'day' window: a window with nothing to count to"),
    ("a price step that slows", with_rules(month(action="price_step", throttle_kbps=128)), f"{R0}.throttle_kbps",
     "is set on a price step (a price step does not slow the SIM)"),
    ("a throttle at the nominal rate", with_rules(month(throttle_kbps=200), nominal_kbps=200), f"{R0}.throttle_kbps",
     "is not below the plan's nominal rate (a throttle that speeds up)"),
    ("a month that lifts below the cap", with_rules(month(until="below_cap")), f"{R0}.until",
     "contradicts a 'month' window (it lifts at window_end)"),
    ("a rolling window that lifts at its end", with_rules(rolling(until="window_end")), f"{R0}.until",
     "contradicts a 'rolling' window (it lifts at below_cap)"),
    # the cloud's remaining bytes
    ("remaining not an object", {**plan("5GB-month"), "remaining": [1]}, "plan.remaining",
     "is not an object of rule id -> bytes"),
    ("remaining of an unknown rule", {**plan("5GB-month"), "remaining": {"day": 1}}, "plan.remaining",
     "names a rule the plan does not cap"),
    ("remaining of an uncapped rule", with_rules({"id": "flat", "window": "none", "cap_bytes": None},
                                                 remaining={"flat": 1}), "plan.remaining",
     "names a rule the plan does not cap"),
    ("remaining as a boolean", {**plan("5GB-month"), "remaining": {"month": True}}, "plan.remaining.month",
     f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
    ("remaining above 1 PB", {**plan("5GB-month"), "remaining": {"72h": MAX_PLAN_BYTES + 1}}, "plan.remaining.72h",
     f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
    ("old plan's remaining of another rule", {"cap_bytes": GB, "remaining": {"month": 1}}, "plan.remaining",
     "names a rule the plan does not cap"),
    # the old single-rule form
    ("old unknown window", {"cap_bytes": GB, "window": "week"}, "plan.window",
     "is not one of ['month', 'day', 'rolling72h', 'none']"),
    ("old negative cap", {"cap_bytes": -1}, "plan.cap_bytes", f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
    ("old throttle 0 kbps", {"cap_bytes": GB, "throttle_kbps": 0}, "plan.throttle_kbps", WHOLE_KBPS),
    ("old cap that never resets", {"cap_bytes": GB, "window": "none"}, "plan.window",
     "is 'none' with a cap: a cap that never resets"),
    ("old negative remaining", {"cap_bytes": GB, "remaining_bytes": -1}, "plan.remaining_bytes",
     f"is not a whole number from 0 to {MAX_PLAN_BYTES}"),
]


@pytest.mark.parametrize(("body", "field", "rule"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_names_the_field_and_the_rule_broken(body: Any, field: str, rule: str) -> None:
    assert refusal(body) == (field, f"plan field {field!r} {rule}")


def test_a_refused_plan_in_a_sims_facts_leaves_it_without_a_plan() -> None:
    assert plan_of({"plan": {"name": ""}}) is None
    assert plan_of({"plan": plan("daypass-3GB")}) == parse_plan(plan("daypass-3GB"))
    assert plan_of({}) is None and plan_of(None) is None


def test_every_bound_is_inclusive() -> None:
    """The lowest and highest value of each bounded field read as given."""
    low = parse_plan(with_rules(rolling(hours=1, cap_bytes=0, throttle_kbps=1), nominal_kbps=2, as_of=0,
                                remaining={"72h": 0}))
    assert low.rules == (Rule("72h", "rolling", 0, 1, "both", "throttle", 1),)
    assert (low.nominal_kbps, low.as_of, low.remaining) == (2, 0.0, {"72h": 0})
    high = parse_plan(with_rules(rolling(hours=MAX_ROLLING_HOURS, cap_bytes=MAX_PLAN_BYTES,
                                         throttle_kbps=MAX_KBPS - 1), nominal_kbps=MAX_KBPS,
                                 remaining={"72h": MAX_PLAN_BYTES}, name="n" * 64, tz="+14:00"))
    assert high.rules == (Rule("72h", "rolling", MAX_PLAN_BYTES, MAX_ROLLING_HOURS, "both", "throttle", MAX_KBPS - 1),)
    assert (high.nominal_kbps, high.remaining, high.name, high.tz) == (MAX_KBPS, {"72h": MAX_PLAN_BYTES}, "n" * 64,
                                                                       "+14:00")
    assert parse_plan({"nominal_kbps": 1}).nominal_kbps == 1
    assert len(parse_plan(with_rules(*steps(MAX_RULES))).rules) == MAX_RULES


def test_a_throttle_one_below_the_nominal_rate_is_a_throttle() -> None:
    p = parse_plan(with_rules(month(throttle_kbps=199), nominal_kbps=200))
    assert p.throttle_rates() == [199] and p.nominal_kbps == 200


def test_a_rule_counts_only_the_directions_its_contract_names() -> None:
    p = parse_plan(with_rules(month(count="rx"), month(id="up", count="tx"), month(id="all")))
    down, up, both = p.rules
    assert (down.count, up.count, both.count) == ("rx", "tx", "both")
    assert (down.counted(5, 7), up.counted(5, 7), both.counted(5, 7)) == (5, 7, 12)


def test_a_flat_rate_rule_and_a_plan_without_name_read() -> None:
    p = parse_plan({"rules": [{"id": "flat", "window": "none", "cap_bytes": None}], "nominal_kbps": 200})
    assert p.name == "unknown"
    assert p.rules == (Rule("flat", "none", None, None, "both", "throttle", None),)
    assert not p.rules[0].throttles and p.rules[0].until is None


def test_a_plan_keeps_the_clouds_view_and_its_zone_through_the_wire() -> None:
    body = {**plan("5GB-month"), "remaining": {"month": 3 * GB, "72h": 5}, "as_of": 1_764_774_000}
    p = parse_plan(body)
    assert (p.tz, p.remaining, p.as_of) == ("+09:00", {"month": 3 * GB, "72h": 5}, 1_764_774_000.0)
    wire = p.to_dict()
    assert (wire["tz"], wire["remaining"], wire["as_of"]) == ("+09:00", {"month": 3 * GB, "72h": 5}, 1_764_774_000.0)
    assert [r.get("until") for r in wire["rules"]] == ["window_end", "below_cap"]
    assert parse_plan(wire) == p
    bare = parse_plan({"nominal_kbps": 200}).to_dict()
    assert bare == {"name": "unknown", "rules": [], "nominal_kbps": 200}
    flat = parse_plan(with_rules({"id": "flat", "window": "none", "cap_bytes": None})).to_dict()["rules"][0]
    assert "until" not in flat and "hours" not in flat


def test_a_rule_is_found_by_its_id_and_only_by_it() -> None:
    p = parse_plan(plan("5GB-month"))
    assert p.rule("72h") is not None and p.rule("72h").hours == 72  # type: ignore[union-attr]
    assert p.rule("day") is None


class TestTheOldSingleRuleForm:
    """The plan of a profile sealed before rules: one cap, one window, one throttle rate."""

    def test_a_capped_plan_is_one_throttle_on_both_directions(self) -> None:
        old = parse_plan({"cap_bytes": GB, "window": "day", "throttle_kbps": 128})
        assert old.rules == (Rule(LEGACY_RULE_ID, "day", GB, None, "both", "throttle", 128),)
        assert old.remaining == {} and old.nominal_kbps is None

    def test_the_window_defaults_to_the_month_and_a_cap_may_be_zero(self) -> None:
        old = parse_plan({"cap_bytes": 0, "throttle_kbps": 1, "remaining_bytes": 0})
        assert old.rules == (Rule(LEGACY_RULE_ID, "month", 0, None, "both", "throttle", 1),)
        assert old.remaining == {LEGACY_RULE_ID: 0}

    def test_a_window_with_a_rate_and_no_cap_is_still_a_throttle_the_classifier_knows(self) -> None:
        old = parse_plan({"window": "rolling72h", "throttle_kbps": 128})
        assert old.rules == (Rule(LEGACY_RULE_ID, "rolling", None, 72, "both", "throttle", 128),)
        assert old.throttle_rates() == [128]
        assert parse_plan({"window": "month"}).rules == ()

    def test_a_flat_plans_own_nominal_rate_wins_over_its_old_rate(self) -> None:
        flat = parse_plan({"window": "none", "throttle_kbps": 200, "nominal_kbps": 300})
        assert flat.rules == () and flat.nominal_kbps == 300
        assert parse_plan({"window": "none", "throttle_kbps": 200}).nominal_kbps == 200

    def test_the_clouds_remaining_reads_in_either_form(self) -> None:
        by_rule = parse_plan({"cap_bytes": GB, "remaining": {LEGACY_RULE_ID: 7}})
        assert by_rule.remaining == {LEGACY_RULE_ID: 7}
        both = parse_plan({"cap_bytes": GB, "remaining": {LEGACY_RULE_ID: 7}, "remaining_bytes": 9})
        assert both.remaining == {LEGACY_RULE_ID: 9}
        assert parse_plan({"window": "none", "remaining_bytes": 9}).remaining == {}

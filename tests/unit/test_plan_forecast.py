"""What the plan says about a SIM now (agent/plans/predict.py), each rule one step either side
of its edge (issue 22; issue 29's mutation run): the rates a throttle may be at, the rule
that explains a throttle (or that none does: the platform's most valuable signal), the
first cap at the current rate, the daily share the device's own checks may spend, and a
reset too close to be worth a swap."""

from __future__ import annotations

import pytest

from agent.health.thresholds import KNOWN_RATE_HIGH, KNOWN_RATE_LOW
from agent.plans import predict
from agent.plans.allowance import RuleStatus
from agent.plans.predict import RESET_SOON_S, Explanation, Forecast
from agent.plans.rules import PlanRules, Rule

MB = 1_000_000
NOW = 1_768_089_600.0
DAY_S = 86400.0
MONTH = Rule("month", "month", 1000 * MB, throttle_kbps=128)
ROLLING = Rule("72h", "rolling", 300 * MB, hours=72, throttle_kbps=384)
DAYPASS = Rule("day", "day", 100 * MB, throttle_kbps=384)
UNSTATED = Rule("slow", "month", 2000 * MB)
STEP = Rule("step", "month", 10 * MB, action="price_step")
FLAT = Rule("flat", "none", None)


def at(rule: Rule, used: int, resets_in: float | None = 10 * DAY_S, cap: int | None = -1) -> RuleStatus:
    return RuleStatus(rule, used, rule.cap_bytes if cap == -1 else cap, None if resets_in is None else NOW + resets_in)


class TestThrottleRates:
    def test_the_rules_stated_rates_and_never_a_price_step_or_the_nominal(self) -> None:
        plan = PlanRules(rules=(MONTH, ROLLING, STEP, UNSTATED))
        assert predict.throttle_rates(plan) == (128, 384)
        assert predict.throttle_rates(None) == ()

    @pytest.mark.parametrize(("nominal", "rates"), [(40, ()), (41, (32,)), (200, (32, 128))])
    def test_a_flat_plan_may_be_policed_to_32_kbps_only_below_what_it_sells(self, nominal: int,
                                                                            rates: tuple[int, ...]) -> None:
        """32 kbps counts as a police rate only when it is clearly below the nominal rate
        (under KNOWN_RATE_LOW of it): a 40 kbps plan at 32 kbps is the plan at work."""
        rules = (MONTH,) if nominal == 200 else ()
        assert predict.throttle_rates(PlanRules(rules=rules, nominal_kbps=nominal)) == rates

    def test_the_nominal_rate(self) -> None:
        assert predict.nominal_kbps(PlanRules(nominal_kbps=200)) == 200
        assert predict.nominal_kbps(PlanRules()) is None and predict.nominal_kbps(None) is None


class TestExplain:
    def test_no_plan_known_says_nothing_either_way(self) -> None:
        assert predict.explain(128, [at(MONTH, 2000 * MB)], plan_known=False) == Explanation(None, None)

    @pytest.mark.parametrize(("kbps", "explained"), [
        (128 * KNOWN_RATE_LOW, True), (128 * KNOWN_RATE_LOW - 0.01, False),
        (128 * KNOWN_RATE_HIGH, True), (128 * KNOWN_RATE_HIGH + 0.01, False), (None, True)])
    def test_an_exceeded_rule_explains_a_throttle_at_its_rate(self, kbps: float | None, explained: bool) -> None:
        got = predict.explain(kbps, [at(MONTH, 1000 * MB + 1)], plan_known=True)
        assert got == (Explanation("month", False) if explained else Explanation(None, True))

    def test_a_rule_at_its_cap_is_not_yet_exceeded(self) -> None:
        assert predict.explain(128, [at(MONTH, 1000 * MB)], plan_known=True) == Explanation(None, True)

    def test_a_rule_whose_rate_the_contract_leaves_unstated_explains_any_rate(self) -> None:
        assert predict.explain(9, [at(UNSTATED, 2000 * MB + 1)], plan_known=True) == Explanation("slow", False)

    def test_a_price_step_never_explains_a_throttle(self) -> None:
        assert predict.explain(128, [at(STEP, 20 * MB)], plan_known=True) == Explanation(None, True)

    def test_a_throttle_with_its_cap_unknown_explains_it_but_a_flat_rule_does_not(self) -> None:
        unknown = at(Rule("cap", "month", None, throttle_kbps=128), 0, cap=None)
        assert predict.explain(128, [unknown], plan_known=True) == Explanation("cap", False)
        assert predict.explain(128, [at(FLAT, 0, resets_in=None)], plan_known=True) == Explanation(None, True)

    def test_the_rule_at_the_measured_rate_is_named_when_several_are_over(self) -> None:
        over = [at(MONTH, 1000 * MB + 1), at(ROLLING, 300 * MB + 1, resets_in=None)]
        assert predict.explain(384, over, plan_known=True) == Explanation("72h", False)
        assert predict.explain(128, over, plan_known=True) == Explanation("month", False)

    def test_rules_under_their_caps_listed_first_do_not_hide_the_one_over(self) -> None:
        statuses = [at(STEP, 20 * MB), at(MONTH, 10 * MB), at(ROLLING, 300 * MB + 1, resets_in=None)]
        assert predict.explain(384, statuses, plan_known=True) == Explanation("72h", False)


class TestFirstCap:
    def test_the_rule_reached_first_at_the_current_rate(self) -> None:
        """100 MB left under the month at 1 MB/s is 100 s; 50 MB under the 72 h rule is
        50 s: the 72 h rule comes first, with its low mark at 10 % of its cap."""
        statuses = [at(MONTH, 900 * MB), at(ROLLING, 250 * MB, resets_in=None), at(STEP, 0)]
        got = predict.first_cap(statuses, 1 * MB, NOW, swap_below_bytes=50 * MB)
        assert got == Forecast("72h", 50 * MB, 50.0, 30 * MB)

    def test_without_traffic_the_fewest_bytes_left_comes_first(self) -> None:
        statuses = [at(MONTH, 900 * MB), at(ROLLING, 250 * MB, resets_in=None)]
        assert predict.first_cap(statuses, 0.0, NOW, swap_below_bytes=10 * MB) == Forecast("72h", 50 * MB, None, 10 * MB)
        statuses = [at(MONTH, 990 * MB), at(ROLLING, 250 * MB, resets_in=None)]
        assert predict.first_cap(statuses, 0.0, NOW, swap_below_bytes=10 * MB) == Forecast("month", 10 * MB, None,
                                                                                            10 * MB)

    def test_a_rule_already_over_is_due_now_and_keeps_its_true_remaining(self) -> None:
        got = predict.first_cap([at(MONTH, 1001 * MB)], 1 * MB, NOW, swap_below_bytes=50 * MB)
        assert got == Forecast("month", -1 * MB, 0.0, 50 * MB)

    def test_of_two_rules_due_at_once_the_first_listed_stays(self) -> None:
        statuses = [at(MONTH, 900 * MB), at(Rule("again", "month", 500 * MB, count="rx"), 400 * MB)]
        for rate in (1 * MB, 0.0):
            assert predict.first_cap(statuses, rate, NOW, swap_below_bytes=50 * MB).rule == "month"  # type: ignore[union-attr]

    def test_rules_left_out_do_not_hide_the_rules_after_them(self) -> None:
        """A price step and a day pass about to reset, listed first: the 72 h rule is still
        the one to watch."""
        statuses = [at(STEP, 0), at(DAYPASS, 99 * MB, resets_in=60), at(ROLLING, 250 * MB, resets_in=None)]
        got = predict.first_cap(statuses, 1 * MB, NOW, swap_below_bytes=50 * MB)
        assert got == Forecast("72h", 50 * MB, 50.0, 30 * MB)

    def test_a_trickle_below_one_byte_a_second_still_has_a_time(self) -> None:
        got = predict.first_cap([at(ROLLING, 300 * MB - 100, resets_in=None)], 0.5, NOW, swap_below_bytes=50 * MB)
        assert got == Forecast("72h", 100, 200.0, 30 * MB)

    @pytest.mark.parametrize(("resets_in", "counted"), [(RESET_SOON_S, False), (RESET_SOON_S + 1, True)])
    def test_a_calendar_rule_resetting_within_15_minutes_is_no_reason_to_swap(self, resets_in: float,
                                                                            counted: bool) -> None:
        got = predict.first_cap([at(DAYPASS, 100 * MB)], 0.0, NOW, swap_below_bytes=50 * MB)
        assert got is not None  # an hour away: counted
        got = predict.first_cap([at(DAYPASS, 100 * MB, resets_in=resets_in)], 0.0, NOW, swap_below_bytes=50 * MB)
        assert (got is not None) == counted

    @pytest.mark.parametrize(("resets_in", "counted"), [(3600.0, False), (3601.0, True)])
    def test_a_rule_that_resets_before_the_current_rate_reaches_it_is_left_out(self, resets_in: float,
                                                                              counted: bool) -> None:
        """36 MB left at 10 kB/s is 3,600 s: a reset at or before then comes first."""
        got = predict.first_cap([at(DAYPASS, 64 * MB, resets_in=resets_in)], 10_000, NOW, swap_below_bytes=50 * MB)
        assert (got is not None) == counted

    def test_a_rolling_rule_is_never_left_out_for_a_reset(self) -> None:
        got = predict.first_cap([at(ROLLING, 250 * MB, resets_in=60)], 1 * MB, NOW, swap_below_bytes=50 * MB)
        assert got is not None and got.rule == "72h"

    def test_rules_without_a_cap_are_left_out(self) -> None:
        unknown = at(Rule("cap", "month", None, throttle_kbps=128), 0, cap=None)
        assert predict.first_cap([unknown, at(FLAT, 0, resets_in=None)], 1 * MB, NOW, 50 * MB) is None


class TestDailyShare:
    def test_no_plan_no_share(self) -> None:
        assert predict.daily_share(None, [], NOW) is None
        assert predict.daily_share(PlanRules(rules=(STEP,)), [at(STEP, 0)], NOW) is None

    def test_a_rolling_rule_allows_its_cap_over_its_days(self) -> None:
        assert predict.daily_share(PlanRules(rules=(ROLLING,)), [at(ROLLING, 299 * MB, None)], NOW) == 100 * MB

    def test_a_calendar_rule_allows_what_is_left_over_the_days_to_its_reset(self) -> None:
        plan = PlanRules(rules=(MONTH,))
        assert predict.daily_share(plan, [at(MONTH, 600 * MB, resets_in=4 * DAY_S)], NOW) == 100 * MB
        assert predict.daily_share(plan, [at(MONTH, 600 * MB, resets_in=DAY_S / 2)], NOW) == 400 * MB
        assert predict.daily_share(plan, [at(MONTH, 1100 * MB, resets_in=4 * DAY_S)], NOW) == 0

    def test_a_flat_plan_allows_what_its_nominal_rate_carries_in_a_day(self) -> None:
        assert predict.daily_share(PlanRules(nominal_kbps=200), [], NOW) == 200 * 1000 / 8 * DAY_S

    def test_rules_that_do_not_throttle_listed_first_do_not_hide_the_others(self) -> None:
        plan = PlanRules(rules=(STEP, ROLLING))
        assert predict.daily_share(plan, [at(STEP, 0), at(ROLLING, 0, None)], NOW) == 100 * MB

    def test_the_smallest_share_wins(self) -> None:
        plan = PlanRules(rules=(MONTH, ROLLING), nominal_kbps=200)
        statuses = [at(MONTH, 0, resets_in=20 * DAY_S), at(ROLLING, 0, resets_in=None)]
        assert predict.daily_share(plan, statuses, NOW) == 50 * MB
        capless = Rule("cap", "month", None, throttle_kbps=128)
        assert predict.daily_share(PlanRules(rules=(capless,)), [at(capless, 0, cap=None)], NOW) is None


class TestResetsSoon:
    @pytest.mark.parametrize(("resets_in", "expected"), [(RESET_SOON_S, RESET_SOON_S), (RESET_SOON_S + 1, None),
                                                         (60.0, 60.0)])
    def test_a_calendar_rule_resetting_within_15_minutes(self, resets_in: float, expected: float | None) -> None:
        statuses = [at(MONTH, 0, resets_in=1.0), at(DAYPASS, 0, resets_in=resets_in)]
        assert predict.resets_soon(statuses, "day", NOW) == expected

    def test_a_rolling_rule_an_unknown_rule_and_no_rule_never_reset_soon(self) -> None:
        statuses = [at(ROLLING, 0, resets_in=60.0), at(MONTH, 0, resets_in=60.0)]
        assert predict.resets_soon(statuses, "72h", NOW) is None
        assert predict.resets_soon(statuses, "day", NOW) is None
        assert predict.resets_soon(statuses, None, NOW) is None

"""Decisions from the exact rule (issue 22, step 3): the classifier judges slowness against
what the SIM's plan says it should deliver now, and a health event names the rule the
device believes was hit, or says that no rule explains the rate.

Recorded traces (tests/traces/) through the health task with its real allowance."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from agent.clock import FakeClock
from agent.core.health import HealthMonitor, HealthSettings
from agent.health.sample import Sample
from agent.health.trace import read_trace
from agent.plans import predict
from agent.plans.tracker import Allowance
from agent.usage.own import IDLE_OWN_BYTES_PER_DAY, check_budget_for
from board.virtual.cloud.plans import GB, plan
from tests.unit.test_health_monitor import TRACES, modem_radio, trace_sampler

ICCID = "8981100000001000019"
FLAT = {"iccid": ICCID, "imsi": "440100000100001", "assignment_id": "a-1", "plan": plan("200kbps")}
MONTHLY = {"iccid": ICCID, "imsi": "440100000100001", "assignment_id": "a-2", "plan": plan("monthly-100GB")}


def scaled(samples: list[Sample], factor: float) -> list[Sample]:
    """A trace's bytes scaled: the same policer's shape at ``factor`` times its rate."""
    keys = ("wan_rx_bytes", "wan_tx_bytes", "lan_rx_bytes", "lan_tx_bytes")
    return [dataclasses.replace(s, **{k: round(getattr(s, k) * factor) for k in keys}) for s in samples]


def health_events(samples: list[Sample], sim: dict[str, Any], tmp_path: Path, mocker: MockerFixture,
                  used: int = 0) -> list[dict[str, Any]]:
    clock = FakeClock()
    allowance = Allowance(tmp_path, clock)
    allowance.on_sim(sim)
    if used:
        allowance.ledger.add(ICCID, "2026-01-01", clock.wall() - 60, clock.wall() - 59, used, 0)
    events: list[dict[str, Any]] = []

    async def emit(kind: str, data: dict[str, Any]) -> None:
        if kind == "health":
            events.append(data)

    mon = HealthMonitor(HealthSettings(wan="wan0", lan="lan0", state_dir=tmp_path), radio=modem_radio(mocker),
                        active_sim=lambda: sim, emit=emit, clock=clock, sampler=trace_sampler(mocker, samples),
                        allowance=allowance)

    async def go() -> None:
        await mon._refresh_radio()
        for s in samples:
            await mon.step(s.t)
            clock.advance(1.0)

    asyncio.run(go())
    return events


@pytest.mark.parametrize("trace", ["police200_web", "shape200_bulk", "app200_stream", "police200_stream384"])
def test_a_flat_200_kbps_sim_at_its_nominal_rate_is_never_throttled(trace: str, tmp_path: Path,
                                                                  mocker: MockerFixture) -> None:
    events = health_events(read_trace(TRACES / f"{trace}.csv"), FLAT, tmp_path, mocker)
    assert not [e for e in events if e["state"] == "throttled"]


def test_the_same_trace_without_the_plan_is_called_throttled(tmp_path: Path, mocker: MockerFixture) -> None:
    """The check can fail: without the nominal rate, 200 kbps is a known throttle rate."""
    events = health_events(read_trace(TRACES / "police200_web.csv"), {**FLAT, "plan": None}, tmp_path, mocker)
    assert [e for e in events if e["state"] == "throttled"]


def test_a_flat_sim_policed_to_32_kbps_is_reported_and_no_rule_explains_it(tmp_path: Path,
                                                                           mocker: MockerFixture) -> None:
    samples = scaled(read_trace(TRACES / "police128_bulk.csv"), 0.25)
    throttled = [e for e in health_events(samples, FLAT, tmp_path, mocker) if e["state"] == "throttled"]
    assert throttled
    assert throttled[0]["kbps"] < 40
    assert throttled[0]["rule"] is None and throttled[0]["no_rule_explains"] is True


def test_a_throttle_past_the_month_cap_names_the_month_rule(tmp_path: Path, mocker: MockerFixture) -> None:
    throttled = [e for e in health_events(read_trace(TRACES / "police128_bulk.csv"), MONTHLY, tmp_path, mocker,
                                          used=100 * GB + 1) if e["state"] == "throttled"]
    assert throttled and throttled[0]["rule"] == "month" and throttled[0]["no_rule_explains"] is False


def test_a_throttle_below_every_cap_is_the_no_rule_explains_signal(tmp_path: Path, mocker: MockerFixture) -> None:
    """The 2020 case: a cap the wholesaler changed without telling anyone."""
    throttled = [e for e in health_events(read_trace(TRACES / "police128_bulk.csv"), MONTHLY, tmp_path, mocker,
                                          used=GB) if e["state"] == "throttled"]
    assert throttled and throttled[0]["rule"] is None and throttled[0]["no_rule_explains"] is True
    ok = [e for e in health_events(read_trace(TRACES / "video_ok.csv"), MONTHLY, tmp_path / "b", mocker)]
    assert all(e["no_rule_explains"] is False for e in ok)


def test_the_own_traffic_budget_is_under_one_percent_of_the_plans_daily_share(tmp_path: Path,
                                                                            mocker: MockerFixture) -> None:
    """100 MB / 3 days: 333 kB a day; the idle traffic (222 kB measured) and the checks
    together stay under it. A flat 200 kbps plan and a big monthly plan get more (capped),
    a nearly exhausted one less."""
    clock = FakeClock()
    budgets = {}
    for name in ("100MB-3days", "200kbps", "monthly-100GB", "daypass-3GB"):
        facts = {**FLAT, "plan": plan(name), "assignment_id": name}
        allowance = Allowance(tmp_path / name, clock)
        allowance.on_sim(facts)
        share = predict.daily_share(allowance.plan(facts), allowance.status(facts), clock.wall())
        budgets[name] = check_budget_for(share)
        assert share is not None and budgets[name] + IDLE_OWN_BYTES_PER_DAY <= max(0.01 * share, IDLE_OWN_BYTES_PER_DAY)
    assert budgets["100MB-3days"] + IDLE_OWN_BYTES_PER_DAY < 333_334
    assert budgets["monthly-100GB"] == 4 * 1024 * 1024
    facts = {**MONTHLY, "plan": {**plan("monthly-100GB"), "remaining": {"month": 500_000_000}}}
    allowance = Allowance(tmp_path / "low", clock)
    allowance.on_sim(facts)
    low = check_budget_for(predict.daily_share(allowance.plan(facts), allowance.status(facts), clock.wall()))
    assert low < budgets["monthly-100GB"]
    mon = HealthMonitor(HealthSettings(wan="wan0", lan="lan0", state_dir=tmp_path), radio=modem_radio(mocker),
                        active_sim=lambda: {**FLAT, "plan": plan("100MB-3days")}, emit=mocker.AsyncMock(),
                        clock=clock, sampler=trace_sampler(mocker, []), allowance=Allowance(tmp_path / "m", clock))
    assert mon.own.check_budget_bytes == budgets["100MB-3days"]

"""agent/core/swap_control.py without a supervisor: one swap at a time, the back-off after
a failure, the cloud's orders inside their window, and the cloud-set policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

from agent.clock import FakeClock
from agent.core import policy as pol
from agent.core.status import StatusFile
from agent.core.swap import SimFacts, SwapFailed, SwapMachine
from agent.core.swap_control import SwapControl

CURRENT = {"slot": 2, "iccid": "8981100000000000001", "imsi": "440100000000001", "seed": False,
           "plan": {"remaining_bytes": 10_000_000}, "assignment_id": "a-1"}


class Machine:
    """How the swap machine behaves here (fails while ``fail`` is set). SwapControl never
    sees it directly: ``control`` gives it ``SwapMachine`` autospecced, answering from this,
    so a call or attribute the real machine lacks fails the test."""

    def __init__(self, control: SwapControl) -> None:
        self.control = control
        self.fail = False
        self.seen: list[tuple[str, SimFacts | None, bool]] = []
        self.double = create_autospec(SwapMachine, instance=True)
        self.double.history = []
        self.double.attach_timeout_s = 0.0
        self.double.swap.side_effect = self.swap

    @property
    def attach_timeout_s(self) -> float:
        return float(self.double.attach_timeout_s)

    async def swap(self, reason: str, old: SimFacts | None, assignment: Any = None) -> SimFacts:
        self.seen.append((reason, old, self.control.swapping))
        self.double.history.append({"reason": reason, "ok": not self.fail})
        if self.fail:
            raise SwapFailed("refused", phase="attach", rolled_back=True)
        return SimFacts(1, "8981100000000000002", "440100000000002", False, None, "a-2", "apn")


def control(tmp_path: Path, clock: FakeClock, used: int = 0) -> tuple[SwapControl, Machine]:
    ctl = SwapControl(lambda: clock, tmp_path, StatusFile(None), current=lambda: CURRENT,
                      used_on_current=lambda: used, traffic_kbps=lambda: 0.0)
    machine = Machine(ctl)
    ctl.machine = machine.double
    return ctl, machine


def test_a_failed_swap_blocks_the_next_for_the_back_off_and_a_success_clears_it(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, machine = control(tmp_path, clock)
    machine.fail = True
    assert asyncio.run(ctl.swap("throttled")) is False
    reason, old, locked = machine.seen[0]
    assert reason == "throttled" and locked and old is not None and old.iccid == CURRENT["iccid"]
    assert not ctl.swapping
    assert ctl._blocked_until > clock.monotonic()  # the policy will not swap before it
    assert ctl._blocked_until - clock.monotonic() <= ctl.policy.backoff_base_s
    machine.fail = False
    assert asyncio.run(ctl.swap("throttled")) is True
    assert ctl._blocked_until == 0.0 and ctl._swap_failures == 0


def test_an_order_that_came_during_another_swap_outlives_it(tmp_path: Path) -> None:
    """A throttled SIM's swap is under way when the cloud orders one (it wants the device on
    another plan): the swap in progress asked the cloud before the order, so it does not
    fulfil it; the order stays for the policy. An order that came before a swap is
    fulfilled by it."""
    clock = FakeClock()
    ctl, machine = control(tmp_path, clock)

    async def order_arrives_midway(reason: str, old: SimFacts | None, assignment: Any = None) -> SimFacts:
        ctl.order("cmd-during", None, None)
        return await machine.swap(reason, old)

    machine.double.swap.side_effect = order_arrives_midway
    assert asyncio.run(ctl.swap("throttled")) is True
    assert ctl._order is not None and ctl._order.command_id == "cmd-during"
    machine.double.swap.side_effect = machine.swap
    assert asyncio.run(ctl.swap("command")) is True
    assert ctl._order is None


def test_a_cloud_order_is_scheduled_inside_its_window(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock)
    wall = clock.wall()
    ctl.order("cmd-1", wall + 10, wall + 70)
    assert ctl._order is not None and ctl._order.command_id == "cmd-1"
    assert clock.monotonic() + 10 <= ctl._order.due <= clock.monotonic() + 70
    ctl.order("cmd-2", None, None)
    assert ctl._order.due == clock.monotonic()  # no window: now


def test_low_data_is_timed_from_when_it_was_first_seen_and_reset_by_a_new_sim(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock, used=9_000_000)  # 1 MB left, under the 50 MB default
    first = ctl._inputs()
    assert first.remaining_bytes == 1_000_000 and first.low_since == clock.monotonic()
    clock.advance(30)
    assert ctl._inputs().low_since == first.low_since
    ctl.sim_changed()
    assert ctl._inputs().low_since == clock.monotonic()


def test_policy_from_the_cloud_is_persisted_applied_and_a_bad_one_refused(tmp_path: Path) -> None:
    ctl, machine = control(tmp_path, FakeClock())
    ctl.on_policy({"version": 3, "attach_timeout_s": 45})
    assert ctl.policy.attach_timeout_s == 45.0 and machine.attach_timeout_s == 45.0
    saved = json.loads((tmp_path / "policy.json").read_text())
    assert saved["version"] == 3 and saved["attach_timeout_s"] == 45.0
    ctl.on_policy({"version": 4, "attach_timeout_s": 1})  # below its bound: refused whole
    assert ctl.policy.attach_timeout_s == 45.0 and ctl.policy.version == 3
    again, _ = control(tmp_path, FakeClock())  # a restart reads what was persisted
    assert pol.policy_to_dict(again.policy) == saved


def test_a_health_decision_wakes_the_policy_and_is_the_evidence(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock)
    ctl.on_health({"state": "throttled", "kbps": 128, "age_s": 5.0, "evidence": {"cv": 0.01}})
    assert ctl._wake.is_set()
    inputs = ctl._inputs()
    assert inputs.health == "throttled" and inputs.health_for_s == 5.0
    assert ctl.request_evidence() == {"state": "throttled", "kbps": 128}


def test_an_escape_waits_for_its_retry_delay_and_stops_at_the_byte_budget(tmp_path: Path) -> None:
    """Issue 23: the escape gate (agent/core/escape.py's state, applied in the policy loop)."""
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock)
    ctl.on_policy({"version": 1, "escape_after_s": 60, "escape_budget_bytes": 20_000})
    now = clock.monotonic()
    ctl.escape.begin("44020", {"cause": "blackhole"})
    assert ctl._escape_gate("escape")
    ctl.escape.could_not(now, ctl.policy)
    assert not ctl._escape_gate("escape") and ctl._escape_gate("throttled")
    clock.advance(60)
    assert ctl._escape_gate("escape")
    ctl.escape.budget.record(clock.monotonic(), 20_000)
    assert not ctl._escape_gate("escape") and not ctl._escape_gate("boot")  # on the seed: no more asking
    assert ctl.escape.not_before >= clock.monotonic() + ctl.policy.escape_retry_cap_s - 1


def test_an_escape_ends_when_the_old_carrier_serves_again_or_the_swap_lands_elsewhere(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock)
    ctl.escape.begin("44020", {})
    ctl.on_health({"state": "no_service", "evidence": {"cause": "blackhole"}})
    assert ctl.escape.active
    ctl.on_health({"state": "ok", "evidence": {}})
    assert not ctl.escape.active
    CURRENT["plmn"] = "44010"
    try:
        ctl.escape.begin("44020", {})
        assert asyncio.run(ctl.swap("no_service"))
        assert not ctl.escape.active  # CURRENT is on 44010: another carrier
        ctl.escape.begin("44010", {})
        assert asyncio.run(ctl.swap("no_service"))
        assert ctl.escape.active  # still on the failing carrier: not escaped
    finally:
        CURRENT.pop("plmn")


def test_the_request_evidence_names_the_failing_carrier(tmp_path: Path) -> None:
    clock = FakeClock()
    ctl, _ = control(tmp_path, clock)
    ctl.on_health({"state": "no_service", "plmn": "44020", "evidence": {"cause": "not_registered"}})
    ctl.escape.begin("44020", {"cause": "not_registered", "cell": 7})
    assert ctl.request_evidence() == {"state": "no_service", "plmn": "44020", "failing_plmn": "44020",
                                      "cause": "not_registered", "cell": 7}
    assert ctl._inputs().carrier_down

"""The swap state machine (agent/core/swap.py) against the virtual modem on a real pty.

The daemon's side (cloud, meter, routes) is a set of recording hooks: what is under test
is the order of phases, the rollback, and the recovery of a swap a crash cut short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from agent import store
from agent.cloud.schema import validate_event_data
from agent.core.swap import HISTORY_KEEP, Hooks, SimFacts, SwapFailed, SwapMachine, SwapRecord
from agent.modem.driver import Modem
from agent.sim import Plan, SimProfile
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig, NullCarrier
from tests.unit.at_fakes import async_test

KI = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OPC = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
OLD = SimProfile("8981100000000000042", "440109876500042", KI, OPC, "44010", "old.example",
                 Plan("monthly-100GB", 10**11, "month", 128, 10**10))
NEW = SimProfile("8981100000000000059", "440109876500059", KI, OPC, "44010", "new.example",
                 Plan("5GB-month", 5 * 10**9, "month", 128, 4 * 10**9))
EMM_ILLEGAL_UE = 3


class PickyCarrier(NullCarrier):
    """Accepts every SIM but the IMSIs in ``refuse`` (EMM #3, as for a wrong Ki)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes]) -> int | None:
        return EMM_ILLEGAL_UE if imsi in self.refuse else super().attach(imsi, plmn, challenge)


@dataclass
class Assignment:
    assignment_id: str
    profile: SimProfile


class Recorder:
    """Hooks that record what the machine asked of the daemon, in order."""

    def __init__(self, assignment: Assignment | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.assignment = assignment

    def hooks(self) -> Hooks:
        async def request(reason: str, iccid: str | None) -> Assignment:
            self.calls.append(("request", (reason, iccid)))
            assert self.assignment is not None
            return self.assignment

        async def account(facts: SimFacts) -> None:
            self.calls.append(("account", facts.iccid))

        async def route(params: Any) -> None:
            self.calls.append(("route", params.address))

        async def verify() -> bool:
            self.calls.append(("verify", None))
            return True

        async def unroute() -> None:
            self.calls.append(("unroute", None))

        async def report(kind: str, data: dict[str, Any]) -> None:
            validate_event_data(kind, data)  # what goes upstream fits the contract
            self.events.append((kind, data))

        async def result(aid: str, ok: bool, detail: str) -> None:
            self.calls.append(("result", (aid, ok)))

        return Hooks(request=request, account=account, route=route, verify=verify, unroute=unroute,
                     cloud_pause=lambda up: self.calls.append(("cloud", up)), report=report, result=result)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def carrier() -> PickyCarrier:
    return PickyCarrier()


@pytest.fixture
def vmodem(carrier: PickyCarrier) -> Iterator[VirtualModem]:
    modem = VirtualModem(ModemConfig(time_scale=FAST_SCALE, rng_seed=11), carrier=carrier)
    modem.start()
    yield modem
    modem.stop()


async def on_old_sim(vmodem: VirtualModem) -> tuple[Modem, SimFacts]:
    """A modem serving OLD from slot 1 with its data context up."""
    modem = Modem(vmodem.path, "virtual")
    await modem.open()
    await modem.load_profile(1, OLD)
    await modem.select_slot(1)
    await modem.set_radio(True)
    for _ in range(200):
        if (await modem.registration()).stat in (1, 5):
            break
        await asyncio.sleep(0.01)
    else:  # the rig itself is broken: say so, not a confusing failure further on
        raise AssertionError(f"OLD never registered: {await modem.registration()}")
    await modem.define_context(1, OLD.apn)
    await modem.activate_context(1)
    return modem, SimFacts(1, OLD.iccid, OLD.imsi, False, OLD.plan.to_dict(), "a-old", OLD.apn)


def machine(modem: Modem, rec: Recorder, tmp_path: Path) -> SwapMachine:
    return SwapMachine(modem, rec.hooks(), tmp_path / "swap.json", slots=(1, 2), attach_timeout_s=5.0)


@async_test
async def test_swap_runs_every_phase_in_order(vmodem: VirtualModem, tmp_path: Path) -> None:
    modem, old = await on_old_sim(vmodem)
    rec = Recorder(Assignment("a-1", NEW))
    m = machine(modem, rec, tmp_path)
    new = await m.swap("throttled", old)
    assert (new.slot, new.iccid, new.apn) == (2, NEW.iccid, NEW.apn)
    assert await modem.active_profile() == (2, NEW.iccid)
    # paused before the switch, metered SIM handed over before the route, link back after it
    # the route comes off before the switch: nothing is sent into a bearer that is going
    assert rec.names() == ["request", "cloud", "unroute", "account", "route", "cloud", "verify", "result"]
    assert rec.events and rec.calls.index(("result", ("a-1", True))) == len(rec.calls) - 1
    assert rec.calls[1] == ("cloud", False) and rec.calls[5] == ("cloud", True)
    assert rec.calls[3] == ("account", NEW.iccid)
    [(kind, data)] = rec.events
    assert kind == "swap" and data["ok"] and not data["rolled_back"]
    assert list(data["phases_ms"]) == ["request", "stage", "switch", "attach", "data", "route", "verify", "commit"]
    assert data["break_ms"] == pytest.approx(sum(data["phases_ms"][p] for p in ("switch", "attach", "data", "route")))
    assert not (tmp_path / "swap.json").exists()
    assert m.history[-1] == data
    await modem.close()


@async_test
async def test_swap_history_survives_a_restart_bounded(vmodem: VirtualModem, tmp_path: Path) -> None:
    """The renter's page and the console read the history: a restarted agent (a new
    machine on the same state file) still has the last swap, and never more than
    HISTORY_KEEP rows, however many a previous run wrote."""
    history = tmp_path / "swaps.json"
    older = [{"swap_id": f"s{i}", "reason": "command", "ok": True, "break_ms": 5000.0} for i in range(HISTORY_KEEP + 5)]
    store.atomic_write_json(history, older)
    modem, old = await on_old_sim(vmodem)
    m = SwapMachine(modem, Recorder(Assignment("a-1", NEW)).hooks(), tmp_path / "swap.json", slots=(1, 2),
                    attach_timeout_s=5.0, history_file=history)
    assert [h["swap_id"] for h in m.history] == [f"s{i}" for i in range(5, HISTORY_KEEP + 5)]
    await m.swap("throttled", old)
    restarted = SwapMachine(modem, Recorder().hooks(), tmp_path / "swap.json", slots=(1, 2), history_file=history)
    assert restarted.history == m.history and len(restarted.history) == HISTORY_KEEP
    assert restarted.history[-1]["reason"] == "throttled" and restarted.history[-1]["to_iccid"] == NEW.iccid
    history.write_text('{"not": "a list"}')  # flash trouble or an old format: an empty history, still serving
    assert SwapMachine(modem, Recorder().hooks(), tmp_path / "swap.json", slots=(1, 2),
                       history_file=history).history == []
    await modem.close()


@async_test
async def test_the_meter_moves_before_a_bearer_comes_up(vmodem: VirtualModem, carrier: PickyCarrier,
                                                       tmp_path: Path) -> None:
    """Meter first, bearer second, going forward and rolling back: the old bearer went with
    the switch and the next is not up yet when the meter moves, so every byte a bearer
    carries is billed to its SIM (a late packet to an address the carrier hands out again
    included; measured in the lab when ``route`` did the handover)."""
    modem, old = await on_old_sim(vmodem)
    seen: list[tuple[str, bool]] = []

    async def account(facts: SimFacts) -> None:
        seen.append((facts.iccid, any(st.active for st in await modem.context_states())))

    def with_account(rec: Recorder) -> SwapMachine:
        return SwapMachine(modem, replace(rec.hooks(), account=account), tmp_path / "swap.json", slots=(1, 2),
                           attach_timeout_s=5.0)

    carrier.refuse.add(NEW.imsi)
    with pytest.raises(SwapFailed):
        await with_account(Recorder(Assignment("a-8", NEW))).swap("command", old)
    assert seen == [(OLD.iccid, False)]  # rolled back: the old SIM metered again before its context
    carrier.refuse.clear()
    await with_account(Recorder(Assignment("a-9", NEW))).swap("command", old)
    assert seen[1:] == [(NEW.iccid, False)]
    await modem.close()


@async_test
async def test_new_sim_refused_rolls_back_to_the_old_one(vmodem: VirtualModem, carrier: PickyCarrier,
                                                       tmp_path: Path) -> None:
    modem, old = await on_old_sim(vmodem)
    carrier.refuse.add(NEW.imsi)
    rec = Recorder(Assignment("a-2", NEW))
    with pytest.raises(SwapFailed) as failed:
        await machine(modem, rec, tmp_path).swap("command", old)
    assert failed.value.phase == "attach" and failed.value.rolled_back
    assert await modem.active_profile() == (1, OLD.iccid)
    params = await modem.context_params(1)
    assert params is not None and params.address  # the user has data again on the old SIM
    assert ("account", OLD.iccid) in rec.calls and ("result", ("a-2", False)) in rec.calls
    [(kind, data)] = rec.events
    assert kind == "swap" and not data["ok"] and data["rolled_back"] and "registration denied" in data["detail"]
    assert "rollback" in data["phases_ms"]
    await modem.close()


@async_test
async def test_switch_not_done_by_the_modem_is_caught(vmodem: VirtualModem, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Some modems answer OK to a slot switch they did not do: the ICCID read back tells."""
    modem, old = await on_old_sim(vmodem)
    rec = Recorder(Assignment("a-3", NEW))

    async def ignore_switch(slot: int) -> None:
        return None  # "OK", and nothing happened

    monkeypatch.setattr(modem, "select_slot", ignore_switch)
    with pytest.raises(SwapFailed) as failed:
        await machine(modem, rec, tmp_path).swap("command", old)
    assert failed.value.phase == "switch" and failed.value.rolled_back
    assert "carries slot 1" in rec.events[0][1]["detail"]
    await modem.close()


@async_test
async def test_request_failure_changes_nothing(vmodem: VirtualModem, tmp_path: Path) -> None:
    from agent.errors import ProtocolError

    modem, old = await on_old_sim(vmodem)
    rec = Recorder()

    async def no_sim(reason: str, iccid: str | None) -> Assignment:
        raise ProtocolError("cloud refused assignment: no SIM with room", reason="refused")

    m = machine(modem, rec, tmp_path)
    m.hooks.request = no_sim
    with pytest.raises(SwapFailed) as failed:
        await m.swap("throttled", old)
    assert failed.value.phase == "request" and not failed.value.rolled_back
    assert await modem.active_profile() == (1, OLD.iccid)
    assert rec.names() == [] and not rec.events[0][1]["ok"]
    await modem.close()


@async_test
async def test_crash_after_the_switch_resumes_on_the_new_sim(vmodem: VirtualModem, tmp_path: Path) -> None:
    modem, old = await on_old_sim(vmodem)
    await modem.load_profile(2, NEW)
    await modem.select_slot(2)  # the crash came right after the switch command
    new = SimFacts(2, NEW.iccid, NEW.imsi, False, NEW.plan.to_dict(), "a-4", NEW.apn)
    rec = Recorder()
    m = machine(modem, rec, tmp_path)
    m._save(SwapRecord("s-1", "throttled", "attach", old, new, None, {"switch": 30.0}))
    assert await m.resume() == new
    assert ("account", NEW.iccid) in rec.calls and ("result", ("a-4", True)) in rec.calls
    assert not (tmp_path / "swap.json").exists()
    await modem.close()


@async_test
async def test_crash_before_the_switch_leaves_the_old_sim_serving(vmodem: VirtualModem, tmp_path: Path) -> None:
    modem, old = await on_old_sim(vmodem)
    new = SimFacts(2, NEW.iccid, NEW.imsi, False, NEW.plan.to_dict(), "a-5", NEW.apn)
    rec = Recorder()
    m = machine(modem, rec, tmp_path)
    m._save(SwapRecord("s-2", "command", "stage", old, new))
    assert await m.resume() is None
    assert rec.names() == ["result"] and rec.calls[0] == ("result", ("a-5", False))
    assert await modem.active_profile() == (1, OLD.iccid)
    await modem.close()


@async_test
async def test_crash_mid_switch_with_modem_on_the_old_slot_rolls_back(vmodem: VirtualModem,
                                                                      tmp_path: Path) -> None:
    modem, old = await on_old_sim(vmodem)
    new = SimFacts(2, NEW.iccid, NEW.imsi, False, NEW.plan.to_dict(), "a-6", NEW.apn)
    rec = Recorder()
    m = machine(modem, rec, tmp_path)
    m._save(SwapRecord("s-3", "command", "data", old, new))
    assert await m.resume() == old
    assert ("account", OLD.iccid) in rec.calls
    assert rec.events[-1][1]["rolled_back"] and not rec.events[-1][1]["ok"]
    await modem.close()

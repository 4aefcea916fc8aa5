"""The health task with explicit inputs: a radio reader, an active-SIM getter and an emit
callback (no supervisor), fed a recorded trace through the real sampler's interface
(autospecced, as is the radio: neither can drift from its class); the event it emits has
exactly the contract's keys."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

from pytest_mock import MockerFixture

from agent.clock import FakeClock
from agent.core.health import HealthMonitor, HealthSettings
from agent.core.radio import ModemRadio, RadioSnapshot
from agent.core.sampler import LiveSampler, RadioReading
from agent.health.event import EVENT_KEYS, ServingNetwork
from agent.health.sample import Sample
from agent.health.trace import read_trace
from agent.modem.driver import Modem

TRACES = Path(__file__).resolve().parents[1] / "traces"
SIM = {"iccid": "8981000000000000014", "imsi": "440100000000014", "plan": {"throttle_kbps": 128}}


def trace_sampler(mocker: MockerFixture, samples: list[Sample]) -> Any:
    """``LiveSampler`` autospecced, replaying a recorded trace: a call the real sampler
    would refuse (a renamed argument, a method it lacks) fails here too."""
    sampler = mocker.create_autospec(LiveSampler, instance=True)
    sampler.demand_source, sampler.prober, sampler.flows = "conntrack", None, None
    sampler.sample.side_effect = samples
    return sampler


def probing(sampler: Any) -> list[bool]:
    """The probe gating the monitor asked for at each sample, as the real signature binds it."""
    sig = inspect.signature(LiveSampler.sample)
    return [sig.bind(None, *c.args, **c.kwargs).arguments.get("probe", True) for c in sampler.sample.call_args_list]


def modem_radio(mocker: MockerFixture) -> Any:
    """``ModemRadio`` autospecced: a fixed serving cell, and a network without NITZ (the
    clock stays untrusted unless the test's clock says otherwise)."""
    radio = mocker.create_autospec(ModemRadio, instance=True)
    radio.read.return_value = RadioSnapshot(RadioReading(-90, -9, 15, True),
                                            ServingNetwork("44010", 0x1A2B3C, 0x1234, 7))
    radio.vouch_time.return_value = False
    return radio


def run_trace(name: str, tmp_path: Path, clock: FakeClock,
              mocker: MockerFixture) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    events: list[tuple[str, dict[str, Any]]] = []

    async def emit(kind: str, data: dict[str, Any]) -> None:
        events.append((kind, data))

    sampler = trace_sampler(mocker, read_trace(TRACES / f"{name}.csv"))
    mon = HealthMonitor(HealthSettings(wan="wan0", lan="lan0", state_dir=tmp_path), radio=modem_radio(mocker),
                        active_sim=lambda: SIM, emit=emit, clock=clock, sampler=sampler)

    async def go() -> None:
        await mon._refresh_radio()
        for s in read_trace(TRACES / f"{name}.csv"):
            await mon.step(s.t)
            clock.advance(1.0)

    asyncio.run(go())
    return events, sampler


def test_throttled_event_has_the_contract_shape(tmp_path: Path, mocker: MockerFixture) -> None:
    clock = FakeClock()
    events, _ = run_trace("police128_bulk", tmp_path, clock, mocker)
    health = [d for k, d in events if k == "health"]
    thr = next(d for d in health if d["state"] == "throttled")
    assert tuple(thr) == EVENT_KEYS
    assert (thr["iccid"], thr["imsi"], thr["plmn"], thr["cell"], thr["tac"], thr["act"]) == \
        (SIM["iccid"], SIM["imsi"], "44010", 0x1A2B3C, 0x1234, 7)
    assert abs(thr["kbps"] - 128) < 26 and thr["mechanism"] == "policer" and thr["previous"] == "ok"
    assert thr["clock_trusted"] is True and thr["since"].endswith("+09:00") and thr["age_s"] >= 0
    assert thr["evidence"]["demand_source"] == "conntrack"


def test_untrusted_clock_gives_no_since_but_an_age(tmp_path: Path, mocker: MockerFixture) -> None:
    clock = FakeClock(epoch=1000.0)  # an unset RTC: 1970
    events, _ = run_trace("police128_bulk", tmp_path, clock, mocker)
    thr = next(d for k, d in events if k == "health" and d["state"] == "throttled")
    assert thr["since"] is None and thr["clock_trusted"] is False and thr["age_s"] > 0


def test_the_echo_runs_only_when_there_is_something_to_judge(tmp_path: Path, mocker: MockerFixture) -> None:
    events, sampler = run_trace("idle_between_web", tmp_path, FakeClock(), mocker)
    assert "idle" in [d["state"] for k, d in events if k == "health"]
    # idle from ~35 s to 75 s: no echo; browsing at 20 Mbit/s: an echo now and then
    assert probing(sampler)[40:70].count(True) == 0
    assert 2 <= probing(sampler)[:25].count(True) <= 15
    _, capped = run_trace("police128_bulk", tmp_path / "p", FakeClock(), mocker)
    assert all(probing(capped)[40:])  # near a throttle rate: every second


def test_modem_radio_asks_for_the_numeric_operator_once(mocker: MockerFixture) -> None:
    from agent.modem import parse

    drv = mocker.create_autospec(Modem, instance=True)  # the real driver's interface
    drv.signal.return_value = parse.Signal(None, None, None, None, -10.0, -95.0, 12.0)
    drv.registration.return_value = parse.parse_registration('+CEREG: 2,5,"1A2B","01A2B3C4",7', family="+CEREG",
                                                             solicited=True)
    drv.operator.return_value = parse.Operator(0, 2, "31026", "lte")
    radio = ModemRadio(drv)
    snap = asyncio.run(radio.read())
    asyncio.run(radio.read())
    assert drv.command.await_args_list == [mocker.call("AT+COPS=3,2")]
    assert snap.network == ServingNetwork("31026", 0x01A2B3C4, 0x1A2B, 7) and snap.radio.registered

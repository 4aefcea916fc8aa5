"""The health task with explicit inputs: a radio reader, an active-SIM getter and an emit
callback (no supervisor), fed a recorded trace through a stand-in sampler; the event it
emits has exactly the contract's keys."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agent.clock import FakeClock
from agent.core.health import HealthMonitor, HealthSettings
from agent.core.radio import ModemRadio, RadioSnapshot
from agent.core.sampler import RadioReading
from agent.health.event import EVENT_KEYS, ServingNetwork
from agent.health.sample import Sample
from agent.health.trace import read_trace

TRACES = Path(__file__).resolve().parents[1] / "traces"
SIM = {"iccid": "8981000000000000014", "imsi": "440100000000014", "plan": {"throttle_kbps": 128}}


class TraceSampler:
    """Stands in for LiveSampler: replays a recorded trace, records the probe gating."""

    demand_source = "conntrack"
    prober = None
    flows = None

    def __init__(self, samples: list[Sample]):
        self._samples = iter(samples)
        self.probing: list[bool] = []

    def sample(self, t: float, radio: RadioReading | None = None, probe: bool = True) -> Sample:
        self.probing.append(probe)
        return next(self._samples)

    def close(self) -> None:
        pass


class FakeRadio:
    async def read(self) -> RadioSnapshot:
        return RadioSnapshot(RadioReading(-90, -9, 15, True), ServingNetwork("44010", 0x1A2B3C, 0x1234, 7))

    async def vouch_time(self, clock: Any) -> bool:
        return False  # a network without NITZ: the clock stays untrusted


def run_trace(name: str, tmp_path: Path, clock: FakeClock) -> tuple[list[tuple[str, dict[str, Any]]], TraceSampler]:
    events: list[tuple[str, dict[str, Any]]] = []

    async def emit(kind: str, data: dict[str, Any]) -> None:
        events.append((kind, data))

    sampler = TraceSampler(read_trace(TRACES / f"{name}.csv"))
    mon = HealthMonitor(HealthSettings(wan="wan0", lan="lan0", state_dir=tmp_path), radio=FakeRadio(),
                        active_sim=lambda: SIM, emit=emit, clock=clock, sampler=sampler)  # type: ignore[arg-type]

    async def go() -> None:
        await mon._refresh_radio()
        for s in read_trace(TRACES / f"{name}.csv"):
            await mon.step(s.t)
            clock.advance(1.0)

    asyncio.run(go())
    return events, sampler


def test_throttled_event_has_the_contract_shape(tmp_path: Path) -> None:
    clock = FakeClock()
    events, _ = run_trace("police128_bulk", tmp_path, clock)
    health = [d for k, d in events if k == "health"]
    thr = next(d for d in health if d["state"] == "throttled")
    assert tuple(thr) == EVENT_KEYS
    assert (thr["iccid"], thr["imsi"], thr["plmn"], thr["cell"], thr["tac"], thr["act"]) == \
        (SIM["iccid"], SIM["imsi"], "44010", 0x1A2B3C, 0x1234, 7)
    assert abs(thr["kbps"] - 128) < 26 and thr["mechanism"] == "policer" and thr["previous"] == "ok"
    assert thr["clock_trusted"] is True and thr["since"].endswith("+09:00") and thr["age_s"] >= 0
    assert thr["evidence"]["demand_source"] == "conntrack"


def test_untrusted_clock_gives_no_since_but_an_age(tmp_path: Path) -> None:
    clock = FakeClock(epoch=1000.0)  # an unset RTC: 1970
    events, _ = run_trace("police128_bulk", tmp_path, clock)
    thr = next(d for k, d in events if k == "health" and d["state"] == "throttled")
    assert thr["since"] is None and thr["clock_trusted"] is False and thr["age_s"] > 0


def test_the_echo_runs_only_when_there_is_something_to_judge(tmp_path: Path) -> None:
    events, sampler = run_trace("idle_between_web", tmp_path, FakeClock())
    assert "idle" in [d["state"] for k, d in events if k == "health"]
    # idle from ~35 s to 75 s: no echo; browsing at 20 Mbit/s: an echo now and then
    assert sampler.probing[40:70].count(True) == 0
    assert 2 <= sampler.probing[:25].count(True) <= 15
    _, capped = run_trace("police128_bulk", tmp_path / "p", FakeClock())
    assert all(capped.probing[40:])  # near a throttle rate: every second


def test_modem_radio_asks_for_the_numeric_operator_once() -> None:
    from agent.modem import parse

    class Driver:
        def __init__(self) -> None:
            self.commands: list[str] = []

        async def signal(self) -> parse.Signal:
            return parse.Signal(None, None, None, None, -10.0, -95.0, 12.0)

        async def registration(self) -> Any:
            return parse.parse_registration('+CEREG: 2,5,"1A2B","01A2B3C4",7', family="+CEREG", solicited=True)

        async def command(self, cmd: str) -> None:
            self.commands.append(cmd)

        async def operator(self) -> parse.Operator:
            return parse.Operator(0, 2, "31026", "lte")

    drv = Driver()
    radio = ModemRadio(drv)
    snap = asyncio.run(radio.read())
    asyncio.run(radio.read())
    assert drv.commands == ["AT+COPS=3,2"]
    assert snap.network == ServingNetwork("31026", 0x01A2B3C4, 0x1A2B, 7) and snap.radio.registered

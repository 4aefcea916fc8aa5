"""What the console lets a technician write to flash (issue 20, finding 9): a trace needs a
login (tests/console/test_console_pty.py), is capped in bytes, ends by itself and makes
room for itself; ``selftest``'s write probe runs at most once per STORAGE_PROBE_EVERY."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pytest_mock import MockerFixture

from agent.clock import FakeClock
from agent.core import tracefile
from agent.core.health import HealthMonitor, HealthSettings
from agent.core.tracefile import TraceFile, make_room
from agent.core.view import STORAGE_PROBE_EVERY
from agent.health.sample import COLUMNS
from agent.health.trace import read_trace
from tests.unit.test_console_view import view
from tests.unit.test_health_monitor import SIM, TRACES, modem_radio, trace_sampler


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_trace_stops_at_its_byte_cap(tmp_path: Path) -> None:
    trace = TraceFile(tmp_path / "t.csv", ["a", "b"], monotonic=Ticks(), max_bytes=200)
    written = 0
    while trace.write({"a": "x" * 10, "b": written}):
        written += 1
    assert trace.ended == "size" and 0 < written < 20
    assert (tmp_path / "t.csv").stat().st_size <= 200
    assert not trace.write({"a": 1, "b": 2})  # closed for good


def test_a_trace_ends_by_itself_after_its_time(tmp_path: Path) -> None:
    ticks = Ticks()
    trace = TraceFile(tmp_path / "t.csv", ["a"], monotonic=ticks, max_seconds=60)
    assert trace.write({"a": 1})
    ticks.t = 60
    assert not trace.write({"a": 2}) and trace.ended == "time"
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a", "1"]


def test_starting_a_trace_keeps_at_most_a_few(tmp_path: Path) -> None:
    for i in range(6):
        make_room(tmp_path)
        (tmp_path / f"trace-2026010{i}-000000.csv").write_text("t\n")
    assert len(list(tmp_path.glob("trace-*.csv"))) == tracefile.CONSOLE_KEEP
    assert (tmp_path / "trace-20260105-000000.csv").exists()  # the newest stay


def test_the_consoles_trace_is_bounded_end_to_end(tmp_path: Path, monkeypatch: Any, mocker: MockerFixture) -> None:
    """``trace start`` through the view into the real health task: bounded, rotated, ended."""
    monkeypatch.setattr(tracefile, "CONSOLE_MAX_BYTES", 2000)
    clock = FakeClock()
    samples = read_trace(TRACES / "police128_bulk.csv")

    async def emit(kind: str, data: dict[str, Any]) -> None:
        pass

    monitor = HealthMonitor(HealthSettings(wan="wan0", lan="lan0", state_dir=tmp_path), radio=modem_radio(mocker),
                            active_sim=lambda: SIM, emit=emit, clock=clock, sampler=trace_sampler(mocker, samples))
    (tmp_path / "traces").mkdir()
    for i in range(5):
        (tmp_path / "traces" / f"trace-2025010{i}-000000.csv").write_text("t\n")
    v = view(tmp_path, health=monitor)

    async def go() -> dict[str, Any]:
        started = await v.trace("start")
        for s in samples[:200]:
            await monitor.step(s.t)
            clock.advance(1.0)
        return started

    started = asyncio.run(go())
    path = Path(started["file"])
    assert started["stops_after_bytes"] == 2000 and started["traces_kept"] == tracefile.CONSOLE_KEEP
    assert path.read_text().startswith(",".join(COLUMNS[:1])) and path.stat().st_size <= 2000
    assert monitor._trace is None  # it ended by itself
    assert len(list((tmp_path / "traces").glob("trace-*.csv"))) == tracefile.CONSOLE_KEEP
    v.close()


def test_selftest_writes_to_flash_at_most_once_per_interval(tmp_path: Path, monkeypatch: Any) -> None:
    from agent import store

    writes: list[Path] = []
    real = store.atomic_write
    def counted(path: Path, data: bytes, **kw: Any) -> None:
        writes.append(Path(path))
        real(path, data, **kw)

    monkeypatch.setattr(store, "atomic_write", counted)
    v = view(tmp_path)
    first = asyncio.run(v._t_storage())
    again = [asyncio.run(v._t_storage()) for _ in range(20)]
    assert first == (True, f"{tmp_path} writable") and len(writes) == 1
    assert all(ok and "checked" in detail for ok, detail in again)
    assert STORAGE_PROBE_EVERY >= 60
    v.close()

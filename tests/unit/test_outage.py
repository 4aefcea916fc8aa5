"""Outage log: durable intervals with cause, across restarts, reported once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.errors import JournalError
from agent.health import outage as outage_mod
from agent.health.outage import OutageLog


def test_interval_has_start_end_cause_and_duration(tmp_path: Path) -> None:
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    start = clock.wall()
    ident = log.start("no_service", "reg_reject:#15 no suitable cells")
    assert log.start("no_service", "again") == ident  # idempotent while open
    clock.advance(95)
    report = log.end("no_service")
    assert report is not None
    assert report["start"] == start and report["end"] == start + 95
    assert report["duration_s"] == 95 and report["cause"].startswith("reg_reject:#15")
    assert report["wall_trusted"] is True
    assert log.unreported() == [report]


def test_survives_restart_and_is_reported_once(tmp_path: Path) -> None:
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    a = log.start("no_data", "pdp_reject:#33")
    clock.advance(10)
    log.end("no_data")
    b = log.start("no_service", "no_signal")
    clock.advance(5)
    log.end("no_service")
    again = OutageLog(tmp_path, clock)
    assert [r["id"] for r in again.unreported()] == [a, b]
    again.mark_reported([a])
    third = OutageLog(tmp_path, clock)
    assert [r["id"] for r in third.unreported()] == [b]
    third.mark_reported([b, 999])
    assert OutageLog(tmp_path, clock).unreported() == []


def test_open_at_power_loss_is_closed_at_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    OutageLog(tmp_path, clock).start("no_service", "no_signal")
    clock.advance(3600)  # the router was off; the next boot comes up with service
    rep = OutageLog(tmp_path, clock).unreported()
    assert len(rep) == 1 and rep[0]["end_at_restart"] is True
    assert rep[0]["duration_s"] == 3600  # both wall ends trusted


def test_untrusted_wall_clock_is_flagged_and_start_derived(tmp_path: Path) -> None:
    clock = FakeClock(epoch=1000.0)  # RTC-less boot: 1970
    log = OutageLog(tmp_path, clock)
    log.start("no_service", "no_signal")
    clock.advance(40)
    clock.epoch = 1_767_225_600.0  # NITZ/NTP set the clock during the outage
    clock.advance(20)
    rep = log.end("no_service")
    assert rep is not None
    assert rep["duration_s"] == 60
    assert rep["start_derived"] is True and rep["start"] == rep["end"] - 60
    assert rep["wall_trusted"] is True
    clock2 = FakeClock(epoch=500.0)
    log2 = OutageLog(tmp_path / "b", clock2)
    log2.start("no_data", "x")
    clock2.advance(5)
    assert log2.end("no_data")["wall_trusted"] is False  # type: ignore[index]


def test_torn_tail_loses_only_the_torn_event(tmp_path: Path) -> None:
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    log.start("no_data", "pdp_reject:#27")
    clock.advance(7)
    log.end("no_data")
    path = tmp_path / outage_mod.LOG_NAME
    with open(path, "ab") as fh:
        fh.write(b"\xa7\x5e\x00\x00\x00\x40garbage")
    rep = OutageLog(tmp_path, clock).unreported()
    assert len(rep) == 1 and rep[0]["duration_s"] == 7


def test_compaction_keeps_unreported_and_ids_grow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage_mod, "COMPACT_AFTER_RECORDS", 10)
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    ids = []
    for _ in range(6):
        ids.append(log.start("no_data", "x"))
        clock.advance(1)
        log.end("no_data")
    log.mark_reported(ids[:5])  # 6*2 + 1 events >= 10: compacts
    size = (tmp_path / outage_mod.LOG_NAME).stat().st_size
    assert size < 600
    again = OutageLog(tmp_path, clock)
    assert [r["id"] for r in again.unreported()] == [ids[5]]
    assert again.start("no_service", "y") > ids[5]
    assert os.stat(tmp_path / outage_mod.LOG_NAME).st_mode & 0o077 == 0


def test_unknown_kind_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError):
        OutageLog(tmp_path, FakeClock()).start("meteor", "x")


def test_a_carrier_outage_keeps_its_plmn_cell_and_evidence(tmp_path: Path) -> None:
    """Issue 23: where and on what, kept through a restart and a compaction, and added to
    an outage the healer opened first without changing its cause."""
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    log.start("no_service", "not_registered: searching")
    detail = {"plmn": "44020", "cell": 27447297, "evidence": {"cause": "not_registered"}}
    log.amend_detail("no_service", detail)
    log.amend_detail("no_service", {"plmn": "44010"})  # a verdict on the SIM escaped to: not this outage's
    clock.advance(30)
    report = log.end("no_service")
    assert report is not None and report["cause"] == "not_registered: searching" and report["detail"] == detail
    again = OutageLog(tmp_path, clock)
    assert again.unreported()[0]["detail"] == detail
    again.compact()
    assert OutageLog(tmp_path, clock).unreported()[0]["detail"] == detail
    ident = again.start("no_service", "blackhole", detail={"plmn": "44010"})
    assert again.open_interval("no_service") == {**again.open_interval("no_service"), "id": ident,  # type: ignore[dict-item]
                                                 "detail": {"plmn": "44010"}}

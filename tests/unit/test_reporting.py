"""Usage goes upstream when there is usage worth a message, or as a heartbeat; the gate
offers the journal's records to the cloud link only while a report is open."""

from __future__ import annotations

from pathlib import Path

from agent.clock import FakeClock
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageDelta
from agent.usage.reporting import ReportGate, ReportPolicy, report_due

POLICY = ReportPolicy(min_interval_s=60, heartbeat_s=3600, min_bytes=256 * 1024)
"""Explicit values: the rules, not the defaults, are under test here."""


def test_report_due_rules() -> None:
    def due(since: float, nbytes: int, nrec: int = 1) -> str | None:
        return report_due(now=10_000.0, last=10_000.0 - since, pending_bytes=nbytes, pending_records=nrec,
                          policy=POLICY)

    assert due(5000, 0, nrec=0) is None  # nothing pending: nothing to send, ever
    assert due(30, 10 << 20) is None  # a lot of usage, but not twice a minute
    assert due(60, 300 * 1024) == "usage"
    assert due(600, 4000) is None  # only keep-alives' usage: wait for the heartbeat
    assert due(3600, 4000) == "heartbeat"
    assert report_due(now=1.0, last=None, pending_bytes=1, pending_records=1, policy=POLICY) == "heartbeat"


class Usage:
    """The real ``UsageJournal`` (cheap: a file in tmp_path), fed one record per ``add``:
    the gate is tested against the journal it fronts, not a stand-in that could drift."""

    def __init__(self, path: Path, clock: FakeClock):
        self.clock = clock
        self.journal = UsageJournal(path, clock=clock, flush_interval_s=0)  # every add is one record
        self.counted = 0

    def add(self, seq: int, nbytes: int) -> None:
        """One record of ``nbytes`` received; it must be the journal's ``seq``."""
        wall = self.clock.wall()
        self.counted += nbytes
        delta = UsageDelta("8981000000000000001", "440100000000001", "440", "2026-01-01", "2026-01", "+09:00",
                           wall - 1, wall, nbytes, 0)
        self.journal.add([delta], Counters(3, self.counted, 0, 0, 0, boot_id="b"), wall)
        assert self.journal.pending(10_000)[-1][0] == seq


def test_gate_offers_records_only_while_a_report_is_open(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Usage(tmp_path / "usage.log", clock)
    gate = ReportGate(journal.journal, clock, POLICY)
    journal.add(1, 3000)  # an idle minute's keep-alives
    clock.advance(600)
    assert gate.due() is None and gate.pending(10) == []  # the link's own drains see nothing
    clock.advance(3000)
    assert gate.due() == "heartbeat" and [s for s, _ in gate.pending(10)] == [1]
    journal.add(2, 1000)
    assert [s for s, _ in gate.pending(10)] == [1, 2]  # stays open until all is acked
    gate.ack(2)
    assert gate.pending(10) == [] and gate.due() is None  # closed again
    journal.add(3, 5 << 20)  # a user downloads 5 MB
    clock.advance(61)
    assert gate.due() == "usage" and gate.pending(10)
    gate.ack(3)
    gate.pending(10)
    journal.add(4, 10)
    gate.open_now("request")  # the cloud asked: at once
    assert [s for s, _ in gate.pending(10)] == [4] and gate.reports == 3

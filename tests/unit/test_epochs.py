"""Sequence epochs (agent/epochs.py, issue 20 finding 8) in the usage journal and the
event outbox: a log that loses its history begins a new epoch, records keep the epoch
they were numbered in, and an ack counts only for its own epoch."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from agent.clock import JST, FakeClock
from agent.cloud.outbox import EpochSource, Outbox
from agent.epochs import LEGACY, Epochs, Segment
from agent.recordlog import RecordLog
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter

ICCID, IMSI = "8981000000000000001", "440101234567890"


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_ack_limits_keep_each_epoch_to_its_own_records() -> None:
    epochs = Epochs([Segment(1, "old"), Segment(6, "new")])
    assert epochs.of(5) == Segment(1, "old") and epochs.of(6) == Segment(6, "new")
    # the cloud's mark for the old epoch is far above: it covers the old records only
    assert epochs.ack_limit("old", 900, lowest_pending=3, next_seq=9) == 5
    # a new-epoch ack while old records are pending would forget them with a cumulative ack
    assert epochs.ack_limit("new", 7, lowest_pending=3, next_seq=9) is None
    assert epochs.ack_limit("new", 7, lowest_pending=6, next_seq=9) == 7
    assert epochs.ack_limit("gone", 7, lowest_pending=6, next_seq=9) is None
    assert epochs.ack_limit(LEGACY, 7, lowest_pending=6, next_seq=9) is None
    legacy_then_new = Epochs([Segment(4, "new")])  # a file from before epochs, cut mid-way
    assert legacy_then_new.of(2).epoch == LEGACY
    assert legacy_then_new.ack_limit(LEGACY, 50, lowest_pending=2, next_seq=8) == 3
    assert [s.epoch for s in legacy_then_new.needed(2)] == ["new"] and legacy_then_new.needed(None)[0].epoch == "new"


def test_an_outbox_that_loses_its_first_frame_begins_a_new_epoch(tmp_path: Path) -> None:
    path = tmp_path / "events.outbox"
    box = Outbox(path, "event")
    assert isinstance(box, EpochSource)
    first, _ = box.epoch_of(1)
    for i in range(5):
        box.put({"i": i})
    box.ack_epoch(5, first)
    flip(path, 0)
    again = Outbox(path, "event")
    epoch, start = again.epoch_of(again.put({"i": "after"}))
    assert (epoch, start) != (first, 1) and start == 1, "numbered from 1 again, in a new epoch"
    again.ack_epoch(900, first)  # a late ack of the old life: forgets nothing new
    assert len(again) == 1
    again.ack_epoch(1, epoch)
    assert len(again) == 0


def test_a_corrupt_middle_keeps_survivors_in_their_epoch_and_numbers_on(tmp_path: Path) -> None:
    path = tmp_path / "events.outbox"
    box = Outbox(path, "event")
    first, _ = box.epoch_of(1)
    for i in range(4):
        box.put({"i": i})
    sizes = [len(r) for r in RecordLog(path).records]
    flip(path, sum(10 + n for n in sizes[:3]) + 12)  # inside record 3's payload: records 3, 4 lost
    again = Outbox(path, "event")
    seq = again.put({"i": "new"})
    assert [s for s, _ in again.pending(10)] == [1, 2, seq] and seq == 3
    assert again.epoch_of(1) == (first, 1) and again.epoch_of(3)[0] != first
    again.ack_epoch(4, first)  # the cloud held 1..4 of the first epoch
    assert [s for s, _ in again.pending(10)] == [3]
    again.compact()
    assert Outbox(path, "event").epoch_of(3) == again.epoch_of(3)


def test_a_file_from_before_epochs_is_the_legacy_epoch(tmp_path: Path) -> None:
    path = tmp_path / "events.outbox"
    log = RecordLog(path)
    for seq in (1, 2):
        log.append(json.dumps({"seq": seq, "body": {"n": seq}}).encode())
    log.flush()
    box = Outbox(path, "event")
    assert box.epoch_of(2) == (LEGACY, 1)
    box.ack_epoch(1, LEGACY)  # an ack without an epoch field
    assert [s for s, _ in box.pending(10)] == [2]


def drive(journal: UsageJournal, clock: FakeClock, seconds: int, rx: int = 0) -> int:
    meter = UsageMeter(clock, header_bytes=0, boot_id="b")
    meter.set_active_sim(ICCID, IMSI, "440")
    meter.sample(Counters(3, rx, 0, 0, 0, boot_id="b"))
    journal.add([], meter.baseline(), meter.baseline_wall())
    for _ in range(seconds):
        clock.advance(1)
        rx += 100
        journal.add(meter.sample(Counters(3, rx, 0, 0, 0, boot_id="b")), meter.baseline(), meter.baseline_wall())
    return rx


def test_a_journal_reset_by_its_first_frame_numbers_in_a_new_epoch_and_survives_compaction(tmp_path: Path) -> None:
    clock = FakeClock(epoch=datetime(2026, 3, 1, 12, tzinfo=JST).timestamp())
    path = tmp_path / "usage.journal"
    journal = UsageJournal(path, clock=clock, flush_interval_s=1)
    drive(journal, clock, 5)
    old = journal.epoch_of(1)[0]
    journal.ack_epoch(journal.pending(100)[-1][0], old)
    flip(path, 0)
    again = UsageJournal(path, clock=clock, flush_interval_s=1, compact_at_bytes=0)
    drive(again, clock, 3)
    pending = again.pending(100)
    assert pending[0][0] == 1 and again.epoch_of(1)[0] not in (old, LEGACY)
    again.ack_epoch(10**6, old)  # the cloud's old mark: ignored
    assert again.pending(100) == pending
    new = again.epoch_of(1)[0]
    again.ack_epoch(pending[0][0], new)  # compacts (compact_at_bytes=0): the epoch must survive it
    reopened = UsageJournal(path, clock=clock)
    assert reopened.epoch_of(pending[1][0])[0] == new and reopened.pending(100) == pending[1:]

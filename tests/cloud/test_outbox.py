"""Outbox: durable, ordered, bounded; acked records go, unacked survive restarts and torn tails."""

from __future__ import annotations

import os
from pathlib import Path

from agent.cloud.outbox import Outbox, ReliableSource


def test_is_a_reliable_source(tmp_path: Path) -> None:
    assert isinstance(Outbox(tmp_path / "o", "event"), ReliableSource)


def test_put_pending_ack_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o", "event")
    seqs = [box.put({"n": i}) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert box.pending(2) == [(1, {"n": 0}), (2, {"n": 1})]
    box.ack(3)
    assert [s for s, _ in box.pending(10)] == [4, 5]
    box.ack(2)  # an old, smaller ack changes nothing
    assert [s for s, _ in box.pending(10)] == [4, 5]


def test_survives_restart_without_reusing_sequence_numbers(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o", "event")
    for i in range(4):
        box.put({"n": i})
    box.ack(2)
    again = Outbox(tmp_path / "o", "event")
    assert [s for s, _ in again.pending(10)] == [3, 4]
    assert again.put({"n": 9}) == 5
    again.ack(5)
    third = Outbox(tmp_path / "o", "event")
    assert third.pending(10) == [] and third.put({}) == 6


def test_torn_tail_loses_only_the_torn_record(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o", "usage")
    for i in range(3):
        box.put({"n": i})
    size = (tmp_path / "o").stat().st_size
    with open(tmp_path / "o", "r+b") as f:  # power cut in the middle of the third record
        f.truncate(size - 5)
    again = Outbox(tmp_path / "o", "usage")
    assert [s for s, _ in again.pending(10)] == [1, 2]
    assert again.put({"n": 3}) == 3


def test_compaction_bounds_the_file_and_keeps_state(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o", "event", compact_after=10)
    for i in range(30):
        box.put({"n": i, "pad": "x" * 50})
        box.ack(box.next_seq - 1)
    size = (tmp_path / "o").stat().st_size
    assert size < 30 * 60  # far smaller than 30 records: compacted
    box.put({"n": "last"})
    again = Outbox(tmp_path / "o", "event")
    assert again.pending(10) == [(31, {"n": "last"})]
    assert os.stat(tmp_path / "o").st_mode & 0o777 == 0o600


def test_full_outbox_drops_oldest_and_says_so(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o", "event", max_records=3)
    for i in range(5):
        box.put({"n": i})
    assert [s for s, _ in box.pending(10)] == [3, 4, 5]
    assert box.dropped == 2
    again = Outbox(tmp_path / "o", "event", max_records=3)
    assert [s for s, _ in again.pending(10)] == [3, 4, 5]

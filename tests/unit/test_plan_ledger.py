"""What the allowance ledger keeps across restarts, a new journal, and its own compactions
(issue 22; issue 29's mutation run on agent/plans/ledger.py).

The ledger's sums are held to a brute-force oracle in test_plan_allowance.py; these are its
life on flash: the seq it resumes from decides which journal records a restart counts again
(too high and bytes are lost: a swap comes late; too low and they count twice), a compaction
forgets only what no rule can count any more, and a commit with nothing new writes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from agent.plans.ledger import BUCKET_S, KEEP_BUCKET_S, KEEP_DAYS, AllowanceLedger
from agent.recordlog import RecordLog
from agent.usage import calendar

ICCID = "8981100000001000019"
OTHER = "8981100000001000027"
DAY = "2026-05-10"
T0 = 1_778_371_200.0
"""2026-05-10 09:00 JST: a bucket boundary (a multiple of BUCKET_S)."""


def body(seq: int, rx: int, tx: int = 0) -> tuple[int, dict[str, Any]]:
    """A journal record as ``UsageJournal.bodies_after`` gives it."""
    start = T0 + seq * 60
    return seq, {"iccid": ICCID, "day": DAY, "start": calendar.iso(start), "end": calendar.iso(start + 60),
                 "rx_bytes": rx, "tx_bytes": tx}


def start_like_metering(path: Path, journal_durable_seq: int, journal: list[tuple[int, dict[str, Any]]]) -> AllowanceLedger:
    """agent/core/metering.py ``Metering.open``: reload, follow the journal, catch up."""
    ledger = AllowanceLedger(path)
    ledger.rebase(journal_durable_seq)
    ledger.catch_up([(s, b) for s, b in journal if ledger.seq < s <= journal_durable_seq])
    return ledger


def test_a_crash_under_a_new_journal_still_catches_up_the_lost_records(tmp_path: Path) -> None:
    """The journal starts its seqs again (a new epoch), the ledger follows; later a crash
    falls between a journal flush and the ledger's commit. The restart must count the
    journal's records the ledger missed, not take the old journal's higher seq for its own
    (the bug this caught: the rebase record was replayed as a maximum, and seqs 11 and 12
    were never counted)."""
    path = tmp_path / "a.ledger"
    ledger = AllowanceLedger(path)
    ledger.add(ICCID, DAY, T0 - 600, T0 - 540, 5_000, 50)
    ledger.commit(50)
    ledger.rebase(0)  # the start with a new journal
    journal = [body(seq, 100 * seq) for seq in range(1, 13)]
    for seq, b in journal[:10]:
        ledger.catch_up([(seq, b)])  # the meter's adds and the commits after each flush
    assert ledger.seq == 10
    # crash: the journal made 11 and 12 durable, the ledger did not commit them
    again = start_like_metering(path, 12, journal)
    assert again.seq == 12
    assert again.used_on_days(ICCID, DAY, DAY) == (5_000 + sum(100 * s for s in range(1, 13)), 50)
    assert AllowanceLedger(path).used_on_days(ICCID, DAY, DAY) == again.used_on_days(ICCID, DAY, DAY)


def test_a_rebase_is_durable_and_the_new_journals_records_count(tmp_path: Path) -> None:
    path = tmp_path / "r.ledger"
    ledger = AllowanceLedger(path)
    ledger.add(ICCID, DAY, T0, T0 + 60, 1_000, 0)
    ledger.commit(40)
    ledger.rebase(3)
    assert ledger.seq == 3
    reloaded = AllowanceLedger(path)
    assert reloaded.seq == 3 and reloaded.skipped_records == 0
    assert reloaded.catch_up([body(3, 7), body(4, 11), body(5, 13)]) == 2
    assert AllowanceLedger(path).used_on_days(ICCID, DAY, DAY) == (1_024, 0)


def test_a_rebase_onto_the_same_or_a_later_seq_changes_nothing(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "s.ledger")
    ledger.add(ICCID, DAY, T0, T0 + 60, 1_000, 0)
    ledger.commit(7)
    written = ledger.bytes_written
    ledger.rebase(7)
    ledger.rebase(9)
    assert ledger.seq == 7 and ledger.bytes_written == written


def test_catch_up_counts_each_record_after_the_ledgers_seq_once(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "c.ledger")
    ledger.commit(2)
    assert ledger.catch_up([body(1, 1), body(2, 2), body(3, 4), body(4, 8), body(5, 16)]) == 3
    assert ledger.used_on_days(ICCID, DAY, DAY) == (28, 0) and ledger.seq == 5
    assert ledger.catch_up([body(5, 16)]) == 0


def test_a_commit_with_nothing_new_writes_nothing(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "n.ledger")
    ledger.add(ICCID, DAY, T0, T0 + 60, 1_000, 10)
    ledger.commit(5)
    written = ledger.bytes_written
    ledger.commit(5)
    ledger.commit(4)
    assert ledger.bytes_written == written


def test_what_a_commit_makes_durable(tmp_path: Path) -> None:
    """A journal flush with no new bytes still moves the durable seq (else a restart would
    count that flush's records again); bytes added after the journal's last flush are made
    durable by a commit at the same seq."""
    path = tmp_path / "d.ledger"
    ledger = AllowanceLedger(path)
    ledger.commit(5)
    assert AllowanceLedger(path).seq == 5
    ledger.add(ICCID, DAY, T0, T0 + 60, 300, 30)
    ledger.commit(5)
    reloaded = AllowanceLedger(path)
    assert (reloaded.seq, reloaded.used_on_days(ICCID, DAY, DAY)) == (5, (300, 30))


def test_the_file_is_compacted_once_it_passes_its_bound_and_not_before(tmp_path: Path) -> None:
    """Each commit appends one record; the commit whose record takes the file past its
    bound rewrites it as its state, and no other does (flash wear: a rewrite per commit
    would write the whole state each minute)."""
    path = tmp_path / "b.ledger"
    bound = 2048
    ledger = AllowanceLedger(path, compact_at_bytes=bound)
    rewrites = 0
    for i in range(300):
        before, written = (path.stat().st_size if path.exists() else 0), ledger.bytes_written
        ledger.add(ICCID, DAY, T0 + (i % 3) * BUCKET_S, T0 + (i % 3) * BUCKET_S + 1, i + 1, 1)  # state: 3 buckets
        ledger.commit(i + 1)
        size, wrote = path.stat().st_size, ledger.bytes_written - written
        assert size <= bound
        if wrote != size - before:  # more written than the file grew: it was rewritten
            rewrites += 1
            record = wrote - size
            assert before + record > bound, f"commit {i + 1} rewrote a file that stayed within its bound"
    assert 0 < rewrites < 30
    reloaded = AllowanceLedger(path)
    assert reloaded.used_on_days(ICCID, DAY, DAY) == (sum(range(1, 301)), 300) and reloaded.seq == 300


def test_a_compaction_forgets_only_what_no_rule_can_count(tmp_path: Path) -> None:
    """Buckets older than the longest rolling window (plus one bucket) and days older than
    KEEP_DAYS go; the oldest bucket and day still inside are kept, to the byte; a SIM with
    nothing left inside is forgotten whole."""
    path = tmp_path / "p.ledger"
    ledger = AllowanceLedger(path)
    newest = T0 + 10 * BUCKET_S
    oldest_kept = int((newest - KEEP_BUCKET_S) // BUCKET_S) * BUCKET_S
    first_day = (date.fromisoformat(DAY) - timedelta(days=KEEP_DAYS)).isoformat()
    day_before = (date.fromisoformat(DAY) - timedelta(days=KEEP_DAYS + 1)).isoformat()
    ledger.add(ICCID, DAY, newest - 60, newest, 1, 0)
    ledger.add(ICCID, DAY, oldest_kept, oldest_kept + 1, 10, 0)       # the oldest bucket kept
    ledger.add(ICCID, DAY, oldest_kept - 2, oldest_kept - 1, 100, 0)  # one bucket older: gone
    ledger.add(ICCID, first_day, newest - 60, newest, 1_000, 0)       # the oldest day kept
    ledger.add(ICCID, day_before, newest - 60, newest, 10_000, 0)     # one day older: gone
    ledger.add(OTHER, day_before, oldest_kept - 2, oldest_kept - 1, 7, 0)
    ledger.commit(1)
    ledger.compact()
    for view in (ledger, AllowanceLedger(path)):
        assert [(b.rx, b.end) for b in view.bucket_list(ICCID)] == [(10, oldest_kept + 1), (11_001, newest)]
        assert view.used_on_days(ICCID, "2000-01-01", "2099-12-31") == (1_111, 0)
        assert view.used_on_days(ICCID, first_day, first_day) == (1_000, 0)
        assert OTHER not in view.buckets and OTHER not in view.days
        assert view.bucket_list(OTHER) == [] and view.used_since(OTHER, 0) == (0, 0)
        assert view.seq == 1


def test_a_new_ledger_counts_the_journals_first_record(tmp_path: Path) -> None:
    """A new ledger is at seq 0: the journal's record 1 is one it has not counted."""
    ledger = AllowanceLedger(tmp_path / "new.ledger")
    assert ledger.seq == 0
    assert ledger.catch_up([body(1, 500, 5)]) == 1 and ledger.used_on_days(ICCID, DAY, DAY) == (500, 5)


def test_a_delta_with_a_negative_direction_is_not_counted(tmp_path: Path) -> None:
    ledger = AllowanceLedger(tmp_path / "neg.ledger")
    ledger.add(ICCID, DAY, T0, T0 + 60, 500, -1)
    ledger.add(ICCID, DAY, T0, T0 + 60, -1, 500)
    ledger.add(ICCID, DAY, T0, T0 + 60, 0, 0)
    assert ledger.used_on_days(ICCID, DAY, DAY) == (0, 0) and ledger.bucket_list(ICCID) == []
    ledger.add(ICCID, DAY, T0, T0 + 60, 0, 7)
    assert ledger.used_on_days(ICCID, DAY, DAY) == (0, 7)


def test_unreadable_records_are_skipped_and_counted_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "bad.ledger"
    ledger = AllowanceLedger(path)
    ledger.add(ICCID, DAY, T0, T0 + 60, 100, 1)
    ledger.commit(1)
    other_writer = RecordLog(path)  # a later version's records, then a torn day field
    other_writer.append(b'["Q", 2]')
    other_writer.append(b'["A", 3, [["x", "not a day", 0, 0, 0, 1, 1]]]')
    other_writer.flush()
    ledger = AllowanceLedger(path)
    assert ledger.skipped_records == 2
    ledger.add(ICCID, DAY, T0 + 60, T0 + 120, 20, 2)
    ledger.commit(4)
    reloaded = AllowanceLedger(path)
    assert reloaded.skipped_records == 2
    assert (reloaded.seq, reloaded.used_on_days(ICCID, DAY, DAY)) == (4, (120, 3))


def test_a_bucket_ending_at_the_windows_trailing_edge_is_outside_it(tmp_path: Path) -> None:
    """A rolling window at ``now`` is (now - N h, now]: bytes that ended exactly N hours ago
    have aged out."""
    ledger = AllowanceLedger(tmp_path / "edge.ledger")
    ledger.add(ICCID, DAY, T0 + 1, T0 + 2, 300, 0)
    assert ledger.used_since(ICCID, T0 + 2) == (0, 0)
    assert ledger.used_since(ICCID, T0 + 1.999) == (300, 0)

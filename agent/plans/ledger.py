"""The allowance ledger: bytes each SIM used, per plan day and in short buckets, durable.

Why a ledger beside the usage journal: the journal forgets a record once the cloud has
acknowledged it, and a 72-hour rule needs the last 72 hours whatever the cloud holds.
The ledger is fed the same deltas as the journal (one per sample, cut at the plan zone's
midnight by the meter) and made durable at the same moments: after each journal flush
the supervisor's metering calls ``commit(seq)`` with the journal's durable seq, so what
the ledger holds on disk is what the journal holds, record for record. A crash between
the two writes is caught up on the next start from the journal's records after the
ledger's seq (``catch_up``): the allowance is *computed from the journal*, and survives
restarts and power cuts exactly as the journal's bytes do.

Two views, each exact where its rules need it:
- **per day** ``{iccid: {day: [rx, tx]}}``: exact (a delta never crosses the plan zone's
  midnight), kept ``KEEP_DAYS`` days; month and day rules sum these;
- **per bucket** of ``BUCKET_S`` seconds: ``[start, end, rx, tx]`` of the deltas whose
  end falls in the bucket, kept ``MAX_ROLLING_HOURS``; rolling rules sum the buckets
  that end inside the window. A bucket straddling the window's trailing edge is counted
  whole, so the device's rolling sum is never below its own deltas that end inside the
  window, and above them by at most the bytes of deltas that ended in the ``BUCKET_S``
  before the edge. Against the carrier (which counts a burst when it reads its counters)
  the one delta that straddles the edge may fall either side. The error is on the safe
  side: the device swaps early, never late. (tests/unit/test_plan_carrier.py holds the
  device to the lab carrier's count within exactly these bounds.)

Records (compact JSON arrays in an ``agent.recordlog.RecordLog``, like the journal):
* ``["A", seq, [[iccid, day, bucket, start_ms, end_ms, rx, tx], ...]]``: bytes added to
  both views; ``seq`` is the journal's durable seq they were committed with;
* ``["S", seq]``: the seq from here on (a compaction's state, or a ``rebase`` onto a
  journal that numbers from 1 again: replayed as stated, never as a maximum);
* ``["T", [[iccid, day, rx, tx], ...]]``, ``["R", [[iccid, bucket, start_ms, end_ms, rx,
  tx], ...]]``: day totals and buckets after compaction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from agent.errors import JournalError
from agent.plans.rules import MAX_ROLLING_HOURS
from agent.recordlog import RecordLog

LOGGER = logging.getLogger(__name__)

BUCKET_S = 600
"""Ten-minute buckets: at most 1,008 a week per SIM (a compacted ledger of a busy week is
~60 KB), and a rolling sum that is off by at most ten minutes of traffic at its edge:
at the 100 MB / 3 days plan's own pace (~1.4 kB a minute) that is ~14 kB, 0.014 % of its cap."""
KEEP_DAYS = 100
"""Day totals for the current and three previous months: a top-up is valid to the end
of the third month (domain.md), and its consumption is computed month by month."""
KEEP_BUCKET_S = MAX_ROLLING_HOURS * 3600 + BUCKET_S
COMPACT_AT_BYTES = 128 << 10
"""Rewrite once the file passes 128 KiB: one ~80-byte record a minute makes that every
day or so, and the rewrite holds only the kept days and buckets."""


@dataclass
class Bucket:
    start: float
    end: float
    rx: int = 0
    tx: int = 0


class AllowanceLedger:
    """Per-SIM usage by day and by bucket; one writer (this object) per file."""

    def __init__(self, path: Path | str, *, compact_at_bytes: int = COMPACT_AT_BYTES):
        self.days: dict[str, dict[str, list[int]]] = {}
        self.buckets: dict[str, dict[int, Bucket]] = {}
        self.seq = 0
        """The journal's durable seq the ledger's durable bytes go up to."""
        self._pending: list[list[Any]] = []
        self._compact_at = compact_at_bytes
        self.skipped_records = 0
        self._log = RecordLog(path)
        for payload in self._log.records:
            try:
                self._apply(json.loads(payload))
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                self.skipped_records += 1
                LOGGER.error("allowance ledger: skipping unreadable record %r: %s", payload[:120], exc)

    # -- reading back -------------------------------------------------------------------
    def _apply(self, rec: list[Any]) -> None:
        kind = rec[0]
        if kind == "A":
            for iccid, day, bucket, start_ms, end_ms, rx, tx in rec[2]:
                self._add(str(iccid), str(day), int(bucket), start_ms / 1000, end_ms / 1000, int(rx), int(tx))
            self.seq = max(self.seq, int(rec[1]))
        elif kind == "S":
            # The seq from here on, as stated: a compaction's first record, or a rebase onto
            # a journal that started its seqs again (lower than the records before it).
            self.seq = int(rec[1])
        elif kind == "T":
            for iccid, day, rx, tx in rec[1]:
                self._add_day(str(iccid), str(day), int(rx), int(tx))
        elif kind == "R":
            for iccid, bucket, start_ms, end_ms, rx, tx in rec[1]:
                self._add_bucket(str(iccid), int(bucket), start_ms / 1000, end_ms / 1000, int(rx), int(tx))
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def _add_day(self, iccid: str, day: str, rx: int, tx: int) -> None:
        date.fromisoformat(day)  # a day that does not parse is an unreadable record
        per = self.days.setdefault(iccid, {}).setdefault(day, [0, 0])
        per[0] += rx
        per[1] += tx

    def _add_bucket(self, iccid: str, bucket: int, start: float, end: float, rx: int, tx: int) -> None:
        held = self.buckets.setdefault(iccid, {}).get(bucket)
        if held is None:
            self.buckets[iccid][bucket] = Bucket(start, end, rx, tx)
            return
        held.start, held.end = min(held.start, start), max(held.end, end)
        held.rx += rx
        held.tx += tx

    def _add(self, iccid: str, day: str, bucket: int, start: float, end: float, rx: int, tx: int) -> None:
        self._add_day(iccid, day, rx, tx)
        self._add_bucket(iccid, bucket, start, end, rx, tx)

    # -- the meter's side ----------------------------------------------------------------
    def add(self, iccid: str, day: str, start: float, end: float, rx: int, tx: int) -> None:
        """Bytes moved by ``iccid`` in ``[start, end]`` (wall seconds) on plan day ``day``:
        counted at once (the policy sees them), durable at the next ``commit``."""
        if rx < 0 or tx < 0 or rx + tx == 0:
            return
        start_ms, end_ms = round(start * 1000), round(end * 1000)  # what the record holds, here too
        # Bucketed by where the delta *ends*: a long delta (the bytes of a restart's gap, a
        # clock step) then cannot stretch a bucket over bytes that ended long before.
        bucket = int(end_ms / 1000 // BUCKET_S)
        self._add(iccid, day, bucket, start_ms / 1000, end_ms / 1000, rx, tx)
        self._pending.append([iccid, day, bucket, start_ms, end_ms, rx, tx])

    def commit(self, seq: int) -> None:
        """The journal made its records up to ``seq`` durable: so do we, in one append.
        A write error is logged and retried at the next commit (the bytes stay counted)."""
        if not self._pending and seq <= self.seq and not self._log.unflushed:
            return
        # Queued once: a failed write keeps the record queued in the log (not the
        # deltas here), so a retry can never count the same bytes twice.
        self._log.append(_dump(["A", seq, _merge(self._pending)]))
        self._pending.clear()
        self.seq = max(self.seq, seq)
        try:
            self._log.flush()
        except JournalError as exc:
            LOGGER.error("allowance ledger not written (queued, retried at the next commit): %s", exc)
            return
        self._maybe_compact()

    def catch_up(self, bodies: Iterable[tuple[int, dict[str, Any]]]) -> int:
        """Count the journal's records after ``seq`` that a crash kept from the ledger
        (``(seq, body)`` as the journal's ``pending`` gives them); returns how many."""
        caught = 0
        last = self.seq
        for seq, body in bodies:
            if seq <= self.seq:
                continue
            start = datetime.fromisoformat(body["start"]).timestamp()
            end = datetime.fromisoformat(body["end"]).timestamp()
            self.add(body["iccid"], body["day"], start, end, int(body["rx_bytes"]), int(body["tx_bytes"]))
            last = max(last, seq)
            caught += 1
        if caught:
            LOGGER.warning("allowance ledger: caught up %d journal records after seq %d", caught, self.seq)
            self.commit(last)
        return caught

    def rebase(self, journal_last_seq: int) -> None:
        """The journal starts its seqs again (a new file: agent/epochs.py): keep every
        byte counted, and follow the journal's numbering from here."""
        if journal_last_seq < self.seq:
            LOGGER.warning("allowance ledger: journal restarted at seq %d (ledger at %d): following it",
                           journal_last_seq, self.seq)
            self.seq = journal_last_seq
            self._log.append(_dump(["S", journal_last_seq]))
            self.commit(journal_last_seq)

    # -- sums ----------------------------------------------------------------------------
    def used_on_days(self, iccid: str, first: str, last: str) -> tuple[int, int]:
        """(rx, tx) on plan days ``first``..``last`` inclusive ("YYYY-MM-DD")."""
        rx = tx = 0
        for day, (r, t) in self.days.get(iccid, {}).items():
            if first <= day <= last:
                rx += r
                tx += t
        return rx, tx

    def used_since(self, iccid: str, since: float, until: float | None = None) -> tuple[int, int]:
        """(rx, tx) of the buckets that end after ``since`` (and start at or before
        ``until``): a rolling window's sum, over-counted by at most one bucket at its edge."""
        rx = tx = 0
        for b in self.buckets.get(iccid, {}).values():
            if b.end > since and (until is None or b.start <= until):
                rx += b.rx
                tx += b.tx
        return rx, tx

    def bucket_list(self, iccid: str) -> list[Bucket]:
        """The SIM's buckets, oldest first (the allowance's "when does it drain")."""
        return [self.buckets[iccid][k] for k in sorted(self.buckets.get(iccid, {}))]

    # -- bounding the file -----------------------------------------------------------------
    def prune(self, now: float, today: str) -> None:
        """Forget buckets older than the longest rolling window and days older than KEEP_DAYS."""
        oldest_bucket = int((now - KEEP_BUCKET_S) // BUCKET_S)
        first_day = date.fromordinal(date.fromisoformat(today).toordinal() - KEEP_DAYS).isoformat()
        for iccid in list(self.buckets):
            self.buckets[iccid] = {k: b for k, b in self.buckets[iccid].items() if k >= oldest_bucket}
            if not self.buckets[iccid]:
                del self.buckets[iccid]
        for iccid in list(self.days):
            self.days[iccid] = {d: v for d, v in self.days[iccid].items() if d >= first_day}
            if not self.days[iccid]:
                del self.days[iccid]

    def _maybe_compact(self) -> None:
        try:
            size = os.path.getsize(self._log.path)
        except OSError:
            return
        if size > self._compact_at and not self._log.unflushed:
            self.compact()

    def compact(self) -> None:
        """Rewrite the file as its state (atomic: the old file or the new, never half)."""
        if self.buckets:
            newest = max(max(b.end for b in per.values()) for per in self.buckets.values() if per)
            newest_day = max(max(per) for per in self.days.values() if per) if self.days else None
            if newest_day:
                self.prune(newest, newest_day)
        keep = [_dump(["S", self.seq]),
                _dump(["T", [[i, d, v[0], v[1]] for i, per in self.days.items() for d, v in sorted(per.items())]]),
                _dump(["R", [[i, k, round(b.start * 1000), round(b.end * 1000), b.rx, b.tx]
                             for i, per in self.buckets.items() for k, b in sorted(per.items())]])]
        try:
            self._log.compact(keep)
        except JournalError as exc:
            LOGGER.error("allowance ledger not compacted: %s", exc)

    @property
    def bytes_written(self) -> int:
        return self._log.bytes_written


def _merge(pending: list[list[Any]]) -> list[list[Any]]:
    """One entry per (iccid, day, bucket): a minute of one-second deltas is one entry."""
    merged: dict[tuple[str, str, int], list[Any]] = {}
    for iccid, day, bucket, start_ms, end_ms, rx, tx in pending:
        held = merged.get((iccid, day, bucket))
        if held is None:
            merged[(iccid, day, bucket)] = [iccid, day, bucket, start_ms, end_ms, rx, tx]
            continue
        held[3], held[4] = min(held[3], start_ms), max(held[4], end_ms)
        held[5] += rx
        held[6] += tx
    return list(merged.values())


def _dump(rec: list[Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()

"""Durable, bounded, in-order outbox for everything the cloud must receive.

``ReliableSource`` is the contract the link drains: a stream of (seq, body) records,
each dropped only when the cloud's *application* acknowledgement says it was durably
ingested (pw/v1/<dev>/ack {"stream", "upto"}); the broker's PUBACK is not enough, since a
broker restart may lose what it held. The usage journal implements it for "usage";
``Outbox`` implements it for the link's own events.

On disk the outbox is one agent.recordlog.RecordLog of JSON records:
``{"seq": n, "body": {...}}`` for a record, ``{"ack": n}`` for an acknowledgement (or a
local drop) and ``{"epoch": id, "from": n}`` for the epoch the seqs from n on belong to
(agent/epochs.py). Replaying the log gives back the pending records and the next
sequence number after any crash or power loss; a torn tail loses only records whose
``put`` had not returned. A log that opens empty, or with a corrupt tail cut off, begins
a new epoch: records already sent may be gone, and the cloud must never take the new
ones for them (issue 20).

When full (``max_records`` pending) the *oldest* pending records are dropped, logged
and counted: for health and outage events the newest state matters most, and a
bounded flash budget matters more than a week-old event. The cloud sees the gap because
each published record carries ``base`` (the lowest sequence the device still holds).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agent.epochs import Epochs, Segment
from agent.errors import JournalError
from agent.recordlog import RecordLog

LOGGER = logging.getLogger(__name__)

MAX_RECORDS = 2000
"""Pending records kept: ~2000 events x ~300 bytes = 600 KB of flash, days of health
events at one per few minutes while the cloud is unreachable."""

COMPACT_AFTER = 500
"""Rewrite the log once this many acknowledged records sit in it: bounds the file at
roughly (MAX_RECORDS + COMPACT_AFTER) records while rewriting rarely (flash wear)."""


@runtime_checkable
class ReliableSource(Protocol):
    """What the cloud link drains. Sequence numbers are per stream, increasing, never reused."""

    stream: str

    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` unacknowledged records (seq, body), oldest first."""
        ...

    def ack(self, upto: int) -> None:
        """The cloud durably holds every record with seq <= ``upto``: forget them."""
        ...


@runtime_checkable
class EpochSource(ReliableSource, Protocol):
    """A ReliableSource whose seqs carry an epoch (agent/epochs.py; issue 20): the link
    sends each record's epoch, and an ack counts only for the epoch it names."""

    def epoch_of(self, seq: int) -> tuple[str, int]:
        """(epoch id, first seq of that epoch) of ``seq``."""
        ...

    def ack_epoch(self, upto: int, epoch: str) -> None:
        """The cloud durably holds every record of ``epoch`` with seq <= ``upto``."""
        ...


class Outbox:
    """A ReliableSource on a RecordLog. One writer: the agent's event loop."""

    def __init__(self, path: Path | str, stream: str, *, max_records: int = MAX_RECORDS,
                 compact_after: int = COMPACT_AFTER):
        self.stream = stream
        self.max_records = max_records
        self.compact_after = compact_after
        self.dropped = 0
        """Records dropped (oldest first) because the outbox was full, since start."""
        self._log = RecordLog(path)
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._acked = 0
        self._next = 1
        self._garbage = 0
        self._epochs = Epochs()
        self._replay()
        if self._log.dropped_tail or not self._log.records:
            self._begin_epoch(lost=bool(self._log.dropped_tail))

    def _replay(self) -> None:
        records: dict[int, dict[str, Any]] = {}
        for raw in self._log.records:
            try:
                rec = json.loads(raw)
            except ValueError:
                LOGGER.error("%s: undecodable record skipped (%d bytes)", self._log.path, len(raw))
                continue
            if "ack" in rec:
                self._acked = max(self._acked, int(rec["ack"]))
            elif "epoch" in rec:
                self._epochs.add(Segment(int(rec["from"]), str(rec["epoch"])))
            else:
                records[int(rec["seq"])] = rec["body"]
        self._pending = sorted((s, b) for s, b in records.items() if s > self._acked)
        self._garbage = len(records) - len(self._pending)
        top = max([self._acked, *records.keys()], default=0)
        self._next = top + 1

    def _begin_epoch(self, *, lost: bool) -> None:
        """A new epoch from the next seq, on disk before any record numbered in it."""
        seg = self._epochs.begin(self._next)
        LOGGER.log(logging.WARNING if lost else logging.INFO, "outbox %s: epoch %s from seq %d (%s)", self.stream,
                   seg.epoch, seg.start, "a corrupt tail was cut off" if lost else "new file")
        self._log.append(_epoch_record(seg))
        try:
            self._log.flush()
        except JournalError as exc:  # stays queued: written before the first record
            LOGGER.error("outbox %s: epoch not yet on disk: %s", self.stream, exc)

    def epoch_of(self, seq: int) -> tuple[str, int]:
        seg = self._epochs.of(seq)
        return seg.epoch, seg.start

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def next_seq(self) -> int:
        return self._next

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, body: dict[str, Any]) -> int:
        """Append ``body`` durably (fsync) and return its sequence number."""
        seq = self._next
        payload = json.dumps({"seq": seq, "body": body}, separators=(",", ":"), sort_keys=True).encode()
        self._log.append(payload)
        if len(self._pending) >= self.max_records:
            self._drop_oldest(len(self._pending) - self.max_records + 1)
        try:
            self._log.flush()
        except JournalError:
            self._log = RecordLog(self._log.path)  # forget the unflushed buffer; keep serving
            if self._epochs.segments and not any(_is_epoch(r, self._epochs.current) for r in self._log.records):
                self._log.append(_epoch_record(self._epochs.current))  # it was in that buffer
            raise
        self._next = seq + 1
        self._pending.append((seq, body))
        return seq

    def _drop_oldest(self, count: int) -> None:
        upto = self._pending[count - 1][0]
        self.dropped += count
        LOGGER.warning("outbox %s full (%d records): dropping %d oldest, up to seq %d",
                       self.stream, self.max_records, count, upto)
        self._mark_acked(upto)

    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return self._pending[:limit]

    def ack_epoch(self, upto: int, epoch: str) -> None:
        limit = self._epochs.ack_limit(epoch, upto, lowest_pending=self._pending[0][0] if self._pending else None,
                                       next_seq=self._next)
        if limit is None:
            LOGGER.info("outbox %s: ack %d of epoch %r ignored (not this log's, or an earlier epoch is pending)",
                        self.stream, upto, epoch)
            return
        self.ack(limit)

    def ack(self, upto: int) -> None:
        if upto <= self._acked:
            return
        self._mark_acked(upto)
        self._log.flush()
        if self._garbage >= self.compact_after:
            self.compact()

    def _mark_acked(self, upto: int) -> None:
        before = len(self._pending)
        self._pending = [(s, b) for s, b in self._pending if s > upto]
        self._garbage += before - len(self._pending)
        self._acked = max(self._acked, upto)
        self._log.append(json.dumps({"ack": self._acked}).encode())

    def compact(self) -> None:
        """Rewrite the log with only the pending records and the ack mark (atomic)."""
        self._log.flush()
        keep = [json.dumps({"ack": self._acked}).encode()]
        keep += [_epoch_record(seg) for seg in self._epochs.needed(self._pending[0][0] if self._pending else None)]
        keep += [json.dumps({"seq": s, "body": b}, separators=(",", ":"), sort_keys=True).encode()
                 for s, b in self._pending]
        self._log.compact(keep)
        self._garbage = 0


def _epoch_record(seg: Segment) -> bytes:
    return json.dumps({"epoch": seg.epoch, "from": seg.start}, sort_keys=True).encode()


def _is_epoch(raw: bytes, seg: Segment) -> bool:
    return raw == _epoch_record(seg)

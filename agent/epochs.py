"""Epochs of a reliable stream's sequence numbers: which life of the file a seq belongs to.

Why (issue 20, finding 8): the usage journal and the event outbox number their records
1, 2, 3... and the cloud de-duplicates by (device, stream, seq), discarding (and
acknowledging) anything at or below its high-water mark. If the file is lost, or a
corrupt frame cuts off records that were already sent, the numbering starts again below
that mark: the cloud would discard the new records as duplicates, ack them, and the
device would drop them. Billed usage, lost silently.

So every record also carries the **epoch** it was numbered in: a random 64-bit id drawn
whenever a log opens without a trustworthy history (no file, nothing readable, or a
corrupt tail that may have held records already sent). A random id needs no durable
counter of its own, which could be lost the same way; two epochs of one device collide
with probability 2^-64 per pair. The cloud keeps its high-water mark per (device,
stream, epoch), so a new epoch is a new sequence to it.

Within one file sequence numbers keep increasing across epochs (the new epoch starts at
the next seq after the records that survived), so everything that orders, drains and
acks by seq works unchanged. An epoch is a *segment*: it covers the seqs from its
``start`` up to the next segment's start. Records written before epochs existed belong to
the legacy epoch ``""`` (what the cloud held before, under the same name).

Pure: no I/O. The log that owns an ``Epochs`` writes its segments in its own format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

EPOCH_ID_BYTES = 8
"""64 random bits (16 hex digits): two epochs of one device never meet in practice, and
the id costs ~40 bytes per record on the wire (with ``epoch_start``)."""

LEGACY = ""
"""The epoch of records written before epochs existed (no epoch field on the wire)."""


@dataclass(frozen=True)
class Segment:
    """An epoch: ``epoch`` numbers the seqs from ``start`` up to the next segment's start."""

    start: int
    epoch: str


def new_epoch_id() -> str:
    return os.urandom(EPOCH_ID_BYTES).hex()


class Epochs:
    """The segments of one log, oldest first."""

    def __init__(self, segments: list[Segment] | None = None):
        self._segments: list[Segment] = []
        for seg in segments or []:
            self.add(seg)

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    @property
    def current(self) -> Segment:
        """The epoch new records are numbered in (the legacy one if none was ever begun)."""
        return self._segments[-1] if self._segments else Segment(1, LEGACY)

    def add(self, seg: Segment) -> None:
        """Record a segment read back from the log (kept ordered; a later one with the same
        start replaces the earlier)."""
        self._segments = sorted([s for s in self._segments if s.start != seg.start] + [seg], key=lambda s: s.start)

    def begin(self, start: int) -> Segment:
        """A new epoch from ``start`` (the next seq this log will hand out)."""
        seg = Segment(start, new_epoch_id())
        self.add(seg)
        return seg

    def of(self, seq: int) -> Segment:
        """The epoch ``seq`` was numbered in."""
        found = Segment(1, LEGACY)
        for seg in self._segments:
            if seg.start > seq:
                break
            found = seg
        return found

    def ack_limit(self, epoch: str, upto: int, *, lowest_pending: int | None, next_seq: int) -> int | None:
        """The cumulative seq an ack (``epoch``, ``upto``) from the cloud lets this log forget,
        or None to ignore it.

        An ack covers only its own epoch's segment: ``upto`` is cut at the segment's end,
        so an ack of an old epoch (the cloud's mark from before a reset may be far above)
        never forgets a record of a newer one. An ack of a later epoch while records of an
        earlier one are still pending is ignored: the log's acks are cumulative, and the
        cloud acknowledges those again when they are resent. An unknown epoch (one this
        log no longer holds) is ignored too."""
        segments = self._with_legacy()
        for i, seg in enumerate(segments):
            if seg.epoch != epoch:
                continue
            end = segments[i + 1].start - 1 if i + 1 < len(segments) else next_seq - 1
            if lowest_pending is not None and lowest_pending < seg.start:
                return None
            return min(upto, end)
        return None

    def _with_legacy(self) -> list[Segment]:
        """The segments, with the implicit legacy one in front when the first explicit
        epoch does not start at 1 (a log from before epochs that later began one)."""
        if self._segments and self._segments[0].start <= 1:
            return list(self._segments)
        return [Segment(1, LEGACY), *self._segments]

    def needed(self, lowest_pending: int | None) -> list[Segment]:
        """The segments a compacted log must keep: the one holding ``lowest_pending`` (if any)
        and every later one, the current one always."""
        if not self._segments:
            return []
        first = self.of(lowest_pending) if lowest_pending is not None else self._segments[-1]
        return [s for s in self._segments if s.start >= first.start] or [self._segments[-1]]

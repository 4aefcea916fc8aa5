"""The crash-proof usage journal: per-SIM per-day usage, durable, exact, sent once.

Built on ``agent.recordlog.RecordLog`` (append-only, CRC per record, torn tail dropped
on open). Deltas from the meter accumulate in memory per (iccid, imsi, day) and are
*flushed* as one record every ``flush_interval_s`` seconds or ``flush_bytes`` bytes of
usage, whichever comes first, at every SIM switch (``flush(reason)``) and at shutdown.

Exactness across SIGKILL and power loss: every flush record carries the counter
baseline (ifindex, boot id, four counters) its bytes were computed up to, written in
the *same* CRC'd record as the bytes. A restarted agent seeds the meter from
``baseline()`` and counts from there, so every byte after the last durable flush is
counted once (kernel counters survive a SIGKILL); after a power cut the counters are
gone, so what is lost is at most the traffic since the last flush.

On-disk records are compact JSON arrays (flash wear: docs/usage.md), never trusted:
a record that does not parse is logged and skipped.

* ``["B", boot_id]``: the boot id that later "F" baselines belong to.
* ``["K", kid, iccid, imsi, day, tz, [mcc...]]``: names a body key for later "F"s.
* ``["F", seq, acked, t_ms, [ifindex, rx_b, tx_b, rx_p, tx_p], [[kid, rx, tx, end_ms, dur_ms]...]]``:
  one flush; bodies get seq, seq+1, ...; ``t_ms`` is the baseline's wall time.
* ``["S", next_seq, acked, t_ms, baseline-dict|null]``: state, first record after compaction.
* ``["U", seq, body]``: an unacknowledged body kept by compaction.
* ``["E", epoch, from_seq]``: the epoch of the seqs from ``from_seq`` on (agent/epochs.py).
  A journal that opens empty or with a corrupt tail cut off begins a new epoch, so the
  cloud never takes its new records for ones it already holds (issue 20).

It is the cloud link's ReliableSource for stream ``"usage"``: ``pending(limit)`` gives
durable (seq, body) in order, ``ack(upto)`` is cumulative. The cloud must treat seq as an
idempotency key: an ack lost in a crash means the record is offered again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.epochs import Epochs, Segment
from agent.errors import JournalError
from agent.recordlog import RecordLog
from agent.usage import calendar
from agent.usage.counters import Counters
from agent.usage.meter import UsageDelta

LOGGER = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 60.0
"""At most a minute of usage is lost on power failure (vnStat's default is 5 minutes);
one ~120-byte record a minute is ~170 KB of flash a day."""

TRICKLE_BYTES = 64 * 1024
"""Issue 10: less than this since the last flush is a trickle (keep-alives, an idle
phone's background): it waits for ``TRICKLE_FLUSH_S`` instead of the minute, because
every record is later a message on the user's SIM (~300-500 bytes with its ack)."""

TRICKLE_FLUSH_S = 900.0
"""A trickle is flushed every 15 minutes: four small records an hour on an idle router
instead of sixty; a power cut loses at most 15 minutes of a trickle (< 64 KiB)."""

FLUSH_BYTES = 8 << 20
"""Heavy use flushes earlier, so no more than 8 MiB of billed usage is ever at risk."""

COMPACT_AT_BYTES = 64 << 10
"""Rewrite the file once it passes 64 KiB *and* acks freed something: a rewrite then writes
only the state and the unacked records (a few hundred bytes), a handful of times a day."""

MAX_PENDING = 5000
"""Unacked bodies (about 3.5 days offline at one a minute) before compaction merges the
never-offered ones per (iccid, imsi, day): sums stay exact, the file stays bounded."""

STREAM = "usage"
BODY_KEYS = frozenset({"iccid", "imsi", "day", "month", "tz", "mcc", "rx_bytes", "tx_bytes", "start", "end"})


@dataclass
class _Acc:
    """Usage accumulated in memory for one (iccid, imsi, day, tz, region) since the last
    flush. One record per region: a day on which the SIM roamed is split by the MCC of
    the network that carried each byte, so each region is billed its own bytes."""

    mccs: set[str] = field(default_factory=set)
    rx: int = 0
    tx: int = 0
    start: float = float("inf")
    end: float = float("-inf")


def _ms(t: float) -> int:
    return round(t * 1000)


def make_body(key: tuple[str, str, str, str], mccs: list[str], rx: int, tx: int,
              start_ms: int, end_ms: int) -> dict[str, Any]:
    """The cloud's body shape, exactly."""
    iccid, imsi, day, tz = key
    zone = datetime.fromisoformat(f"2000-01-01T00:00:00{tz}").tzinfo
    assert zone is not None
    return {
        "iccid": iccid, "imsi": imsi, "day": day, "month": day[:7], "tz": tz,
        "mcc": sorted(mccs), "rx_bytes": rx, "tx_bytes": tx,
        "start": calendar.iso(start_ms / 1000, zone), "end": calendar.iso(end_ms / 1000, zone),
    }


def valid_body(body: Any) -> bool:
    """Whether ``body`` has exactly the cloud's shape (used on read-back: never trusted)."""
    if not isinstance(body, dict) or set(body) != BODY_KEYS:
        return False
    ints_ok = all(isinstance(body[k], int) and not isinstance(body[k], bool) and body[k] >= 0
                  for k in ("rx_bytes", "tx_bytes"))
    strs_ok = all(isinstance(body[k], str) for k in ("iccid", "imsi", "day", "month", "tz", "start", "end"))
    mcc_ok = isinstance(body["mcc"], list) and all(isinstance(m, str) for m in body["mcc"])
    if not (ints_ok and strs_ok and mcc_ok):
        return False
    try:
        date.fromisoformat(body["day"])
        datetime.fromisoformat(body["start"])
        datetime.fromisoformat(body["end"])
    except ValueError:
        return False
    return body["month"] == body["day"][:7]


class UsageJournal:
    """Durable usage records; one writer (this object) per file."""

    stream = STREAM

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Clock,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_bytes: int = FLUSH_BYTES,
        compact_at_bytes: int = COMPACT_AT_BYTES,
        max_pending: int = MAX_PENDING,
        trickle_flush_s: float | None = None,
    ):
        """``trickle_flush_s``: flush less than TRICKLE_BYTES only this often (the daemon
        passes TRICKLE_FLUSH_S; None keeps the plain interval)."""
        self._clock = clock
        self._interval = flush_interval_s
        self._flush_bytes = flush_bytes
        self._compact_at = compact_at_bytes
        self._max_pending = max_pending
        self._trickle_s = trickle_flush_s
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._next_seq = 1
        self._acked = 0
        self._acked_at_compaction = 0
        self._base: Counters | None = None
        self._base_wall = 0.0
        self._durable_base: Counters | None = None
        self._durable_wall = 0.0
        self._durable_seq = 0
        self._queued: tuple[Counters | None, float] = (None, 0.0)
        self._acc: dict[tuple[str, str, str, str, str], _Acc] = {}
        self._acc_bytes = 0
        self._file_boot: str | None = None
        self._file_kids: dict[tuple[Any, ...], int] = {}
        self.skipped_records = 0
        self._state_next_seq = 1
        self._acked_durable = 0
        self._acked_queued = 0
        self._epochs = Epochs()
        self._log = RecordLog(path)
        self._replay()
        if self._log.dropped_tail or not self._log.records:
            self._begin_epoch(lost=bool(self._log.dropped_tail))
        self._first_own_seq = self._next_seq
        self._offered = self._next_seq - 1
        """Highest seq handed out by pending(); earlier processes may have offered up to here."""
        self._last_flush = clock.monotonic()

    # -- read-back ------------------------------------------------------------------

    def _replay(self) -> None:
        kids: dict[int, tuple[tuple[str, str, str, str], list[str]]] = {}
        boot = ""
        for payload in self._log.records:
            try:
                rec = json.loads(payload)
                boot = self._apply(rec, kids, boot)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                self.skipped_records += 1
                LOGGER.error("usage journal: skipping unreadable record %r: %s", payload[:120], exc)
        self._pending = [(s, b) for s, b in self._pending if s > self._acked]
        self._next_seq = max(self._next_seq, self._state_next_seq)
        self._durable_base, self._durable_wall = self._base, self._base_wall
        self._durable_seq = self._next_seq - 1
        self._acked_at_compaction = self._acked_durable = self._acked_queued = self._acked
        self._queued = (self._durable_base, self._durable_wall)
        LOGGER.info("usage journal %s: %d pending, next seq %d, baseline %s",
                    self._log.path, len(self._pending), self._next_seq, self._base)

    def _apply(self, rec: list[Any], kids: dict[int, Any], boot: str) -> str:
        kind = rec[0]
        if kind == "B":
            return str(rec[1])
        if kind == "K":
            key = (str(rec[2]), str(rec[3]), str(rec[4]), str(rec[5]))
            kids[int(rec[1])] = (key, [str(m) for m in rec[6]])
        elif kind == "F":
            self._apply_flush(rec, kids, boot)
        elif kind == "S":
            self._state_next_seq = max(self._state_next_seq, int(rec[1]))
            self._acked = max(self._acked, int(rec[2]))
            if rec[4] is not None:
                self._base, self._base_wall = Counters.from_dict(rec[4]), rec[3] / 1000
                return self._base.boot_id
        elif kind == "U":
            self._add_pending(int(rec[1]), rec[2])
        elif kind == "E":
            self._epochs.add(Segment(int(rec[2]), str(rec[1])))
        else:
            raise ValueError(f"unknown record kind {kind!r}")  # pragma: no mutate (message: logged by _replay)
        return boot

    def _apply_flush(self, rec: list[Any], kids: dict[int, Any], boot: str) -> None:
        _, seq, acked, t_ms, base, units = rec
        ifindex, rx_b, tx_b, rx_p, tx_p = base
        counters = Counters.from_dict({"ifindex": ifindex, "boot_id": boot, "rx_bytes": rx_b,
                                       "tx_bytes": tx_b, "rx_packets": rx_p, "tx_packets": tx_p})
        bodies = []
        for kid, rx, tx, end_ms, dur_ms in units:
            key, mccs = kids[int(kid)]
            bodies.append(make_body(key, mccs, rx, tx, end_ms - dur_ms, end_ms))
        for i, body in enumerate(bodies):
            self._add_pending(int(seq) + i, body)
        self._acked = max(self._acked, int(acked))
        self._base, self._base_wall = counters, t_ms / 1000

    def _add_pending(self, seq: int, body: Any) -> None:
        if not valid_body(body):
            raise ValueError(f"body of seq {seq} has the wrong shape: {body!r}")  # pragma: no mutate (message)
        if self._pending and seq <= self._pending[-1][0]:
            raise ValueError(f"seq {seq} is not after {self._pending[-1][0]}")  # pragma: no mutate (message)
        self._pending.append((seq, body))
        self._next_seq = seq + 1

    def _begin_epoch(self, *, lost: bool) -> None:
        """A new epoch from the next seq, queued ahead of any record numbered in it."""
        seg = self._epochs.begin(self._next_seq)
        LOGGER.log(logging.WARNING if lost else logging.INFO, "usage journal %s: epoch %s from seq %d (%s)",
                   self._log.path, seg.epoch, seg.start, "a corrupt tail was cut off" if lost else "new file")
        self._log.append(_dump(["E", seg.epoch, seg.start]))
        try:
            self._log.flush()
        except JournalError as exc:  # stays queued: written with (before) the next flush
            LOGGER.error("usage journal: epoch not yet on disk: %s", exc)

    # -- the meter's side ----------------------------------------------------------------

    def baseline(self) -> Counters | None:
        """The counters the durable records were computed up to (None: fresh journal)."""
        return self._durable_base

    def baseline_wall(self) -> float:
        """Wall time at which ``baseline()`` was read."""
        return self._durable_wall

    @property
    def bytes_written(self) -> int:
        """Bytes this process wrote to flash (appends and compactions)."""
        return self._log.bytes_written

    @property
    def durable_seq(self) -> int:
        """The highest seq on flash: the allowance ledger commits up to it (agent/plans/ledger.py)."""
        return self._durable_seq

    def bodies_after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """Durable (seq, body) pairs still held with seq above ``seq``, oldest first (the
        allowance ledger's catch-up after a crash between the two writes). Offers nothing."""
        return [(s, dict(b)) for s, b in self._pending if seq < s <= self._durable_seq]

    def add(self, deltas: list[UsageDelta], baseline: Counters, wall: float) -> None:
        """Accumulate one sample's deltas, computed up to ``baseline`` read at ``wall``;
        flushes when the interval or byte threshold is reached (write errors are logged
        and retried at the next sample, never raised here)."""
        for d in deltas:
            acc = self._acc.setdefault((d.iccid, d.imsi, d.day, d.tz, d.mcc), _Acc())
            acc.mccs.add(d.mcc)
            acc.rx += d.rx_bytes
            acc.tx += d.tx_bytes
            acc.start = min(acc.start, d.start)
            acc.end = max(acc.end, d.end)
            self._acc_bytes += d.rx_bytes + d.tx_bytes
        self._base, self._base_wall = baseline, wall
        # The very first baseline is made durable at once: until it is, a restart could
        # not tell which bytes are already counted.
        elapsed = self._clock.monotonic() - self._last_flush
        trickle = self._trickle_s is not None and self._acc_bytes < TRICKLE_BYTES
        due = (elapsed >= (max(self._interval, self._trickle_s or 0.0) if trickle else self._interval)
               or self._durable_base is None)
        if due or self._acc_bytes >= self._flush_bytes:
            try:
                self.flush("interval" if due else "bytes")
            except JournalError as exc:
                LOGGER.error("usage journal flush failed (kept in memory, will retry): %s", exc)

    def flush(self, reason: str = "explicit") -> None:
        """Make everything accumulated durable in one record (SIM switch, shutdown, timer)."""
        self._last_flush = self._clock.monotonic()
        news = self._acc or self._base != self._durable_base or self._acked > self._acked_durable
        if self._base is None or not news:
            return
        units = self._encode_units()
        base = self._base
        rec = ["F", self._next_seq, self._acked, _ms(self._base_wall),
               [base.ifindex, base.rx_bytes, base.tx_bytes, base.rx_packets, base.tx_packets], units]
        if base.boot_id != self._file_boot:
            self._log.append(_dump(["B", base.boot_id]))
            self._file_boot = base.boot_id
        self._log.append(_dump(rec))
        self._commit_acc()
        self._queued = (base, self._base_wall)
        self._acked_queued = self._acked
        self._log.flush()
        self._durable_base, self._durable_wall = self._queued
        self._durable_seq = self._next_seq - 1
        self._acked_durable = self._acked_queued
        LOGGER.debug("usage journal flushed (%s): %d bodies up to %s", reason, len(units), base)
        self._maybe_compact()

    def _encode_units(self) -> list[list[int]]:
        """[kid, rx, tx, end_ms, dur_ms] per accumulation, appending "K" records as needed."""
        units = []
        for full_key, acc in self._acc.items():
            key = full_key[:4]
            mccs = sorted(acc.mccs)
            kid = self._file_kids.get((*key, *mccs))
            if kid is None:
                kid = len(self._file_kids) + 1
                self._file_kids[(*key, *mccs)] = kid
                self._log.append(_dump(["K", kid, *key, mccs]))
            end_ms = _ms(acc.end)
            units.append([kid, acc.rx, acc.tx, end_ms, end_ms - _ms(acc.start)])
        return units

    def _commit_acc(self) -> None:
        """Move the accumulations into the pending list under fresh seqs (record queued)."""
        for key, acc in self._acc.items():
            body = make_body(key[:4], list(acc.mccs), acc.rx, acc.tx, _ms(acc.start), _ms(acc.end))
            self._pending.append((self._next_seq, body))
            self._next_seq += 1
        self._acc.clear()
        self._acc_bytes = 0

    def close(self) -> None:
        """Shutdown: flush what is accumulated."""
        self.flush("shutdown")  # pragma: no mutate (the reason is only logged)

    # -- ReliableSource ------------------------------------------------------------

    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` durable, unacknowledged (seq, body) pairs, oldest first."""
        if self._log.unflushed:
            self._retry_write()
        durable = [p for p in self._pending if p[0] <= self._durable_seq]
        out = [(s, dict(b)) for s, b in durable[: max(0, limit)]]
        if out:
            self._offered = max(self._offered, out[-1][0])
        return out

    def _retry_write(self) -> None:
        """Write a record queued by a failed flush; until it is durable it is not offered."""
        try:
            self._log.flush()
        except JournalError as exc:
            LOGGER.error("usage journal still cannot write: %s", exc)
            return
        self._durable_base, self._durable_wall = self._queued
        self._durable_seq = self._next_seq - 1
        self._acked_durable = self._acked_queued

    def epoch_of(self, seq: int) -> tuple[str, int]:
        """(epoch id, its first seq) of ``seq``: sent with the record (docs/protocol.md)."""
        seg = self._epochs.of(seq)
        return seg.epoch, seg.start

    def ack_epoch(self, upto: int, epoch: str) -> None:
        """The cloud's ack of ``epoch``: applied only to that epoch's records (agent/epochs.py)."""
        limit = self._epochs.ack_limit(epoch, upto, lowest_pending=self._pending[0][0] if self._pending else None,
                                       next_seq=self._next_seq)
        if limit is None:
            LOGGER.info("usage journal: ack %d of epoch %r ignored (not this journal's, or an earlier epoch "
                        "is pending)", upto, epoch)
            return
        self.ack(limit)

    def ack(self, upto: int) -> None:
        """Cumulative acknowledgement; acked records are compacted away (see COMPACT_AT_BYTES)."""
        if upto <= self._acked:
            return
        if upto >= self._next_seq:
            LOGGER.warning("ack %d beyond last seq %d: clamped", upto, self._next_seq - 1)
            upto = self._next_seq - 1
        self._acked = upto
        self._pending = [(s, b) for s, b in self._pending if s > upto]
        self._maybe_compact()

    # -- bounding the file -------------------------------------------------------------

    def _file_size(self) -> int:
        try:
            return os.path.getsize(self._log.path)
        except OSError:
            return 0

    def _maybe_compact(self) -> None:
        backlog = len(self._pending) > self._max_pending
        freed = self._acked > self._acked_at_compaction
        if self._log.unflushed or not (backlog or (freed and self._file_size() > self._compact_at)):
            return
        if backlog:
            self._merge_unoffered()
        self.compact()

    def _merge_unoffered(self) -> None:
        """Merge bodies nobody has seen (created here, never offered) per key: each merged
        body keeps the highest seq of its group, so seqs stay increasing and are never
        reused; sums stay exact."""
        floor = max(self._offered, self._first_own_seq - 1)
        keep = [(s, b) for s, b in self._pending if s <= floor]
        merged: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = {}
        for seq, body in (p for p in self._pending if p[0] > floor):
            key = (body["iccid"], body["imsi"], body["day"], body["tz"], *sorted(body["mcc"]))
            if key not in merged:
                merged[key] = (seq, dict(body, mcc=list(body["mcc"])))
                continue
            into = merged[key][1]
            into["rx_bytes"] += body["rx_bytes"]
            into["tx_bytes"] += body["tx_bytes"]
            into["mcc"] = sorted(set(into["mcc"]) | set(body["mcc"]))
            into["start"] = min(into["start"], body["start"], key=datetime.fromisoformat)
            into["end"] = max(into["end"], body["end"], key=datetime.fromisoformat)
            merged[key] = (seq, into)
        LOGGER.warning("usage backlog of %d records: merged the unoffered ones into %d",
                       len(self._pending), len(merged))
        self._pending = keep + sorted(merged.values(), key=lambda p: p[0])

    def compact(self) -> None:
        """Rewrite the file as state + unacked bodies (atomic: old or new file, never half)."""
        base = self._durable_base
        keep = [_dump(["S", self._next_seq, self._acked, _ms(self._durable_wall) if base else 0,
                       base.to_dict() if base else None])]
        lowest = self._pending[0][0] if self._pending else None
        keep += [_dump(["E", seg.epoch, seg.start]) for seg in self._epochs.needed(lowest)]
        keep += [_dump(["U", s, b]) for s, b in self._pending]
        self._log.compact(keep)
        self._file_boot = base.boot_id if base else None
        self._file_kids.clear()
        self._acked_at_compaction = self._acked_durable = self._acked


def _dump(rec: list[Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()

"""Reliable streams: drain every ReliableSource in order, forget a record only on the cloud's ack.

Every ReliableSource (usage journal, the link's own event Outbox) is drained in sequence
order, at most ``window`` records in flight per stream; a record is forgotten only on the
cloud's application ack (pw/v1/<dev>/ack), never on PUBACK, since a broker restart may
lose what it held. After a reconnect (``restart``), or ``ack_timeout`` without progress,
unacknowledged records are sent again; the cloud de-duplicates by (device, stream, epoch,
seq). A source that numbers in epochs (``EpochSource``: the journal, the outbox; issue 20)
has each record sent with its epoch, and an ack applied only to the epoch it names, so a
log that began again at seq 1 is never taken for the one the cloud already holds.

No broker here: the streams publish through a function given to them (the session's
``publish``, which answers False when nothing is live), so tests drive them with a fake.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.clock import JST, Clock
from agent.cloud import protocol as proto
from agent.cloud.linkconfig import LinkStats
from agent.cloud.outbox import EpochSource, Outbox, ReliableSource
from agent.cloud.schema import validate_event_data
from agent.errors import AgentError, JournalError, ProtocolError

LOGGER = logging.getLogger(__name__)

UNWRITTEN_EVENTS_MAX = 256
"""Events held in memory while the state partition refuses writes (full, read-only). A
router emits a health or outage event every few minutes at most, so 256 cover hours of a
full disk; each is a few hundred bytes, so the bound is under 100 kB of RAM on a 64 MB
router. Past it the oldest is dropped, counted and logged, as the outbox itself does."""

Publish = Callable[[str, bytes], bool]
"""(topic, payload) -> queued? QoS 1, not retained."""


class ReliableStreams:
    """The sources by stream name, what of each is in flight, and since when without progress."""

    def __init__(self, device_id: str, sources: list[ReliableSource], events: Outbox, *, window: int,
                 ack_timeout: float, clock: Clock, publish: Publish, is_live: Callable[[], bool],
                 stats: LinkStats):
        self.device_id = device_id
        self.events = events
        self.sources: dict[str, ReliableSource] = {s.stream: s for s in [*sources, events]}
        self.window = window
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.stats = stats
        self._publish = publish
        self._is_live = is_live
        self._sent: dict[str, int] = {}  # highest seq published per stream in this session
        self._progress_at: dict[str, float] = {}  # since when a stream has records in flight without an ack
        self._unwritten: deque[dict[str, Any]] = deque()  # event bodies the disk refused, oldest first

    def sent(self, stream: str) -> int:
        """The highest sequence number of ``stream`` published since the last (re)send; 0 if none."""
        return self._sent.get(stream, 0)

    def restart(self) -> None:
        """A new session: nothing is in flight any more; the next drain sends every pending record."""
        self._sent.clear()
        self._progress_at.clear()

    def drain(self) -> None:
        """Publish every stream's unsent records, keeping at most ``window`` in flight."""
        if not self._is_live():
            return
        for stream, source in self.sources.items():
            try:
                pending = source.pending(self.window)
            except AgentError as exc:
                LOGGER.error("source %s cannot list pending records: %s", stream, exc)
                continue
            if not pending:
                self._progress_at.pop(stream, None)
                continue
            self._send(stream, pending)

    def _send(self, stream: str, pending: list[tuple[int, dict[str, Any]]]) -> None:
        base = pending[0][0]
        sent = self._sent.get(stream, 0)
        source = self.sources[stream]
        for seq, body in pending:
            if seq <= sent:
                continue
            epoch, start = source.epoch_of(seq) if isinstance(source, EpochSource) else ("", 1)
            if not self._publish(proto.stream_topic(self.device_id, stream, body),
                                 self._record_payload(stream, seq, max(base, start), body, epoch, start)):
                break
            sent = seq
            self._progress_at.setdefault(stream, self.clock.monotonic())
        self._sent[stream] = sent

    def _record_payload(self, stream: str, seq: int, base: int, body: dict[str, Any], epoch: str = "",
                        start: int = 1) -> bytes:
        """The record as sent; ``base`` is the lowest seq still held *in this record's
        epoch*, and a legacy record (epoch "") carries no epoch fields at all."""
        head: dict[str, Any] = {"stream": stream, "seq": seq, "base": base}
        if epoch:
            head.update(epoch=epoch, epoch_start=start)
        try:
            return proto.encode({**head, "body": body})
        except ProtocolError as exc:
            # Unsendable as is: send a stand-in so the cloud can record the loss and ack past it.
            LOGGER.error("record %s/%d cannot be sent: %s", stream, seq, exc)
            return proto.encode({**head, "body": {}, "rejected": exc.reason})

    def handle_ack(self, body: dict[str, Any], topic: str) -> None:
        """pw/v1/<dev>/ack: the cloud holds ``upto``; forget it and send what the window now allows."""
        stream, upto = proto.validate_ack(body, topic)
        epoch = proto.ack_epoch(body, topic)
        source = self.sources.get(stream)
        if source is None:
            raise ProtocolError(f"ack for unknown stream {stream!r}", topic=topic, reason="schema")
        try:
            if isinstance(source, EpochSource):
                source.ack_epoch(upto, epoch)
            elif not epoch:
                source.ack(upto)
        except JournalError as exc:
            LOGGER.error("cannot record ack %s<=%d: %s", stream, upto, exc)
        self._progress_at[stream] = self.clock.monotonic()
        if stream == proto.USAGE:
            self.stats.usage_acks += 1
        self.drain()

    def check_ack_timeouts(self) -> None:
        """Called on every watchdog tick of a live session: resend a stream silent for
        ``ack_timeout``, and write the events a full disk refused if it takes writes again."""
        self._write_unwritten(quiet=True)
        now = self.clock.monotonic()
        for stream, since in list(self._progress_at.items()):
            if now - since > self.ack_timeout and self._sent.get(stream):
                LOGGER.warning("no ack on %s for %.0fs: sending unacknowledged records again", stream, now - since)
                self.stats.resends += 1
                self._sent[stream] = 0
                self._progress_at[stream] = now
        self.drain()

    def emit(self, kind: str, data: dict[str, Any]) -> int:
        """Queue a durable event on the "event" stream and send it if a session is live; its
        seq, or 0 when the state partition refused the write (full, read-only): the event is
        then held in memory, in order, and written before any later one once the disk takes
        writes again (the next emit or watchdog tick). A full disk is a fault the router
        heals from (docs/self-healing.md), never a reason to stop serving."""
        validate_event_data(kind, data)  # our own bug is caught here, loudly, not at the cloud
        body = {"kind": kind, "at": self.clock.now(JST).isoformat(timespec="seconds"), "data": data}
        proto.encode({"stream": proto.EVENT, "seq": 0, "base": 0, "body": body})  # size check before it is durable
        self._unwritten.append(body)
        if len(self._unwritten) > UNWRITTEN_EVENTS_MAX:
            lost = self._unwritten.popleft()
            self.stats.unwritten_dropped += 1
            LOGGER.error("more than %d events wait for a writable state partition: dropping the oldest (%s)",
                         UNWRITTEN_EVENTS_MAX, lost["kind"])
        seq = self._write_unwritten()
        self.drain()
        return seq

    def _write_unwritten(self, quiet: bool = False) -> int:
        """Make the held events durable, oldest first, stopping at the first refusal; the
        seq of the last one written (0 if the disk refused the newest). ``quiet``: a retry on
        the watchdog's tick logs nothing more (each new event's refusal is logged once)."""
        seq = 0
        while self._unwritten:
            try:
                seq = self.events.put(self._unwritten[0])
            except JournalError as exc:
                if not quiet:
                    LOGGER.error("event %s not yet durable (%d held in memory): %s",
                                 self._unwritten[-1]["kind"], len(self._unwritten), exc)
                self.stats.unwritten = len(self._unwritten)
                return 0
            self._unwritten.popleft()
        self.stats.unwritten = 0
        return seq

"""An append-only log of checksummed records: the one durable-journal format.

Used by the usage journal (agent/usage/journal.py) and the cloud outbox
(agent/cloud/outbox.py). Why a format of our own: it must survive power loss on
cheap flash, where the tail of the last write may be torn or garbage, and it must
never *invent* data. Each record is framed as::

    MAGIC(2) | length(4, big-endian) | crc32(4) | payload(length)

The CRC covers the length and the payload. On open, records are read until the first
frame that is short, has the wrong magic, an absurd length or a bad CRC; everything
from there on is a torn tail and is truncated away (logged). A bit flip in the middle
therefore loses the records after it, never returns wrong ones.

Compaction rewrites the log atomically (agent.store.atomic_write) with only the
records a caller still needs, which bounds its size.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from agent import store
from agent.errors import JournalError

LOGGER = logging.getLogger(__name__)

MAGIC = b"\xa7\x5e"
HEADER = struct.Struct(">2sII")
MAX_RECORD = 1 << 20
"""1 MiB: far above any real record (a usage record is ~200 bytes), so a larger length
field can only be corruption."""


def _frame(payload: bytes) -> bytes:
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(struct.pack(">I", length)))
    return HEADER.pack(MAGIC, length, crc) + payload


def scan(data: bytes) -> tuple[list[bytes], int]:
    """Split ``data`` into valid payloads; returns (payloads, length of the valid prefix)."""
    out: list[bytes] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if magic != MAGIC or length > MAX_RECORD or end > len(data):
            break
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload, zlib.crc32(struct.pack(">I", length))) != crc:
            break
        out.append(bytes(payload))
        pos = end
    return out, pos


class RecordLog:
    """One file, one writer. ``append`` buffers; ``flush`` makes the buffer durable."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._records: list[bytes] = []
        self._buffer: list[bytes] = []
        self.bytes_written = 0
        """Bytes this process wrote to flash (appends and compactions): flash-wear figure."""
        self.dropped_tail = 0
        self._size = 0
        """Bytes of whole, durable frames in the file: where the next append starts."""
        self._named = False
        """Whether this process has made the file's directory entry durable. The first
        append of each process fsyncs the directory once: the file may have been
        created by a process that died before it did (one fsync per start, not per write)."""
        self._open()

    def _open(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        self._records, valid = scan(data)
        self._size = valid
        if valid < len(data):
            self.dropped_tail = len(data) - valid
            LOGGER.warning("%s: dropping %d bytes of torn or corrupt tail after %d good records",
                           self.path, self.dropped_tail, len(self._records))
            self._rewrite(self._records)

    @property
    def records(self) -> list[bytes]:
        """Every durable record plus those appended but not yet flushed, in order."""
        return self._records + self._buffer

    @property
    def unflushed(self) -> int:
        return len(self._buffer)

    def append(self, payload: bytes) -> None:
        """Queue a record; it is durable only after ``flush()``."""
        if len(payload) > MAX_RECORD:
            raise JournalError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
        self._buffer.append(payload)

    def flush(self) -> None:
        """Write and fsync every queued record in one write (one flash page, usually).

        Durable means every byte: a short write is continued (``store.write_all``), and
        if the disk refuses the rest the file is cut back to where it was, so no torn
        frame sits in front of the records appended later, and the records stay queued
        (not counted) for the next flush. The first write to a new file also fsyncs its
        directory, or a power cut could lose the file's name with its records.
        """
        if not self._buffer:
            return
        blob = b"".join(_frame(p) for p in self._buffer)
        try:
            fd = store.open_private_append(self.path)
            try:
                if os.fstat(fd).st_size != self._size:  # a partial append that could not be cut back
                    os.ftruncate(fd, self._size)
                try:
                    store.write_all(fd, blob)
                    os.fsync(fd)
                except OSError:
                    self._cut_back(fd, self._size)
                    raise
            finally:
                os.close(fd)
            if not self._named:
                store.fsync_dir(self.path.parent)
                self._named = True
        except OSError as exc:
            raise JournalError(f"cannot append to {self.path}: {exc.strerror or exc}") from exc
        self.bytes_written += len(blob)
        self._size += len(blob)
        self._records.extend(self._buffer)
        self._buffer.clear()

    def _cut_back(self, fd: int, size: int) -> None:
        """Truncate to ``size`` after a failed append (best effort: the error that
        brought us here is the one reported, and the next flush cuts back first)."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            LOGGER.error("%s: cannot cut a partial append back to %d bytes: %s", self.path, size, exc)

    def compact(self, keep: Iterable[bytes]) -> None:
        """Atomically replace the durable log with ``keep`` (unflushed records stay queued)."""
        kept = list(keep)
        self._rewrite(kept)
        self._records = kept

    def _rewrite(self, payloads: list[bytes]) -> None:
        blob = b"".join(_frame(p) for p in payloads)
        try:
            store.atomic_write(self.path, blob)
        except OSError as exc:
            raise JournalError(f"cannot rewrite {self.path}: {exc.strerror}") from exc
        self._named = True  # atomic_write fsyncs the directory
        self._size = len(blob)
        self.bytes_written += len(blob)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.records)

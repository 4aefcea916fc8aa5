"""A detection trace on the router's flash: a CSV of samples, bounded in bytes, in time and
in the number of files kept.

Why bounds: the console's ``trace start`` appended a line a second for as long as nobody
said ``trace stop``, on the flash that OpenWrt shares with ``/etc/config`` (issue 20,
finding 9). A trace a technician starts now ends by itself after ``CONSOLE_MAX_SECONDS``
or ``CONSOLE_MAX_BYTES``, whichever comes first, and starting one removes the oldest so
that at most ``CONSOLE_KEEP`` traces are on the router: the worst a technician (logged
in: ``trace`` is privileged) can leave behind is ``CONSOLE_KEEP * CONSOLE_MAX_BYTES``. A
trace configured by the operator (``record_trace``, for the lab) has no bounds unless
given some: the operator chose the disk for it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)

CONSOLE_MAX_SECONDS = 1800.0
"""30 minutes: docs/console.md asks for 3-5 minutes of the problem; six times that covers
a slow reproduction, and a trace forgotten at the end of a visit stops on its own."""
CONSOLE_MAX_BYTES = 1 << 20
"""1 MiB: a sample row is about 150-250 bytes, so 30 minutes at one a second is ~0.4 MiB;
the cap only bites if rows grow, and bounds the file whatever they carry."""
CONSOLE_KEEP = 3
"""Traces kept in ``<state>/traces``: the one being handed in and a couple before it."""
PATTERN = "trace-*.csv"


class TraceFile:
    """Appends rows until closed or until a bound is reached; ``write`` says which."""

    def __init__(self, path: Path, columns: Iterable[str], *, monotonic: Callable[[], float],
                 max_bytes: int | None = None, max_seconds: float | None = None):
        self.path = Path(path)
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self._monotonic = monotonic
        self._started = monotonic()
        self._fh: Any = open(self.path, "a", newline="")  # noqa: SIM115 - lives until close()
        self._columns = list(columns)
        self.size = self._fh.tell()
        self.ended: str | None = None
        """Why it stopped by itself (``"time"``, ``"size"``), None while recording or stopped by hand."""
        if self.size == 0:
            self._append(dict(zip(self._columns, self._columns, strict=True)))

    def write(self, row: dict[str, Any]) -> bool:
        """Append ``row``; False (and the file closed) once a bound is reached."""
        if self._fh is None:
            return False
        if self.max_seconds is not None and self._monotonic() - self._started >= self.max_seconds:
            return self._end("time")
        return self._append(row)

    def _append(self, row: dict[str, Any]) -> bool:
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self._columns).writerow(row)
        line = buf.getvalue()
        if self.max_bytes is not None and self.size + len(line.encode()) > self.max_bytes:
            return self._end("size")
        self._fh.write(line)
        self._fh.flush()
        self.size += len(line.encode())
        return True

    def _end(self, why: str) -> bool:
        self.ended = why
        LOGGER.info("trace %s ended by itself (%s limit reached): %d bytes", self.path.name, why, self.size)
        self.close()
        return False

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None


def make_room(directory: Path, keep: int = CONSOLE_KEEP) -> None:
    """Remove the oldest traces so that a new one makes at most ``keep``."""
    traces = sorted(directory.glob(PATTERN), key=lambda p: (p.stat().st_mtime, p.name))
    for old in traces[:max(0, len(traces) - (keep - 1))]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
            LOGGER.info("trace %s removed: at most %d are kept", old.name, keep)

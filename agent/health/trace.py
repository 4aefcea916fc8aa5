"""Read and write health traces: the CSV a technician records and ``replay`` reads.

Format (header fixed by the issue, one row about every second, gaps allowed)::

    t,wan_rx_bytes,wan_tx_bytes,lan_rx_bytes,lan_tx_bytes,flows,rtt_ms,probes_sent,
    probes_lost,rsrp_dbm,rsrq_db,sinr_db,registered

A malformed row is a ``TraceError`` naming the line and carrying the raw text, never a
bare ``ValueError`` (style: bad input gets a typed error with what was received).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from agent.errors import AgentError
from agent.health.sample import COLUMNS, Sample

LOGGER = logging.getLogger(__name__)

_INT_COLUMNS = ("wan_rx_bytes", "wan_tx_bytes", "lan_rx_bytes", "lan_tx_bytes", "flows",
                "probes_sent", "probes_lost")
_OPT_FLOAT_COLUMNS = ("rtt_ms", "rsrp_dbm", "rsrq_db", "sinr_db")


class TraceError(AgentError):
    """A trace file is not in the health-trace CSV format."""

    def __init__(self, message: str, *, line: int | None = None, raw: str | None = None):
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line
        self.raw = raw


def parse_row(row: dict[str, str], line: int) -> Sample:
    """One CSV row (header -> text) to a ``Sample``; TraceError on anything odd."""
    raw = ",".join(row.get(c) or "" for c in COLUMNS)
    try:
        values: dict[str, object] = {"t": float(row["t"])}
        for col in _INT_COLUMNS:
            text = (row.get(col) or "").strip()
            values[col] = int(float(text)) if text else 0
        for col in _OPT_FLOAT_COLUMNS:
            text = (row.get(col) or "").strip()
            values[col] = float(text) if text else None
        reg = (row.get("registered") or "1").strip()
        if reg not in ("0", "1"):
            raise ValueError(f"registered must be 0 or 1, got {reg!r}")
        values["registered"] = reg == "1"
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(f"bad row ({exc})", line=line, raw=raw) from None
    if any(int(values[c]) < 0 for c in _INT_COLUMNS):  # type: ignore[call-overload]
        raise TraceError("negative counter", line=line, raw=raw)
    return Sample(**values)  # type: ignore[arg-type]


def iter_samples(stream: IO[str]) -> Iterator[Sample]:
    """Samples from an open CSV stream, checked for header and increasing time."""
    reader = csv.DictReader(stream)
    missing = [c for c in ("t", "wan_rx_bytes", "wan_tx_bytes") if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"header lacks {missing}", line=1, raw=",".join(reader.fieldnames or []))
    last_t = float("-inf")
    for row in reader:
        line = reader.line_num
        sample = parse_row(row, line)
        if sample.t <= last_t:
            raise TraceError(f"time goes backwards ({sample.t} after {last_t})", line=line,
                             raw=str(sample.t))
        last_t = sample.t
        yield sample


def read_trace(path: Path | str) -> list[Sample]:
    """Every sample of a trace file."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(iter_samples(fh))
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path} is not UTF-8 text ({exc.reason})") from exc


class TraceWriter:
    """Writes samples as CSV rows, flushing each so a killed recorder loses one row at most."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._writer = csv.DictWriter(stream, fieldnames=list(COLUMNS), lineterminator="\n")
        self._writer.writeheader()
        stream.flush()

    def write(self, sample: Sample) -> None:
        self._writer.writerow(sample.row())
        self._stream.flush()


def dumps(samples: Iterable[Sample]) -> str:
    """A whole trace as CSV text (tests and tracegen's post-processing)."""
    buf = io.StringIO()
    writer = TraceWriter(buf)
    for s in samples:
        writer.write(s)
    return buf.getvalue()

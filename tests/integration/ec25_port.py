"""Talking to the virtual modem over its real pty through pyserial, as a terminal does.

Shared by the EC25-conformance tests: ``ask`` writes one command line and returns the
information lines and the final result code, waiting for the final code (an event) with
a deadline rather than sleeping.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import serial

REPO = Path(__file__).resolve().parents[2]

READ_DEADLINE = 3.0
"""Seconds to wait for a final result code (the modem thread answers in milliseconds;
the margin covers a loaded 2-core CI machine)."""

FINALS = (b"OK", b"ERROR", b"NO CARRIER", b"CONNECT", b"BUSY", b"NO ANSWER", b"NO DIALTONE")


_PENDING: weakref.WeakKeyDictionary[serial.Serial, bytes] = weakref.WeakKeyDictionary()
"""Bytes read past what a call returned (a URC right after a final code): the next read
on that port starts with them, so nothing the modem sent is lost between calls."""


def _is_final(line: bytes) -> bool:
    return line in FINALS or line.startswith((b"+CME ERROR", b"+CMS ERROR", b"CONNECT"))


def _end_of_final(buf: bytes) -> int:
    """Offset just past the first complete final-result-code line, or -1."""
    pos = 0
    while (nl := buf.find(b"\r\n", pos)) >= 0:
        if _is_final(buf[pos:nl]):
            return nl + 2
        pos = nl + 2
    return -1


def read_until(port: serial.Serial, done: bytes | None = None, deadline: float = READ_DEADLINE) -> bytes:
    """Read up to and including the first final result code line (or the bytes ``done``);
    what came after it is kept for the next read."""
    buf = _PENDING.pop(port, b"")
    end = time.monotonic() + deadline
    while True:
        if done is None:
            cut = _end_of_final(buf)
        else:
            found = buf.find(done)
            cut = found + len(done) if found >= 0 else -1
        if cut >= 0:
            if buf[cut:]:
                _PENDING[port] = buf[cut:]
            return buf[:cut]
        if time.monotonic() >= end:
            raise AssertionError(f"no {done or 'final result code'!r} within {deadline} s; got {buf!r}")
        buf += port.read(512)


def ask(port: serial.Serial, command: str) -> tuple[list[str], str]:
    """Send ``command`` (echo must be off) -> (information lines, final result code)."""
    port.write(command.encode() + b"\r")
    raw = read_until(port)
    lines = [ln.decode() for ln in raw.split(b"\r\n") if ln]
    return lines[:-1], lines[-1]


def info(port: serial.Serial, command: str) -> list[str]:
    """The information lines of a command that must answer OK."""
    lines, final = ask(port, command)
    assert final == "OK", (command, lines, final)
    return lines


def read_lines(port: serial.Serial, count: int, deadline: float = READ_DEADLINE) -> list[bytes]:
    """Read until ``count`` complete non-empty lines have arrived; return them (what came
    after the last of them is kept for the next read)."""
    buf = _PENDING.pop(port, b"")
    end = time.monotonic() + deadline
    while True:
        lines: list[bytes] = []
        pos = 0
        while len(lines) < count and (nl := buf.find(b"\r\n", pos)) >= 0:
            if nl > pos:
                lines.append(buf[pos:nl])
            pos = nl + 2
        if len(lines) == count:
            if buf[pos:]:
                _PENDING[port] = buf[pos:]
            return lines
        if time.monotonic() >= end:
            raise AssertionError(f"fewer than {count} lines within {deadline} s; got {buf!r}")
        buf += port.read(512)


def wait_registered(port: serial.Serial, registered: bool) -> None:
    """Wait until the modem is (or is not) registered. Needs ``AT+CEREG=1``: the +CEREG URC
    is the event; the query first, in case the change happened already."""
    want = b"+CEREG: 1\r\n" if registered else b"+CEREG: 2\r\n"
    query = next(ln for ln in info(port, "AT+CEREG?") if ln.startswith("+CEREG: 1,"))  # not a URC
    if (query == "+CEREG: 1,1") != registered:
        read_until(port, want)


@contextlib.contextmanager
def pocket_lab_modem(*options: str) -> Iterator[str]:
    """``pocket-lab modem <options>`` as a real process: yields the pty path it prints,
    then stops it with SIGTERM and checks that it exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "board.virtual.lab", "modem", *options],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        path = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert path.startswith("/dev/pts/"), path
        yield path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

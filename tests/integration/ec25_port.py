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
from collections.abc import Iterator
from pathlib import Path

import serial

REPO = Path(__file__).resolve().parents[2]

READ_DEADLINE = 3.0
"""Seconds to wait for a final result code (the modem thread answers in milliseconds;
the margin covers a loaded 2-core CI machine)."""

FINALS = (b"OK", b"ERROR", b"NO CARRIER", b"CONNECT", b"BUSY", b"NO ANSWER", b"NO DIALTONE")


def read_until(port: serial.Serial, done: bytes | None = None, deadline: float = READ_DEADLINE) -> bytes:
    """Read until a final result code line (or the line/bytes ``done``) has arrived."""
    buf = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        buf += port.read(512)
        if done is not None and done in buf:
            return buf
        lines = buf.split(b"\r\n")[:-1]
        if done is None and any(ln in FINALS or ln.startswith((b"+CME ERROR", b"+CMS ERROR", b"CONNECT")) for ln in lines):
            return buf
    raise AssertionError(f"no final result code within {deadline} s; got {buf!r}")


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
    """Read until ``count`` complete non-empty lines have arrived; return them."""
    buf = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        buf += port.read(512)
        lines = [ln for ln in buf.split(b"\r\n")[:-1] if ln]
        if len(lines) >= count:
            return lines
    raise AssertionError(f"fewer than {count} lines within {deadline} s; got {buf!r}")


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

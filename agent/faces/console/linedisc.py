"""The console's line discipline: bytes from a terminal in; echo and whole lines out.

Pure (no I/O), so every terminal program's habits can be tested byte by byte. A serial
port in raw mode (pyserial's default) gives us the bytes exactly as the technician's
terminal sent them, and terminals disagree:

* Enter is CR (picocom, minicom, PuTTY by default), LF (``screen`` with some settings, a
  script piping a file) or CRLF (PuTTY with "implicit LF", Windows tools). CRLF must end
  *one* line, so an LF directly after a CR is swallowed.
* Backspace is BS (0x08) or DEL (0x7f) depending on the terminal; both erase one char.
* Arrow and function keys send escape sequences (``ESC [ A``); they are swallowed whole
  rather than leaking ``[A`` into the line.
* Line noise and a cable plugged into the wrong thing produce arbitrary bytes: anything
  that is not printable ASCII or one of the keys above is dropped and counted.

A line that carried any such noise byte is reported as ``Noise`` and never run: noise
must not be able to type a command. Ctrl-C abandons the line (and stops ``watch``), Ctrl-D on an empty line logs out, Ctrl-U
erases the whole line. A line longer than ``max_line`` is not kept: the excess is not
echoed and the line is reported as too long when Enter comes, so a 10,000-character
paste costs at most ``max_line`` bytes of memory.
"""

from __future__ import annotations

from dataclasses import dataclass

LINE_MAX = 256
"""Characters per line. The longest sensible command is ``at`` with an AT command line,
and 3GPP TS 27.007 section 4.1 lets a modem limit a command line to 256 characters."""

CR, LF, BS, DEL, ESC = 0x0D, 0x0A, 0x08, 0x7F, 0x1B
CTRL_C, CTRL_D, CTRL_U = 0x03, 0x04, 0x15
BELL = b"\x07"
ERASE = b"\b \b"
"""Back one column, overwrite with a space, back again: works on every terminal."""
NEWLINE = b"\r\n"


@dataclass(frozen=True)
class Line:
    """Enter was pressed; ``text`` is the line (printable ASCII, never longer than the limit)."""

    text: str


@dataclass(frozen=True)
class TooLong:
    """Enter ended a line that passed the limit; the line was discarded."""

    length: int


@dataclass(frozen=True)
class Noise:
    """Enter ended a line that carried bytes no keyboard sends (line noise, a baud rate
    mismatch, binary data): it is never run as a command."""

    dropped: int


@dataclass(frozen=True)
class Interrupt:
    """Ctrl-C: the line was abandoned (and a running ``watch`` must stop)."""


@dataclass(frozen=True)
class Logout:
    """Ctrl-D on an empty line."""


Event = Line | TooLong | Noise | Interrupt | Logout


class LineDiscipline:
    """One terminal's input state. ``feed(bytes)`` returns ``(echo, events)``."""

    def __init__(self, max_line: int = LINE_MAX, *, echo: bool = True):
        self.max_line = max_line
        self.echo = echo
        self.dropped = 0
        """Bytes thrown away as noise (not printable, not a key we know)."""
        self._buf = bytearray()
        self._length = 0
        """Characters typed into this line, including those past the limit."""
        self._after_cr = False
        self._noise = 0
        """Noise bytes dropped since the current line began."""
        self._escape = 0
        """0: normal; 1: after ESC; 2: inside a CSI/SS3 sequence (until its final byte)."""

    @property
    def pending(self) -> str:
        """What has been typed so far on the current line."""
        return self._buf.decode("ascii")

    def feed(self, data: bytes) -> tuple[bytes, list[Event]]:
        echo = bytearray()
        events: list[Event] = []
        for byte in data:
            self._byte(byte, echo, events)
        return (bytes(echo) if self.echo else b""), events

    # ---- one byte ----------------------------------------------------------------------
    def _byte(self, byte: int, echo: bytearray, events: list[Event]) -> None:
        after_cr, self._after_cr = self._after_cr, False
        if self._escape:
            self._in_escape(byte)
        elif byte == CR:
            self._after_cr = True
            self._enter(echo, events)
        elif byte == LF:
            if not after_cr:
                self._enter(echo, events)
        elif 0x20 <= byte < 0x7F:
            self._printable(byte, echo)
        elif byte in (BS, DEL):
            self._erase(echo)
        elif byte == CTRL_C:
            self._reset()
            echo += b"^C" + NEWLINE
            events.append(Interrupt())
        elif byte == CTRL_D:
            if self._length == 0:
                events.append(Logout())
        elif byte == CTRL_U:
            echo += ERASE * len(self._buf)
            self._reset()
        elif byte == ESC:
            self._escape = 1
        else:
            self.dropped += 1
            self._noise += 1

    def _in_escape(self, byte: int) -> None:
        """Swallow ``ESC x`` and ``ESC [ ... final`` / ``ESC O final`` (ECMA-48 5.4)."""
        if self._escape == 1:
            self._escape = 2 if byte in (ord("["), ord("O")) else 0
        elif 0x40 <= byte <= 0x7E or not 0x20 <= byte < 0x7F:
            self._escape = 0  # final byte, or garbage that cannot be part of a sequence

    def _printable(self, byte: int, echo: bytearray) -> None:
        self._length += 1
        if len(self._buf) < self.max_line:
            self._buf.append(byte)
            echo.append(byte)
        elif self._length == self.max_line + 1:
            echo += BELL  # once, so a long paste does not ring 10,000 times

    def _erase(self, echo: bytearray) -> None:
        if self._length > len(self._buf):
            self._length -= 1  # erasing characters that were never kept or echoed
        elif self._buf:
            self._buf.pop()
            self._length -= 1
            echo += ERASE

    def _enter(self, echo: bytearray, events: list[Event]) -> None:
        echo += NEWLINE
        if self._noise:
            events.append(Noise(self._noise))
        elif self._length > self.max_line:
            events.append(TooLong(self._length))
        else:
            events.append(Line(self._buf.decode("ascii")))
        self._reset()

    def _reset(self) -> None:
        self._buf.clear()
        self._length = 0
        self._noise = 0

"""The virtual modem's command-line editor: V.250 clause 5.2 as a person at picocom meets it.

A real baseband echoes every character as it arrives (while ``E1``), not the whole line
when Enter is pressed; it lets the person rub out a typo with the S5 character; it runs
``A/`` (repeat the last command line) the moment the ``/`` arrives; it ends a line on the
S3 character only; and it refuses a line longer than its buffer with ``ERROR``. This
module is that editor, pure (bytes in, echo bytes and finished lines out), so the
modem's core loop only feeds it and acts on what comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

LOGGER = logging.getLogger(__name__)

MAX_COMMAND_LINE = 1024
"""Characters a command line may hold (after ``AT``). V.250 5.2.1 requires at least 40;
real basebands keep a fixed buffer and answer ERROR when it overflows. 1024 holds the
longest line this project sends (+VSIMLOAD with two keys, ~140 bytes) several times
over; an SMS PDU goes after the ``>`` prompt, not on the command line."""

DEL = 0x7F
"""Most terminal programs (picocom included) send DEL for the backspace key; real
Quectel firmware rubs out on it as on S5 (BS), so this editor does too."""

REPEAT = "A/"
"""V.250 5.2.4: repeat the last command line, executed on receipt of the ``/``."""

OVERFLOW = "\x00overflow"
"""What ``feed`` yields for a line that exceeded ``MAX_COMMAND_LINE`` (the modem
answers ERROR); a NUL cannot arrive as part of a real line, the editor drops it."""


@dataclass
class Registers:
    """The S-registers the editor honours; read on every byte, so ``ATS3=`` takes effect
    from the next character, as on a real modem."""

    get: Callable[[int], int]

    @property
    def cr(self) -> int:
        return self.get(3)

    @property
    def bs(self) -> int:
        return self.get(5)


class LineEditor:
    """Bytes from the DTE -> (bytes to echo, command lines completed by them)."""

    def __init__(self, registers: Registers, echo: Callable[[], bool]):
        self._regs = registers
        self._echo = echo
        self._buf = bytearray()
        self._overflow = False
        self.last_line = ""
        """The previous command line, for ``A/``."""

    def clear(self) -> None:
        """Forget a half-typed line (the port was closed and reopened, or a reboot)."""
        self._buf.clear()
        self._overflow = False

    def feed(self, data: bytes) -> tuple[bytes, list[str]]:
        """Process ``data``; return what to echo and the finished lines (each without its
        terminator; ``OVERFLOW`` for a line that was too long)."""
        echo = bytearray()
        lines: list[str] = []
        echoing = self._echo()
        cr, bs = self._regs.cr, self._regs.bs
        for byte in data:
            if byte == cr:
                if echoing:
                    echo.append(byte)
                lines.extend(self._finish())
            elif byte in (bs, DEL):
                if self._buf:
                    self._buf.pop()
                    if echoing:
                        echo += bytes((bs, 0x20, bs))  # V.250: S5, space, S5 rubs it out
            elif byte == 0 or byte == 10 and not self._buf:
                continue  # NUL; LF after CR (CR LF from the DTE) starts nothing
            else:
                if echoing:
                    echo.append(byte)
                if len(self._buf) >= MAX_COMMAND_LINE:
                    self._overflow = True
                    continue
                self._buf.append(byte)
                if self._buf.upper() == REPEAT.encode() and not self._overflow:
                    self._buf.clear()
                    if echoing:
                        echo += b"\r"
                    if self.last_line:
                        lines.append(self.last_line)
        return bytes(echo), lines

    def _finish(self) -> list[str]:
        raw = bytes(self._buf)
        self._buf.clear()
        if self._overflow:
            self._overflow = False
            return [OVERFLOW]
        line = raw.decode("latin-1").strip()
        if not line:
            return []
        if line[:2].upper() == "AT":
            self.last_line = line
        return [line]

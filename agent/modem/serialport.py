"""The modem's serial port in the event loop: a non-blocking fd, read and written there.

``SerialTransport`` is the asyncio transport the AT framer (agent/modem/at.py) sits on:
``loop.add_reader`` hands it every byte the modem sends; a read error or EOF means the
port went away (the protocol's ``connection_lost``). A write takes what the tty buffer
takes at once; the rest waits for the fd to become writable (``loop.add_writer``), in
order. A modem that stops reading entirely (firmware hung, USB endpoint stalled) fills
the tty's buffer: before issue 20 the write retried ``BlockingIOError`` in a loop and the
daemon spun at 100 % CPU for ever (procd has no watchdog to end it). Now nothing is
retried until the kernel says the fd is writable, and if the modem takes no byte for
``WRITE_STALL_S`` the port is given up with ``PortStalled`` (a ``PortClosed``: the command
in flight fails, and the recovery ladder reopens the port as after a pulled cable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from agent.errors import PortStalled

LOGGER = logging.getLogger(__name__)

READ_CHUNK = 4096
"""Bytes read per readiness event; a full response fits, larger ones take two reads."""

WRITE_STALL_S = 3.0
"""How long the modem may take no byte at all before the port counts as stalled. An AT
line is under 600 bytes and a tty buffer (4 KiB and up) drains in 0.36 s even at 115200
baud; USB CDC-ACM modems take a line in microseconds. Three seconds without one byte
taken is a hung modem, not a slow one, and well inside every command's own timeout
(agent/modem/commands.py), so the command fails with the real cause."""


class SerialTransport:
    """A pyserial port whose fd is watched by the loop; bytes go to ``protocol``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ser: Any, protocol: asyncio.Protocol):
        self._loop = loop
        self._ser = ser
        self._fd: int = ser.fileno()
        self._protocol = protocol
        self._closed = False
        self._unsent = bytearray()
        """Bytes the tty did not take yet, written in order when the fd is writable."""
        self._stall: asyncio.TimerHandle | None = None
        loop.add_reader(self._fd, self._on_readable)
        protocol.connection_made(self)  # type: ignore[arg-type]

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the pty master or the USB device is gone
            self._lose(exc)
            return
        if not data:
            self._lose(None)
            return
        self._protocol.data_received(data)

    def _lose(self, exc: Exception | None) -> None:
        self._shutdown()
        self._protocol.connection_lost(exc)

    def write(self, data: bytes) -> None:
        """Queue ``data``; never blocks and never spins. OSError if the port is closed or
        the write fails outright (EIO: the device is gone)."""
        if self._closed:
            raise OSError("port closed")
        if self._unsent:  # earlier bytes still wait: keep the order
            self._unsent += data
            return
        taken = self._write_now(memoryview(data))
        if taken < len(data):
            self._unsent += data[taken:]
            self._loop.add_writer(self._fd, self._on_writable)
            self._arm_stall()

    def _write_now(self, view: memoryview) -> int:
        """Write what the tty takes now; stop at the first EAGAIN. Returns bytes taken."""
        taken = 0
        while taken < len(view):
            try:
                n = os.write(self._fd, view[taken:])
            except BlockingIOError:
                break
            if n <= 0:
                break
            taken += n
        return taken

    def _on_writable(self) -> None:
        try:
            taken = self._write_now(memoryview(self._unsent))
        except OSError as exc:
            self._lose(exc)
            return
        del self._unsent[:taken]
        if not self._unsent:
            self._loop.remove_writer(self._fd)
            self._disarm_stall()
        elif taken:
            self._arm_stall()  # the modem is slow, not stuck: the bound is on no progress

    def _arm_stall(self) -> None:
        self._disarm_stall()
        self._stall = self._loop.call_later(WRITE_STALL_S, self._stalled)

    def _disarm_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        waiting = len(self._unsent)
        LOGGER.warning("AT port: the modem took no byte for %.1f s (%d bytes waiting): giving the port up",
                       WRITE_STALL_S, waiting)
        self._lose(PortStalled(f"modem took no byte for {WRITE_STALL_S:g} s ({waiting} bytes waiting)"))

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet taken by the tty (asyncio's transport API)."""
        return len(self._unsent)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._disarm_stall()
        self._unsent.clear()
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self._fd)
        with contextlib.suppress(Exception):
            self._ser.close()

    def close(self) -> None:
        if not self._closed:
            self._shutdown()
            self._protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self._closed

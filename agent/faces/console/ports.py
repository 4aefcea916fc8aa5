"""The console's serial ports: pyserial at 115200 8N1, in the event loop, never blocking.

The real world this survives:

* **The cable is pulled** (a USB gadget port such as ``/dev/ttyGS0`` goes away, or the
  lab's pty is closed): reads fail with EIO or the device node disappears. The session
  ends (and with it any technician login), and the port is reopened every
  ``REOPEN_EVERY`` seconds until it is back.
* **A terminal stops reading** (flow control, a suspended laptop, a full pty): writes get
  EAGAIN, output collects in a buffer of at most ``OUT_MAX`` bytes, and anything beyond
  is dropped and counted; once the terminal reads again it is told how much it missed.
  Nothing waits on the terminal, so the daemon's other work never does.
* **Noise or a flood**: input is read at most at the line's own rate (``LINE_RATE``
  bytes a second); beyond that the port is simply not read for a while, so the kernel's
  buffer fills and a flooding sender is slowed by the tty itself. The line discipline's
  cost per second is therefore bounded whatever is connected.

One ``Terminal`` per port; two ports give two independent terminals.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable
from typing import Any

import serial

from agent.faces.console.session import IDLE_LOGOUT, Session

LOGGER = logging.getLogger(__name__)

BAUD = 115200
"""The rate every serial terminal program offers; USB gadget ports ignore it."""
LINE_RATE = BAUD // 10
"""Bytes a second 115200 8N1 can carry (10 bits per byte): the most a technician's
terminal can send, hence the most we ever need to process."""
READ_BURST = 4096
"""Bytes read ahead of the line-rate budget: a pasted command or two."""
READ_CHUNK = 1024
OUT_MAX = 16 * 1024
"""Output held for a terminal that is not reading: ~1.4 s of 115200 baud, more than any
one answer (``log 500`` is the largest, and is cut rather than blocking anything)."""
LOW_WATER = OUT_MAX // 4
"""A long answer is written in pieces, each once the buffer is down to this."""
STALL_S = 2.0
"""Seconds a long answer waits for the terminal to take the next piece before the rest is
dropped: a terminal reading at 115200 baud takes 4 kB in 0.35 s."""
REOPEN_EVERY = 1.0
"""Seconds between attempts to reopen a port that went away (USB re-enumeration takes
about a second)."""
VANISHED = (errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF)


class Output:
    """A bounded, non-blocking writer for one fd: ``write`` never waits, never raises."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, on_gone: Callable[[], None]):
        self.fd, self.loop, self.on_gone = fd, loop, on_gone
        self.buf = bytearray()
        self.dropped = 0
        self._watching = False
        self._low = asyncio.Event()
        self._low.set()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        if len(self.buf) + len(data) > OUT_MAX:
            self.dropped += len(data)
            return
        self.buf += data
        self._flush()

    def _flush(self) -> None:
        while self.buf:
            try:
                n = os.write(self.fd, self.buf[:READ_CHUNK])
            except BlockingIOError:
                break
            except OSError as exc:
                self.buf.clear()
                if exc.errno in VANISHED:
                    self.on_gone()
                return
            del self.buf[:n]
            if not self.buf and self.dropped:
                self.buf += f"\r\n[console: {self.dropped} bytes of output dropped: terminal not reading]\r\n".encode()
                self.dropped = 0
        if len(self.buf) <= LOW_WATER:
            self._low.set()
        else:
            self._low.clear()
        self._watch(bool(self.buf))

    async def drain(self) -> bool:
        """Wait until the terminal has taken most of what is buffered; False if it did not
        within ``STALL_S`` (the caller goes on, and what does not fit is dropped)."""
        if self.fd < 0:
            return False
        try:
            await asyncio.wait_for(self._low.wait(), STALL_S)
        except TimeoutError:
            return False
        return True

    def _watch(self, want: bool) -> None:
        if want and not self._watching:
            self.loop.add_writer(self.fd, self._flush)
        elif not want and self._watching:
            self.loop.remove_writer(self.fd)
        self._watching = want

    def close(self) -> None:
        if self._watching:
            self.loop.remove_writer(self.fd)
            self._watching = False
        self.fd = -1


class Terminal:
    """One console port: open, serve a session, notice it vanish, reopen; forever."""

    def __init__(self, port: str, make_session: Callable[[Callable[[bytes], None], str], Session]):
        self.port = port
        self.make_session = make_session
        self.sessions = 0
        """Sessions served so far (each reopen of the port starts one)."""
        self.session: Session | None = None
        self.output: Output | None = None
        self._gone = asyncio.Event()

    async def run(self) -> None:
        while True:
            ser = await self._open()
            try:
                await self._serve(ser)
            finally:
                with contextlib.suppress(Exception):
                    ser.close()
            await asyncio.sleep(REOPEN_EVERY)

    async def _open(self) -> serial.Serial:
        logged = False
        while True:
            try:
                return serial.Serial(self.port, BAUD, bytesize=8, parity="N", stopbits=1, timeout=0,
                                     write_timeout=0, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                if not logged:
                    LOGGER.info("console port %s not available (%s): waiting for it", self.port, exc)
                    logged = True
            await asyncio.sleep(REOPEN_EVERY)

    async def _serve(self, ser: serial.Serial) -> None:
        loop = asyncio.get_running_loop()
        fd = ser.fileno()
        os.set_blocking(fd, False)
        self._gone = asyncio.Event()
        out = self.output = Output(fd, loop, self._gone.set)
        session = self.make_session(out.write, self.port)
        session.drain = out.drain
        self.session, self.sessions = session, self.sessions + 1
        reader = _RateLimitedReader(fd, loop, session.feed, self._gone.set)
        LOGGER.info("console on %s: terminal connected", self.port)
        task = loop.create_task(session.run(), name=f"console {self.port}")
        watch = loop.create_task(self._watch_path(), name=f"console watch {self.port}")
        gone = loop.create_task(self._gone.wait())
        try:
            await asyncio.wait([task, watch, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.close()
            out.close()
            watch.cancel()
            gone.cancel()
            if not task.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.close("port closed"), 5.0)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:  # a console bug ends this session only; the port is reopened
                    LOGGER.exception("console session on %s failed", self.port)
            with contextlib.suppress(Exception):
                session.client.close()
            self.session = None
            LOGGER.info("console on %s: terminal gone", self.port)

    async def _watch_path(self) -> None:
        """A removed device node (or the lab's symlink) means the cable was pulled, even if
        the fd we hold stays quiet."""
        while os.path.exists(self.port):
            await asyncio.sleep(REOPEN_EVERY)
        self._gone.set()


class _RateLimitedReader:
    """Reads the fd when readable, at most ``LINE_RATE`` bytes/s after a ``READ_BURST``."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, feed: Callable[[bytes], None],
                 on_gone: Callable[[], None]):
        self.fd, self.loop, self.feed, self.on_gone = fd, loop, feed, on_gone
        self._budget = float(READ_BURST)
        self._at = loop.time()
        self._pause: asyncio.TimerHandle | None = None
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        now = self.loop.time()
        self._budget = min(READ_BURST, self._budget + (now - self._at) * LINE_RATE)
        self._at = now
        if self._budget < 1:
            self.loop.remove_reader(self.fd)
            self._pause = self.loop.call_later((1 - self._budget) / LINE_RATE + 0.05, self._resume)
            return
        try:
            data = os.read(self.fd, min(READ_CHUNK, int(self._budget)))
        except BlockingIOError:
            return
        except OSError as exc:
            LOGGER.info("console port read failed (%s): treating it as unplugged", exc)
            self.close()
            self.on_gone()
            return
        if not data:
            self.close()
            self.on_gone()
            return
        self._budget -= len(data)
        try:
            self.feed(data)
        except Exception:  # a console bug must never escape into the daemon's loop
            LOGGER.exception("console input handling failed")

    def _resume(self) -> None:
        self._pause = None
        if self.fd >= 0:
            self.loop.add_reader(self.fd, self._readable)

    def close(self) -> None:
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1


class ConsoleServer:
    """Every configured port, one control client per session (the daemon is the one login
    authority for all of them: agent/core/logins.py)."""

    def __init__(self, ports: list[str], make_client: Callable[[], Any], *, idle_logout: float | None = None):
        self.make_client = make_client
        self.idle_logout = idle_logout if idle_logout is not None else IDLE_LOGOUT
        self.terminals = [Terminal(port, self._session) for port in ports]

    def _session(self, write: Callable[[bytes], None], port: str) -> Session:
        return Session(write, self.make_client(), terminal=port, idle_logout=self.idle_logout)

    async def run(self) -> None:
        """Serve until cancelled; a crash in one terminal restarts that terminal only."""
        await asyncio.gather(*(self._keep(t) for t in self.terminals))

    @staticmethod
    async def _keep(terminal: Terminal) -> None:
        while True:
            try:
                await terminal.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                LOGGER.exception("console on %s failed; restarting it", terminal.port)
                await asyncio.sleep(REOPEN_EVERY)

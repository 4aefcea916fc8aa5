"""AT framing: bytes to lines, one command in flight, final result codes, URCs.

Modelled on zigpy-znp's ``uart.py`` (a protocol object that buffers bytes and
resynchronises) and ``api.py`` (one request in flight, a priority path, listener
registered before sending, a timeout on every request).

Layers in this module:

* ``LineFramer`` (pure): bytes -> text lines. CR, LF and CRLF all end a line; partial
  lines are buffered; a line longer than ``MAX_LINE_BYTES`` is dropped up to the next
  terminator (resynchronisation after garbage); lines with control bytes or invalid
  UTF-8 are reported as garbage rather than as text.
* ``AtChannel`` (an ``asyncio.Protocol``): owns the command/response state machine.
  ``command()`` sends one line and returns the lines up to the final result code.
  URCs are recognised at any point, also between lines of a response, and handed to
  subscribers. The echo of the command line is dropped. Which line is final, a URC or
  text is not decided here: every line goes through ``codes.classify_line`` (the one
  reading ``decode`` uses too); timeouts and which commands are sensitive come from the
  channel's command table (``commands.py``; the driver sets its dialect's).
* ``open_channel()``: the pyserial port's non-blocking fd in the event loop, through
  ``agent.modem.serialport.SerialTransport``; read error or EOF means the port went
  away (``PortClosed``), a modem that stops reading ``PortStalled``.

Never a wrong answer
--------------------
After a command times out its late lines may still arrive. The channel then marks
itself *desynchronised*: every line that is not a URC is discarded while no command
is in flight, and before the next command is written the channel resynchronises:
it drains until the line is quiet, then sends a *sentinel* whose answer carries a
token unique to this resync (``ATS7=<n>S7?`` by default: V.250 S7, the circuit-switched
"wait for carrier" timer, means nothing to a packet-data modem, and reading it back
returns ``<n>``). Only when the token comes back followed by its final code is the
channel in step again; everything before it belonged to older commands. If the
sentinel fails ``RESYNC_ATTEMPTS`` times the waiting command fails with ``AtTimeout``
without having been sent, and the recovery ladder takes over.

Secrets
-------
``command(..., sensitive=True)`` (the vSIM load carries Ki/OPc) suppresses the command
text in every log line and error (shown as ``AT+CMD=<redacted>``), suppresses the raw
byte trace while it is in flight (the modem echoes the line back), and drops any
response line that looks like the echo. Whatever fails underneath a sensitive command
(an encoder, a transport, a bug) comes out as a ``ModemError`` naming only the redacted
line and the failure's type, with no chained exception: a ``UnicodeEncodeError`` quotes
the whole line, and the supervisor logs a dying task's exception with ``%r`` (issue 20).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError, AtCommandError, AtTimeout, ModemError, PortClosed, PortStalled
from agent.logs import TRACE
from agent.modem import codes
from agent.modem.codes import LineKind
from agent.modem.commands import KNOWN, CommandTable, LineFacts
from agent.modem.serialport import READ_CHUNK, SerialTransport  # noqa: F401 - open_channel's transport; re-exported

LOGGER = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096
"""Longest line kept. +COPS=? with a dozen operators is ~600 bytes; anything far
beyond is line noise, and an unbounded buffer is a memory leak on a router."""

MAX_RESPONSE_LINES = 1024
"""Most lines one response may hold (issue 20). The longest real answer is a message
listing over a full SIM store (+CMGL: 255 messages x 2 lines = 510); a modem still
talking after 1,024 lines is broken or hostile. With MAX_LINE_BYTES this bounds one
response at 4 MiB instead of all the memory a router has."""

# --- resynchronisation --------------------------------------------------------------
RESYNC_QUIET = 0.05
"""Seconds of silence that count as "the modem has finished talking"; a 115200 baud
line carries ~575 bytes in that time, so a response still in progress is not quiet."""
RESYNC_DRAIN_MAX = 1.0
"""Upper bound on draining before the sentinel is sent anyway (a chatty modem)."""
RESYNC_TIMEOUT = 2.0
"""Time for the sentinel's answer; it is a local register read (no network)."""
RESYNC_ATTEMPTS = 3
"""Sentinels tried before giving up and letting the recovery ladder act."""


def redact(command: str) -> str:
    """``AT+VSIMLOAD=1,"...ki..."`` -> ``AT+VSIMLOAD=<redacted>`` for logs and errors."""
    head = command.split("=", 1)[0].split("?", 1)[0]
    return f"{head}=<redacted>"


def error_from_final(final: str, command: str, lines: tuple[str, ...]) -> AtCommandError:
    """The typed error for a failure final code: ``code`` (27.007 9.2 number, also for a
    verbose text ``codes.parse_error`` knows) and ``name`` (the modem's text or the standard name)."""
    code: int | None = None
    name: str | None = final
    parsed = codes.parse_error(final)
    if parsed is not None:
        code, name = parsed.code, parsed.name
    raw = "\n".join((*lines, final))
    return AtCommandError(f"{command}: {final}", command=command, raw=raw, code=code, name=name)


# --- framing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One framed line: ``text`` when it decoded cleanly, else ``garbage`` holds the bytes.

    The framer's promise: exactly one of the two is set. ``text`` has no CR/LF and no
    control byte and is never blank; its blanks are kept as received (the classifier tells
    ``+CME ERROR:`` from ``+CME ERROR: ``). ``garbage`` is never empty."""

    text: str | None
    garbage: bytes = b""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class LineFramer:
    """Bytes -> ``Line``s. Pure: no I/O, no time. Feed it any chunking of the stream."""

    def __init__(self, max_line: int = MAX_LINE_BYTES):
        self._buf = bytearray()
        self._max = max_line
        self._overflow = False
        self.garbage_lines = 0

    def feed(self, data: bytes) -> list[Line]:
        """Add bytes; return every line completed by them (blank lines skipped)."""
        out: list[Line] = []
        for chunk in re.split(rb"([\r\n])", data):
            if chunk in (b"\r", b"\n"):
                self._end_line(out)
            elif chunk:
                self._append(chunk)
        return out

    def _append(self, chunk: bytes) -> None:
        if self._overflow:
            return
        self._buf += chunk
        if len(self._buf) > self._max:
            # Resynchronise: throw this line away up to the next terminator.
            self._overflow = True
            self._buf.clear()

    def _end_line(self, out: list[Line]) -> None:
        if self._overflow:
            self._overflow = False
            self.garbage_lines += 1
            out.append(Line(None, b"<line over %d bytes>" % self._max))
            return
        if not self._buf:
            return
        raw = bytes(self._buf)
        self._buf.clear()
        line = self._decode(raw)
        if line is not None:
            out.append(line)

    def _decode(self, raw: bytes) -> Line | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.garbage_lines += 1
            return Line(None, raw)
        if _CONTROL.search(text):
            self.garbage_lines += 1
            return Line(None, raw)
        return Line(text) if text.strip() else None

    def discard_partial(self) -> bytes:
        """Drop an unfinished line: bytes before a command is sent belong to nothing
        the command will get back (its answer starts on a fresh line)."""
        partial = bytes(self._buf)
        self._buf.clear()
        self._overflow = False
        return partial

    @property
    def pending(self) -> bytes:
        """Bytes of the unfinished line (for ``> `` prompts and tests)."""
        return bytes(self._buf)


# --- command state ------------------------------------------------------------------


@dataclass(frozen=True)
class AtResponse:
    """What a command got back: information lines and the final result code."""

    command: str
    lines: tuple[str, ...]
    final: str

    def first(self, prefix: str) -> str | None:
        """The first line starting with ``prefix``."""
        return next((ln for ln in self.lines if ln.startswith(prefix)), None)


@dataclass
class _Pending:
    command: str
    shown: str
    sensitive: bool
    future: asyncio.Future[AtResponse]
    owners: tuple[str, ...] = ()
    lines: list[str] = field(default_factory=list)
    garbage: list[bytes] = field(default_factory=list)


class PriorityLock:
    """One holder at a time; ``priority=True`` waiters (reset, recovery) go first."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, priority: bool = False) -> Any:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: bool) -> None:
        if not self._locked and not self._waiters:
            self._locked = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (0 if priority else 1, next(self._seq), fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # we were handed the lock but are leaving
            else:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # ownership passes directly
                return
        self._locked = False

    @property
    def locked(self) -> bool:
        return self._locked


UrcCallback = Callable[[str], None]
Writer = Callable[[bytes], None]


def default_sentinel(n: int) -> tuple[str, str]:
    """(command, token line) of resync number ``n``. See the module doc."""
    value = n % 200 + 1  # S7 accepts 1..255 on every V.250 modem
    return f"ATS7={value}S7?", f"{value:03d}"


class AtChannel(asyncio.Protocol):
    """The AT command/response state machine over any byte transport."""

    def __init__(
        self,
        *,
        sentinel: Callable[[int], tuple[str, str]] = default_sentinel,
        commands: CommandTable = KNOWN,
    ):
        self._framer = LineFramer()
        self._lock = PriorityLock()
        self._pending: _Pending | None = None
        self._subscribers: list[tuple[str, UrcCallback]] = []
        self._write: Writer | None = None
        self._transport: asyncio.BaseTransport | Any = None
        self._closed_exc: PortClosed | None = None
        self._closing = False
        self._quiet = False
        """Set when a sensitive command timed out: its late echo may still come, so
        received text is not logged until the channel is back in step."""
        self._desynced = False
        self._sentinel = sentinel
        self._resync_count = 0
        self.commands = commands
        """What the channel knows of each command: timeouts, secrets, answer prefixes. The
        driver sets its dialect's table; a bare channel knows every dialect's commands."""
        self._last_rx = 0.0
        self._rx_event = asyncio.Event()
        self.stats: dict[str, int] = {
            "commands": 0, "timeouts": 0, "resyncs": 0, "stale_lines": 0,
            "garbage_lines": 0, "urcs": 0,
        }

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._write = transport.write
        self._closed_exc = None

    def data_received(self, data: bytes) -> None:
        self._last_rx = asyncio.get_running_loop().time()
        self._rx_event.set()
        if self._quiet or (self._pending is not None and self._pending.sensitive):
            LOGGER.log(TRACE, "rx <%d bytes during or after a sensitive command>", len(data))
        else:
            LOGGER.log(TRACE, "rx %r", data)
        for line in self._framer.feed(data):
            self._on_line(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_exc = PortClosed(f"serial port closed: {exc or 'EOF'}", raw=str(exc or ""))
        self._write = None
        deliberate = self._closing and exc is None
        pending = self._pending
        if pending is not None and not pending.future.done():
            kind, why = (PortStalled, f": {exc}") if isinstance(exc, PortStalled) else (PortClosed, "")
            pending.future.set_exception(kind(f"port closed during {pending.shown}{why}", command=pending.shown))
        LOGGER.log(logging.DEBUG if deliberate else logging.WARNING, "AT port closed: %s", exc or "EOF")

    # -- URCs ------------------------------------------------------------------------
    def subscribe(self, prefix: str, callback: UrcCallback) -> Callable[[], None]:
        """Call ``callback(line)`` for every URC starting with ``prefix`` ("" = all), in
        any case (modems that print ``+cereg:`` exist)."""
        entry = (prefix.upper(), callback)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(entry)

        return unsubscribe

    def _dispatch_urc(self, line: str) -> None:
        self.stats["urcs"] += 1
        upper = line.upper()
        shown = f"{line.split(':', 1)[0]} <{len(line)} characters>" if upper.startswith(codes.QUIET_URC_PREFIXES) else line
        LOGGER.debug("URC %s", shown)
        for prefix, callback in list(self._subscribers):
            if upper.startswith(prefix):
                try:
                    callback(line)
                except Exception:  # a subscriber's bug must not kill the reader
                    LOGGER.exception("URC subscriber failed on %r", shown)

    # -- line routing ----------------------------------------------------------------
    def _on_line(self, line: Line) -> None:
        pending = self._pending
        if line.text is None:
            self.stats["garbage_lines"] += 1
            LOGGER.debug("garbage line (%d bytes) dropped", len(line.garbage))
            if pending is not None:
                pending.garbage.append(line.garbage)
            return
        found = codes.classify_line(line.text, pending.owners if pending is not None else None)
        text = line.text.strip()
        if found.kind is LineKind.URC:
            self._dispatch_urc(text)
            return
        if pending is None or pending.future.done():
            self.stats["stale_lines"] += 1
            if not pending and not self._quiet:
                LOGGER.debug("line with no command in flight dropped: %r", text)
            return
        self._on_response_line(pending, text, found.kind)

    def _on_response_line(self, pending: _Pending, text: str, kind: LineKind) -> None:
        if text == pending.command.strip() or (pending.sensitive and text.upper().startswith("AT")):
            return  # echo of our own line
        if kind is LineKind.TEXT:
            if len(pending.lines) >= MAX_RESPONSE_LINES:
                self._desynced = True  # the rest of this answer must not reach the next command
                self._quiet = self._quiet or pending.sensitive
                pending.future.set_exception(ModemError(
                    f"{pending.shown}: more than {MAX_RESPONSE_LINES} lines in the response", command=pending.shown))
                return
            pending.lines.append(text)
            return
        if pending.garbage:
            pending.future.set_exception(
                ModemError(
                    f"{pending.shown}: garbage in the response",
                    command=pending.shown,
                    raw=None if pending.sensitive else repr(pending.garbage)[:200],
                )
            )
            return
        if kind is LineKind.ERROR:
            pending.future.set_exception(self._failure(pending, text))
            return
        pending.future.set_result(AtResponse(pending.shown, tuple(pending.lines), text))

    @staticmethod
    def _failure(pending: _Pending, final: str) -> AtCommandError:
        """The error for a failure code. For a sensitive command only a numeric code is
        kept: a modem that quotes its input back in an error text must not leak it."""
        if not pending.sensitive:
            return error_from_final(final, pending.shown, tuple(pending.lines))
        err = error_from_final(final, pending.shown, ())
        numeric = final.rsplit(":", 1)[-1].strip().isdigit() or final.upper() in codes.FINAL_ERROR
        return AtCommandError(
            f"{pending.shown}: error {err.code if err.code is not None else ''}".rstrip(),
            command=pending.shown, code=err.code, name=err.name if numeric else "withheld",
        )

    # -- commands --------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._write is not None

    @property
    def desynced(self) -> bool:
        return self._desynced

    async def command(
        self,
        command: str,
        *,
        timeout: float | None = None,
        sensitive: bool = False,
        priority: bool = False,
    ) -> AtResponse:
        """Send ``command`` and return its answer; raise on an error final code.

        Raises ``AtTimeout``, ``AtCommandError``, ``PortClosed`` or ``ModemError``.
        ``priority=True`` jumps the queue (reset and recovery beat traffic).
        """
        facts = self.commands.facts(command)
        sensitive = sensitive or facts.sensitive
        if not sensitive:
            return await self._locked(command, facts, timeout, False, priority)
        failure: ModemError
        try:
            return await self._locked(command, facts, timeout, True, priority)
        except AgentError:
            raise  # ours: built with the redacted line only
        except Exception as exc:  # noqa: BLE001 - whatever failed underneath, its text or repr may hold the line
            failure = ModemError(f"{redact(command)}: {type(exc).__name__} while sending (details withheld: "
                                 "the line carries secrets)", command=redact(command))
        raise failure  # outside the handler: no __context__ that a traceback would print

    async def _locked(self, command: str, facts: LineFacts, timeout: float | None, sensitive: bool,
                      priority: bool) -> AtResponse:
        async with self._lock.hold(priority):
            if self._desynced:
                await self._resync(command if not sensitive else redact(command))
            return await self._exchange(command, facts, timeout, sensitive)

    async def _exchange(
        self, command: str, facts: LineFacts, timeout: float | None, sensitive: bool
    ) -> AtResponse:
        if self._write is None:
            raise self._closed_exc or PortClosed("serial port is not open")
        shown = redact(command) if sensitive else command
        limit = facts.timeout if timeout is None else timeout
        fut: asyncio.Future[AtResponse] = asyncio.get_running_loop().create_future()
        if self._framer.discard_partial():
            self.stats["stale_lines"] += 1
        self._pending = _Pending(command, shown, sensitive, fut, facts.owners)  # listener before sending
        self.stats["commands"] += 1
        try:
            self._send(command, shown, sensitive)
            return await asyncio.wait_for(fut, limit)
        except TimeoutError:
            self.stats["timeouts"] += 1
            self._desynced = True
            self._quiet = self._quiet or sensitive
            LOGGER.warning("%s: no final result code within %.1f s", shown, limit)
            raise AtTimeout(f"{shown}: no answer within {limit:g} s", command=shown) from None
        finally:
            self._pending = None

    def _send(self, command: str, shown: str, sensitive: bool) -> None:
        if not command.isascii():  # V.250 command lines are IA5; the encoder's error would quote the line
            raise ModemError(f"{shown}: not sent, the line holds a non-ASCII character", command=shown)
        data = command.encode("ascii") + b"\r"
        if sensitive:
            LOGGER.log(TRACE, "tx <sensitive command, %d bytes>", len(data))
        else:
            LOGGER.log(TRACE, "tx %r", data)
        assert self._write is not None
        try:
            self._write(data)
        except OSError as exc:
            self.connection_lost(exc)
            raise PortClosed(f"write failed: {exc}", raw=str(exc)) from exc

    async def _drain_until_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESYNC_DRAIN_MAX
        while loop.time() < deadline:
            self._rx_event.clear()
            try:
                await asyncio.wait_for(self._rx_event.wait(), RESYNC_QUIET)
            except TimeoutError:
                return

    async def _resync(self, waiting: str) -> None:
        """Get back in step after a timeout (see the module doc); raise AtTimeout if not."""
        for _ in range(RESYNC_ATTEMPTS):
            self.stats["resyncs"] += 1
            await self._drain_until_quiet()
            self._resync_count += 1
            sentinel, token = self._sentinel(self._resync_count)
            try:
                resp = await self._exchange(sentinel, self.commands.facts(sentinel), RESYNC_TIMEOUT, False)
            except (AtTimeout, AtCommandError, ModemError) as exc:
                if isinstance(exc, PortClosed):
                    raise
                LOGGER.debug("resync sentinel failed: %s", exc)
                continue
            if token in resp.lines:
                self._desynced = self._quiet = False
                LOGGER.info("AT channel back in step after a timeout")
                return
            shown = f"<{len(resp.lines)} lines>" if self._quiet else repr(resp.lines)
            LOGGER.debug("resync answer %s lacks token %s; stale answer consumed", shown, token)
        raise AtTimeout(f"{waiting}: not sent, modem out of step after a timeout", command=waiting)

    async def resync(self) -> None:
        """Force a resynchronisation now (used by the recovery ladder)."""
        async with self._lock.hold(True):
            self._desynced = True
            await self._resync("resync")

    def close(self) -> None:
        """Close the transport (idempotent)."""
        if self._transport is not None:
            self._closing = True
            self._transport.close()
            self._transport = None


# --- the serial port in the event loop ----------------------------------------------

DEFAULT_BAUD = 115200
"""The rate every USB modem's AT port accepts (it is ignored on USB CDC-ACM anyway)."""


async def open_channel(port: str, baud: int = DEFAULT_BAUD, **kwargs: Any) -> AtChannel:
    """Open ``port`` (a tty path or pyserial URL) and return a connected ``AtChannel``."""
    import serial  # pyserial; imported here so the pure framer has no dependency

    try:
        ser = serial.serial_for_url(port, baudrate=baud, timeout=0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortClosed(f"cannot open {port}: {exc}", raw=str(exc)) from exc
    channel = AtChannel(**kwargs)
    SerialTransport(asyncio.get_running_loop(), ser, channel)
    return channel

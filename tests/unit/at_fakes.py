"""Fault-injecting fake transports for the AT channel (bellows/zigpy-znp style).

``FakeModem`` is a tiny modem on the far side of an in-memory transport: it answers
``AT+TOK=<n>`` with a self-checking line ``+TOK: <n>-<n reversed>`` so a test can tell
a right answer, a garbled one and another command's answer apart. Bytes travel in
chunks of chosen size, with chosen delays and loss, from a seeded RNG.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, field

from agent.modem.at import AtChannel, AtResponse


@dataclass
class Faults:
    chunk: int = 0
    """0: whole write at once; n: n-byte chunks; -1: random 1..8 bytes."""
    delay: float = 0.0
    """Max random delay per chunk (order kept)."""
    loss: float = 0.0
    """Probability of losing each byte."""
    urc_probability: float = 0.0
    """Chance of a URC before each response line."""
    echo: bool = False
    hang_next: int = 0
    """The next n commands are answered only ``late`` seconds later."""
    late: float | None = 0.0
    """None: a hung command's answer is held until ``FakeModem.release()``, so a test puts
    it after the timeout by the order of events, not by a race of two delays."""
    seed: int = 7


def tok_line(n: int) -> str:
    return f"+TOK: {n}-{str(n)[::-1]}"


def parse_tok(line: str) -> int | None:
    """The n of a well-formed +TOK line, None when garbled."""
    m = re.fullmatch(r"\+TOK: (\d+)-(\d+)", line)
    if not m or m.group(1)[::-1] != m.group(2):
        return None
    return int(m.group(1))


@dataclass
class FakeModem:
    channel: AtChannel
    faults: Faults = field(default_factory=Faults)
    sent: list[str] = field(default_factory=list)
    sregs: dict[int, int] = field(default_factory=dict)
    closed: bool = False
    held: list[bytes] = field(default_factory=list)
    """Answers of hung commands kept back (``Faults.late`` None) until ``release()``."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.faults.seed)
        self.loop = asyncio.get_running_loop()
        self._t = self.loop.time()
        self.channel.connection_made(self)

    # transport API
    def write(self, data: bytes) -> None:
        line = data.decode().strip()
        self.sent.append(line)
        out = self.answer(line)
        if self.faults.echo:
            out = [line] + out
        delay = 0.0
        if self.faults.hang_next > 0:
            self.faults.hang_next -= 1
            if self.faults.late is None:
                self.held.append(self.frame(out))
                return
            delay = self.faults.late
        self.deliver(self.frame(out), delay)

    def release(self) -> None:
        """The hung modem wakes: the answers it held arrive now, in order."""
        held, self.held = self.held, []
        for data in held:
            self.deliver(data)

    def close(self) -> None:
        self.closed = True

    def answer(self, line: str) -> list[str]:
        if m := re.fullmatch(r"AT\+TOK=(\d+)", line):
            return [tok_line(int(m.group(1))), "OK"]
        if m := re.fullmatch(r"ATS7=(\d+)S7\?", line):
            self.sregs[7] = int(m.group(1))
            return [f"{self.sregs[7]:03d}", "OK"]
        if m := re.fullmatch(r"AT\+ERR=(.+)", line):
            return [f"+CME ERROR: {m.group(1)}"]
        if line == "AT+CREG?":
            return ["+CREG: 2,1", "OK"]
        if line == "AT+SILENT":
            return []
        return ["OK"] if line.startswith("AT") else []

    def frame(self, lines: list[str]) -> bytes:
        out = b""
        for ln in lines:
            if self.faults.urc_probability and self.rng.random() < self.faults.urc_probability:
                out += b"\r\n+CEREG: 1\r\n"
            out += b"\r\n" + ln.encode() + b"\r\n"
        return out

    def deliver(self, data: bytes, extra_delay: float = 0.0) -> None:
        f = self.faults
        if f.loss:
            data = bytes(b for b in data if self.rng.random() >= f.loss)
        pos = 0
        while pos < len(data):
            size = len(data) if f.chunk == 0 else f.chunk if f.chunk > 0 else self.rng.randint(1, 8)
            chunk = data[pos:pos + size]
            pos += size
            now = self.loop.time()
            self._t = max(self._t + 1e-6, now + extra_delay + (self.rng.random() * f.delay if f.delay else 0.0))
            self.loop.call_at(self._t, self._feed, chunk)

    def _feed(self, chunk: bytes) -> None:
        if not self.closed:
            self.channel.data_received(chunk)

    def urc(self, line: str) -> None:
        self.deliver(b"\r\n" + line.encode() + b"\r\n")


async def in_flight(
    command: str = "AT+SILENT", timeout: float = 1.0, faults: Faults | None = None
) -> tuple[AtChannel, asyncio.Task[AtResponse]]:
    """A channel over a ``FakeModem`` with ``command`` written and its answer awaited, so a
    test can feed the channel what the modem says (``AT+SILENT`` gets no answer of its own)."""
    channel = AtChannel()
    FakeModem(channel, faults or Faults())
    task = asyncio.ensure_future(channel.command(command, timeout=timeout))
    await asyncio.sleep(0)  # the command is written and listening before anything arrives
    return channel, task


def async_test(fn):  # type: ignore[no-untyped-def]
    """Run an ``async def`` test on a fresh event loop (the venv has no pytest-asyncio)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return wrapper

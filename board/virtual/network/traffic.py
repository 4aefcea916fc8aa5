"""Load from the LAN host through the router: the one traffic model of the virtual board.

``pocket-lab traffic start`` runs it in the lab's ``-lan`` namespace and the trace
recorder (``tracegen``) runs it in its own, against the same byte source
(``services``), so what the lab shows and what the trace library recorded are the same
shapes of load, the ones the low-speed detector must tell apart (docs/health.md):

- ``bulk``: ``--flows`` long downloads, each open until the deadline or the budget;
- ``web``: pages of 1-6 objects (20-620 kB, log-normal) fetched in parallel, then 1-5 s
  of reading;
- ``video``: a 4-second segment at ``--video-kbps`` (+-1/6) every 4 seconds, back to back
  when the player falls behind (adaptive players fetch in chunks and sit idle between);
- ``mixed``: one bulk flow and web pages at once;
- ``streamN``: one connection the server paces at N kbps (an app-limited stream);
- ``upload``: one upload of ``--bytes``; ``idle``: nothing.

Every kind is bounded by ``--duration`` and ``--bytes`` and stops by itself, or on
SIGTERM. On exit it prints one JSON line: {"kind", "bytes_down", "bytes_up", "seconds"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time
from collections.abc import Awaitable

from board.virtual.network.services import MAX_STREAM_BYTES, SOURCE_PORT

SERVER = ("198.18.0.1", SOURCE_PORT)
READ_CHUNK = 64 * 1024
STALL_SECONDS = 5.0
"""A connection that neither connects nor delivers a byte for 5 s is given up (and a bulk
flow re-opened), as a client's socket timeout does: a link that went down, a NAT entry a
SIM swap flushed."""
RETRY_SECONDS = 1.0
"""Pause after a connection that could not be made, before the next try."""

PAGE_OBJECTS = (1, 6)
"""Objects per page, fetched in parallel (browsers open about six connections per host)."""
OBJECT_LOGNORMAL = (11.5, 1.0)
"""ln(bytes) of a web object: median ~100 kB, a long tail, as measured page weights."""
OBJECT_BYTES = (20_000, 600_000)
"""An object is 20 kB plus the log-normal size modulo 600 kB: no object is tiny or huge."""
THINK_SECONDS = (1.0, 5.0)
"""Reading time between pages."""
PAGE_TIMEOUT = 30.0
"""A page that takes longer is abandoned, as a user gives up on it."""
SEGMENT_SECONDS = 4.0
"""Adaptive players fetch 2-10 s segments; 4 s is the HLS/DASH default of many."""
SEGMENT_JITTER = 1 / 6
"""Segment sizes vary +-1/6 around the bitrate (scene complexity in a VBR encoding)."""
VIDEO_KBPS = 1200
"""A mid-quality mobile video (~600 kB per 4 s segment)."""


class Load:
    """Byte counts and bounds shared by every connection of one run."""

    def __init__(self, host: str, port: int, deadline: float, byte_budget: int):
        self.host, self.port = host, port
        self.deadline, self.budget = deadline, byte_budget
        self.down = 0
        self.up = 0

    def done(self) -> bool:
        return time.monotonic() >= self.deadline or self.down >= self.budget

    async def get(self, nbytes: int, request: str | None = None, deadline: float | None = None) -> None:
        """Download ``nbytes`` (or what ``request`` asks for) until done, ``deadline`` or a
        stall; a connection that cannot be made costs ``RETRY_SECONDS`` (no busy loop)."""
        nbytes = max(0, min(nbytes, self.budget - self.down))
        if nbytes == 0:
            return
        until = min(self.deadline, deadline or self.deadline)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                    min(STALL_SECONDS, max(until - time.monotonic(), 0.01)))
        except (TimeoutError, OSError):
            await asyncio.sleep(min(RETRY_SECONDS, max(until - time.monotonic(), 0.0)))
            return
        try:
            writer.write((request or f"GET {nbytes}\n").encode())
            await writer.drain()
            while not self.done() and time.monotonic() < until:
                wait = min(STALL_SECONDS, max(until - time.monotonic(), 0.01))
                data = await asyncio.wait_for(reader.read(READ_CHUNK), wait)
                if not data:
                    break
                self.down += len(data)
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def put(self, nbytes: int) -> None:
        _reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"PUT\n")
            chunk = bytes(READ_CHUNK)
            sent = 0
            while sent < nbytes and not self.done():
                writer.write(chunk[: nbytes - sent])
                await writer.drain()
                sent += min(READ_CHUNK, nbytes - sent)
            self.up += sent
        finally:
            writer.close()


async def bulk(load: Load, flows: int) -> None:
    async def one() -> None:
        while not load.done():
            await load.get(MAX_STREAM_BYTES)
    await asyncio.gather(*(one() for _ in range(flows)))


def page_sizes(rng: random.Random) -> list[int]:
    """The objects of one web page, in bytes."""
    return [int(rng.lognormvariate(*OBJECT_LOGNORMAL)) % OBJECT_BYTES[1] + OBJECT_BYTES[0]
            for _ in range(rng.randint(*PAGE_OBJECTS))]


async def web(load: Load, rng: random.Random) -> None:
    while not load.done():
        page_deadline = time.monotonic() + PAGE_TIMEOUT
        await asyncio.gather(*(load.get(s, deadline=page_deadline) for s in page_sizes(rng)))
        await asyncio.sleep(min(max(0.0, load.deadline - time.monotonic()), rng.uniform(*THINK_SECONDS)))


async def video(load: Load, kbps: int, rng: random.Random) -> None:
    segment = kbps * 1000 / 8 * SEGMENT_SECONDS
    due = time.monotonic()
    while not load.done():
        await load.get(int(rng.uniform(1 - SEGMENT_JITTER, 1 + SEGMENT_JITTER) * segment))
        due += SEGMENT_SECONDS
        await asyncio.sleep(max(0.0, min(due, load.deadline) - time.monotonic()))


async def stream(load: Load, kbps: int) -> None:
    await load.get(MAX_STREAM_BYTES, request=f"STREAM {kbps}\n")


async def idle(load: Load) -> None:
    await asyncio.sleep(max(0.0, load.deadline - time.monotonic()))


def workload(args: argparse.Namespace, load: Load, rng: random.Random) -> Awaitable[object]:
    """The coroutine of ``--kind``."""
    kind = args.kind
    if kind.startswith("stream"):
        return stream(load, int(kind.removeprefix("stream")))
    if kind == "mixed":
        return asyncio.gather(bulk(load, 1), web(load, rng))
    return {"bulk": lambda: bulk(load, args.flows), "web": lambda: web(load, rng),
            "video": lambda: video(load, args.video_kbps, rng), "upload": lambda: load.put(args.bytes),
            "idle": lambda: idle(load)}[kind]()


def kind_arg(text: str) -> str:
    """argparse type of ``--kind``: a named kind or ``stream<kbps>``."""
    if text in KINDS or (text.startswith("stream") and text.removeprefix("stream").isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"kind must be one of {', '.join(KINDS)} or stream<kbps>")


KINDS = ("bulk", "web", "video", "mixed", "upload", "idle")


async def run(args: argparse.Namespace) -> dict[str, object]:
    deadline = time.monotonic() + args.duration
    load = Load(args.host, args.port, deadline, args.bytes)
    rng = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(workload(args, load, rng))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    started = time.monotonic()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return {"kind": args.kind, "bytes_down": load.down, "bytes_up": load.up,
            "seconds": round(time.monotonic() - started, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", type=kind_arg, default="bulk", help=f"{', '.join(KINDS)} or stream<kbps>")
    parser.add_argument("--host", default=SERVER[0])
    parser.add_argument("--port", type=int, default=SERVER[1])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds, at most (default 600)")
    parser.add_argument("--bytes", type=int, default=MAX_STREAM_BYTES, help="download budget in bytes")
    parser.add_argument("--flows", type=int, default=2)
    parser.add_argument("--video-kbps", type=int, default=VIDEO_KBPS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

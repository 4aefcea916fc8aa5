"""Load from the LAN host through the router: ``bulk``, ``web`` or ``video``.

Run inside the ``-lan`` namespace (``pocket-lab traffic start`` does). Every kind is
bounded by ``--duration`` and ``--bytes`` and stops by itself. The shapes are the ones
the low-speed detector must tell apart (docs/health.md):

- ``bulk``: back-to-back large downloads on ``--flows`` parallel connections;
- ``web``: page loads (a burst of 5-20 objects of 5-300 kB) with 1-6 s think time;
- ``video``: a 4-second segment every 4 seconds at ``--video-kbps`` (adaptive players
  fetch in chunks and sit idle between them).

On exit it prints one JSON line: {"kind", "bytes_down", "bytes_up", "seconds"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import time

SERVER = ("198.18.0.1", 9000)
BULK_OBJECT = 8 * 1024 * 1024
"""8 MiB per bulk request: long enough to reach steady state, short enough to re-open."""
READ_CHUNK = 64 * 1024


class Load:
    def __init__(self, host: str, port: int, deadline: float, byte_budget: int):
        self.host, self.port = host, port
        self.deadline, self.budget = deadline, byte_budget
        self.down = 0
        self.up = 0

    def done(self) -> bool:
        return time.monotonic() >= self.deadline or self.down >= self.budget

    async def get(self, nbytes: int) -> None:
        nbytes = max(0, min(nbytes, self.budget - self.down))
        if nbytes == 0:
            return
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(f"GET {nbytes}\n".encode())
            await writer.drain()
            while not self.done():
                left = self.deadline - time.monotonic()
                data = await asyncio.wait_for(reader.read(READ_CHUNK), max(left, 0.01))
                if not data:
                    break
                self.down += len(data)
        except TimeoutError:
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
            await load.get(BULK_OBJECT)
    await asyncio.gather(*(one() for _ in range(flows)))


async def web(load: Load, rng: random.Random) -> None:
    while not load.done():
        sizes = [rng.randint(5_000, 300_000) for _ in range(rng.randint(5, 20))]
        for i in range(0, len(sizes), 6):  # browsers open about six connections per host
            await asyncio.gather(*(load.get(s) for s in sizes[i : i + 6]))
        await asyncio.sleep(rng.uniform(1.0, 6.0))


async def video(load: Load, kbps: int) -> None:
    segment = 4.0
    while not load.done():
        start = time.monotonic()
        await load.get(int(kbps * 1000 / 8 * segment))
        await asyncio.sleep(max(0.0, segment - (time.monotonic() - start)))


async def run(args: argparse.Namespace) -> dict[str, object]:
    deadline = time.monotonic() + args.duration
    load = Load(args.host, args.port, deadline, args.bytes)
    rng = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    task: asyncio.Future[object]
    if args.kind == "bulk":
        task = asyncio.ensure_future(bulk(load, args.flows))
    elif args.kind == "web":
        task = asyncio.ensure_future(web(load, rng))
    elif args.kind == "upload":
        task = asyncio.ensure_future(load.put(args.bytes))
    else:
        task = asyncio.ensure_future(video(load, args.video_kbps))
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
    parser.add_argument("--kind", choices=["bulk", "web", "video", "upload"], default="bulk")
    parser.add_argument("--host", default=SERVER[0])
    parser.add_argument("--port", type=int, default=SERVER[1])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds, at most (default 600)")
    parser.add_argument("--bytes", type=int, default=1 << 30, help="download budget in bytes")
    parser.add_argument("--flows", type=int, default=2)
    parser.add_argument("--video-kbps", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

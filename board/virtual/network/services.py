"""What lives on "the internet" of the lab (198.18.0.1 in the ``-inet`` namespace).

- a UDP echo reflector (RFC 862 echo, port 7): the agent's delay/loss probe target;
- a byte source on TCP 9000: a client sends one request line and gets bytes back.
  ``GET <n>`` (or just ``<n>``, the agent's active check) streams exactly n bytes
  then closes;
  ``PUT`` reads and discards until the client closes (uploads);
  ``STREAM <kbps>`` sends at a fixed bitrate in ``STREAM_TICK_S`` slices until the
  client closes (an app-limited audio or video stream);
  every stream is bounded by ``MAX_STREAM_BYTES`` and ``MAX_STREAM_SECONDS``.

Run as ``python -m board.virtual.network.services --host 198.18.0.1`` inside the namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

LOGGER = logging.getLogger(__name__)

ECHO_PORT = 7
"""RFC 862's echo port: what a network engineer expects a reflector on."""
SOURCE_PORT = 9000
MAX_STREAM_BYTES = 1 << 30
"""1 GiB: no lab transfer is larger; a bound so a runaway client cannot fill a day."""
MAX_STREAM_SECONDS = 900.0
"""15 minutes: longer than any test or demo load; every stream ends by itself."""
CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)
STREAM_TICK_S = 0.1
"""A fixed-bitrate stream goes out in 100 ms slices, as a streaming server paces one."""


class EchoProtocol(asyncio.DatagramProtocol):
    """Send every datagram back to where it came from."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def serve_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One TCP client of the byte source: its request line, then GET, PUT or STREAM."""
    try:
        line = await asyncio.wait_for(reader.readline(), 10)
        words = line.decode("ascii", "replace").split()
        if len(words) == 1 and words[0].isdigit():
            words = ["GET", words[0]]
        if words[:1] == ["GET"] and len(words) == 2 and words[1].isdigit():
            await asyncio.wait_for(_send(writer, min(int(words[1]), MAX_STREAM_BYTES)), MAX_STREAM_SECONDS)
        elif words[:1] == ["PUT"]:
            await asyncio.wait_for(_sink(reader), MAX_STREAM_SECONDS)
        elif words[:1] == ["STREAM"] and len(words) == 2 and words[1].isdigit():
            await asyncio.wait_for(_paced(writer, int(words[1])), MAX_STREAM_SECONDS)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def _send(writer: asyncio.StreamWriter, total: int) -> None:
    left = total
    while left > 0:
        chunk = PATTERN[: min(CHUNK, left)]
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)
    await writer.drain()


async def _paced(writer: asyncio.StreamWriter, kbps: int) -> None:
    """``kbps`` in slices on an absolute schedule: a capped link makes writes wait, and the
    schedule then catches up, as a streaming server's buffer does. Bounded by
    ``MAX_STREAM_BYTES`` like every stream."""
    piece = bytes(max(1, round(kbps * 1000 / 8 * STREAM_TICK_S)))
    writer.transport.set_write_buffer_limits(high=0)  # drain() waits for the kernel, as a blocking write
    loop = asyncio.get_running_loop()
    due, sent = loop.time(), 0
    while sent < MAX_STREAM_BYTES:
        writer.write(piece)
        await writer.drain()
        sent += len(piece)
        due += STREAM_TICK_S
        await asyncio.sleep(max(0.0, due - loop.time()))


async def _sink(reader: asyncio.StreamReader) -> None:
    seen = 0
    while seen < MAX_STREAM_BYTES:
        data = await reader.read(CHUNK)
        if not data:
            return
        seen += len(data)


async def serve(host: str) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(EchoProtocol, local_addr=(host, ECHO_PORT))
    server = await asyncio.start_server(serve_stream, host, SOURCE_PORT)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    LOGGER.info("services up: udp echo %s:%d, byte source %s:%d", host, ECHO_PORT, host, SOURCE_PORT)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="198.18.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(args.host))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A loopback front for mosquitto that refuses connections the way a managed broker does.

mosquitto 2.0 never answers CONNACK with 0x89 "Server busy" or 0x9F "Connection rate
exceeded" and has no connection rate limit, so to meet those answers with the real
CloudLink, this front listens on its own port: for each new TCP connection it asks
``decide()``; ``None`` pipes the raw bytes, untouched, to the real mosquitto (TLS is
end to end, the session is real), a reason code makes the front finish the TLS handshake
itself (with the broker's certificate), read the CONNECT and answer a five-byte CONNACK
with that reason. When mosquitto is down, forwarding fails and the client sees the
connection closed, as it would with the broker itself. Lab and bench use only.

``rate_limit(per_s)`` is the decide() of a broker admitting ``per_s`` connections a second.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOGGER = logging.getLogger(__name__)

IO_TIMEOUT_S = 10.0
"""Bound on a refused client's handshake and CONNECT: loopback answers in milliseconds."""

PIPE_CHUNK = 65536


def connack(reason: int) -> bytes:
    """MQTT 5 CONNACK: type 2, remaining length 3, no session present, ``reason``, no properties."""
    return bytes([0x20, 0x03, 0x00, reason, 0x00])


def rate_limit(per_s: float, reason: int = 0x9F) -> Callable[[], int | None]:
    """Admit at most ``per_s`` connections in each wall-clock second; refuse the rest with ``reason``."""
    state = {"second": -1, "count": 0}

    def decide() -> int | None:
        second = int(time.monotonic())
        if second != state["second"]:
            state["second"], state["count"] = second, 0
        state["count"] += 1
        return None if state["count"] <= per_s else reason

    return decide


class ConnackFront:
    """See the module docstring. ``start()`` returns the port; ``stop()`` closes everything.

    Refusals run the blocking ``ssl`` handshake in a worker thread: asyncio's start_tls on
    an accepted stream can lose a ClientHello that arrived before it was called."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int], decide: Callable[[], int | None],
                 host: str = "127.0.0.1"):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.upstream, self.decide = upstream, decide
        self.refused: list[tuple[float, int]] = []
        self.forwarded: list[float] = []
        self.sock = socket.create_server((host, 0), backlog=4096)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="connack-front")
        self._writers: set[asyncio.StreamWriter] = set()
        self._accept: asyncio.Future[None] | None = None

    def start(self) -> int:
        self._thread.start()
        self._accept = asyncio.run_coroutine_threadsafe(self._accept_loop(), self._loop)  # type: ignore[assignment]
        return self.port

    def stop(self) -> None:
        async def close() -> None:
            for w in list(self._writers):
                w.close()
        if self._accept is not None:
            self._accept.cancel()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(IO_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(IO_TIMEOUT_S)
        self.sock.close()

    async def _accept_loop(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while True:
            conn, _ = await self._loop.sock_accept(self.sock)
            task = asyncio.create_task(self._on_client(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _on_client(self, conn: socket.socket) -> None:
        reason = self.decide()
        if reason is not None:
            await self._loop.run_in_executor(None, self._refuse, conn, reason)
            return
        self.forwarded.append(time.monotonic())  # admitted: the decision's time, as a rate limit counts
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        self._writers.add(writer)
        try:
            await self._forward(reader, writer)
        except OSError as exc:
            LOGGER.debug("forwarding ended: %s", exc)
        finally:
            self._writers.discard(writer)
            writer.close()

    def _refuse(self, conn: socket.socket, reason: int) -> None:
        """Blocking, in a worker thread: TLS as the broker, read CONNECT, answer CONNACK ``reason``."""
        conn.setblocking(True)
        conn.settimeout(IO_TIMEOUT_S)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                if read_packet_blocking(tls)[0] >> 4 != 1:
                    return  # not a CONNECT: just close
                self.refused.append((time.monotonic(), reason))
                tls.sendall(connack(reason))
        except (OSError, IndexError) as exc:
            LOGGER.debug("refusal ended early: %s", exc)
            conn.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


def read_packet_blocking(conn: ssl.SSLSocket) -> bytes:
    """One MQTT packet from a blocking socket: fixed header, remaining length, body."""
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise OSError("peer closed mid-packet")
            data += chunk
        return data
    head = exactly(1)
    length, shift = 0, 0
    while True:
        byte = exactly(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return head + exactly(length)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF or error, then close the other side (either end's death ends both)."""
    try:
        while data := await src.read(PIPE_CHUNK):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        dst.close()

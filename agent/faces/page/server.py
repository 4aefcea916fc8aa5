"""The status page's HTTP server: the standard library's asyncio, bounded everywhere.

Why no web framework: the router has little memory, the page is three read-only paths,
and a server this small can be read whole. HTTP/1.1 (RFC 9112) as far as a browser and
``curl`` need it: one request per connection (``Connection: close``), GET and HEAD.

Where it listens, and only there: the LAN address (the board profile's ``lan_address``),
with the socket bound to the LAN interface (``SO_BINDTODEVICE``), so a packet for that
address arriving on the WAN side (Linux accepts any local address on any interface, the
"weak host" model) finds no socket; and a peer outside the LAN's network is closed on
without a byte, should a route ever bring one.

Bounds (each a constant below with its reason): the request head's size, its header
count and the time a client may take to send it; open connections; requests per client
address; the time a client may take to read the answer. Whatever breaks them (a scanner,
a malformed request, a slow client, a flood) costs a closed connection and a debug line:
a LAN scanner must not fill the router's flash, and the daemon's loop stays free.

The facts come from the daemon through ``fetch`` (the control socket's ``renter``), at
most once per ``CACHE_S`` however many clients ask: two hundred reloads cost one
question to the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agent.core.control import TokenBucket
from agent.core.page_settings import PageSettings
from agent.errors import AgentError
from agent.faces.page import facts, render
from agent.faces.page.words import choose

LOGGER = logging.getLogger(__name__)

PAGE_PATHS = ("/", "/index.html")
JSON_PATH = "/api/v1/status"
FAVICON_PATH = "/favicon.ico"

MAX_HEAD = 8192
"""Bytes of request line and headers: browsers send 0.5-2 kB (cookies are the big part, and
this origin sets none); 8 kB is common servers' default and far above what the page needs."""
MAX_HEADERS = 64
"""Header fields per request; a browser sends about 15."""
HEAD_TIMEOUT_S = 5.0
"""Seconds to receive the whole head, however it trickles in: a browser sends it in one
packet; a client slower than this is holding a connection slot (slowloris), not reading."""
WRITE_TIMEOUT_S = 5.0
"""Seconds for a client to take the answer (a few kB): longer is a client that stopped reading."""
MAX_CONNECTIONS = 32
"""Connections served at once. A household's phones and laptops open a few each; past
this a connection is closed at once, so 200 at the same instant cost 168 accepts and closes."""
BACKLOG = 32
"""The listen queue (connections the kernel holds while the loop is busy) and the number
asyncio accepts per wake-up: a burst of 200 is taken 32 at a time, between other work."""
RATE_PER_S = 5.0
RATE_BURST = 20
"""Requests per client address: a page load is one request (two with the favicon), a
screen or LED driver polls once a second; 5/s after a burst of 20 leaves room for that and
refuses a loop (429)."""
CLIENTS_TRACKED = 256
"""Client addresses whose rate is remembered (a /24 LAN at most); the oldest is forgotten."""
CACHE_S = 1.0
"""How long one answer of the daemon serves every request: the figures move once a second."""
FETCH_TIMEOUT_S = 3.0
"""The daemon's answer to ``renter`` is in memory (no AT command); slower means it is busy,
and the page says "not available right now" rather than hang."""
RETRY_BIND_S = (2.0, 60.0)
"""Binding again after a failure (the LAN address not yet configured at boot): every 2 s,
growing to a minute."""

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
           429: "Too Many Requests", 503: "Service Unavailable"}
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", render.CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
"""Live figures are never cached; nothing but the page's own style runs; never framed."""


class BadRequest(AgentError):
    """A request head that is not HTTP/1.x as RFC 9112 writes it."""


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lower-case names) of a request head (without its
    final empty line); BadRequest if it is not one."""
    lines = head.decode("latin-1").split("\r\n")  # RFC 9112 5: field values are octets; latin-1 maps each
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper() or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest("too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise BadRequest("bad header field")
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


class PageServer:
    """Serves the page on the LAN address; ``run()`` is a task the supervisor owns."""

    def __init__(self, settings: PageSettings, fetch: Callable[[], Awaitable[dict[str, Any]]],
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._fetch = fetch
        self._monotonic = monotonic
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._cache: tuple[float, dict[str, Any] | None] | None = None
        self._inflight: asyncio.Future[dict[str, Any] | None] | None = None
        self._bodies: dict[tuple[int, str, str], tuple[int, bytes, str]] = {}
        self.counts = {"served": 0, "refused": 0, "closed": 0}
        """Requests answered 200; answered with an error; connections closed without an answer."""
        self.bound_to_device = False
        self._bug_told = False
        self.port = settings.port
        """The port listened on (the configured one; the kernel's pick when that is 0, in tests)."""

    @property
    def address(self) -> str:
        assert self.settings.interface is not None
        return str(self.settings.interface.ip)

    @property
    def url(self) -> str:
        return f"http://{self.address}" + ("" if self.port == 80 else f":{self.port}") + "/"

    # ---- life cycle -------------------------------------------------------------------
    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            option = getattr(socket, "SO_BINDTODEVICE", None)
            if option is not None and self.settings.device:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, self.settings.device.encode() + b"\0")
                    self.bound_to_device = True
                except OSError as exc:  # Linux < 5.7 wants CAP_NET_RAW: the peer check still holds
                    LOGGER.info("status page: not bound to %s (%s); answering LAN peers only",
                                self.settings.device, exc.strerror or exc)
            sock.bind((self.address, self.settings.port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def start(self) -> None:
        sock = self._socket()
        self.port = sock.getsockname()[1]
        # backlog: also how many connections asyncio accepts in one go, so a burst is taken
        # in slices of BACKLOG with the loop's other work between them
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD, backlog=BACKLOG)
        LOGGER.info("status page on %s (LAN %s)", self.url, self.settings.device)

    async def run(self) -> None:
        """Bind (again and again while the LAN address is missing), then serve until cancelled."""
        delay, told = RETRY_BIND_S[0], False
        try:
            while self._server is None:
                try:
                    await self.start()
                except OSError as exc:
                    level = logging.DEBUG if told else logging.WARNING
                    hint = " (a port below 1024 needs CAP_NET_BIND_SERVICE)" if exc.errno == errno.EACCES else ""
                    LOGGER.log(level, "status page cannot listen on %s:%s: %s%s; retrying", self.address,
                               self.settings.port, exc.strerror or exc, hint)
                    told = True
                    await asyncio.sleep(delay)
                    delay = min(RETRY_BIND_S[1], delay * 2)
            await asyncio.Event().wait()  # serving happens in the server's callbacks
        finally:
            await self.stop()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for task in list(self._conns):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    # ---- one connection ---------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername") or ("?", 0)
        if len(self._conns) >= MAX_CONNECTIONS or not self._from_lan(peer[0]):
            self.counts["closed"] += 1
            LOGGER.debug("status page: closed %s at once (%d open)", peer[0], len(self._conns))
            writer.transport.abort()
            return
        assert task is not None
        self._conns.add(task)
        try:
            try:
                await self._one_request(reader, writer, peer[0])
            except BadRequest as exc:
                LOGGER.debug("status page: %s: %s", peer[0], exc)
                await self._send(writer, 400, b"bad request\n", "text/plain")
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.counts["closed"] += 1  # oversize, slow, gone: closed, never logged above debug
            LOGGER.debug("status page: %s closed: %s", peer[0], type(exc).__name__)
        except Exception:  # our bug, not the client's: said once, then quietly (a client could repeat it)
            self.counts["closed"] += 1
            LOGGER.log(logging.DEBUG if self._bug_told else logging.ERROR, "status page: request failed",
                       exc_info=True)
            self._bug_told = True
        finally:
            self._conns.discard(task)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # a client that does not read: no lingering close
            else:
                writer.close()

    def _from_lan(self, host: str) -> bool:
        assert self.settings.interface is not None
        try:
            return ipaddress.ip_address(host) in self.settings.interface.network
        except ValueError:
            return False

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        method, target, headers = parse_head(head[:-4])
        if not self._bucket(peer).take():
            await self._send(writer, 429, b"", "text/plain", extra=(("Retry-After", "1"),))
            return
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            await self._send(writer, 413, b"", "text/plain")  # nothing here takes a body
            return
        try:
            url = urlsplit(target)
        except ValueError:  # "http://[x/": a client's garbage, not our bug
            raise BadRequest("bad request target") from None
        path = url.path
        if path not in (*PAGE_PATHS, JSON_PATH, FAVICON_PATH):
            await self._send(writer, 404, b"not found\n", "text/plain")
            return
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, b"", "text/plain", extra=(("Allow", "GET, HEAD"),))
            return
        if path == FAVICON_PATH:
            await self._send(writer, 200, render.FAVICON, "image/svg+xml", head_only=method == "HEAD")
            return
        override = next(iter(parse_qs(url.query).get("lang") or []), None)
        lang = choose(headers.get("accept-language"), self.settings.languages, override)
        raw = await self._facts()
        status, body, kind = self._body(raw, JSON_PATH if path == JSON_PATH else "/", lang)
        await self._send(writer, status, body, kind, lang, method == "HEAD")

    def _body(self, raw: dict[str, Any] | None, path: str, lang: str) -> tuple[int, bytes, str]:
        """The answer for ``path`` in ``lang`` from this snapshot, drawn once per snapshot
        (about 1 ms for the page): a burst of reloads costs one rendering, not one each."""
        key = (id(raw), path, lang)
        cached = self._bodies.get(key)
        if cached is not None:
            return cached
        s = self.settings
        doc = facts.document(raw, lang, s.brand, s.support_phone) if raw is not None else facts.unavailable(lang, s.brand)
        status = 200 if raw is not None else 503
        if path == JSON_PATH:
            answer = (status, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(),
                      "application/json; charset=utf-8")
        else:
            answer = (status, render.page(doc).encode(), "text/html; charset=utf-8")
        self._bodies[key] = answer
        return answer

    def _bucket(self, peer: str) -> TokenBucket:
        bucket = self._buckets.pop(peer, None) or TokenBucket(RATE_PER_S, RATE_BURST, self._monotonic)
        self._buckets[peer] = bucket
        while len(self._buckets) > CLIENTS_TRACKED:
            self._buckets.popitem(last=False)
        return bucket

    async def _facts(self) -> dict[str, Any] | None:
        """The daemon's answer, shared: cached for CACHE_S, one question in flight at a time."""
        now = self._monotonic()
        if self._cache is not None and now - self._cache[0] < CACHE_S:
            return self._cache[1]
        if self._inflight is None:
            self._inflight = asyncio.get_running_loop().create_task(self._ask())
        return await asyncio.shield(self._inflight)

    async def _ask(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] | None = await asyncio.wait_for(self._fetch(), FETCH_TIMEOUT_S)
        except (AgentError, TimeoutError, OSError) as exc:
            LOGGER.debug("status page: the daemon did not answer: %s", exc)
            answer = None
        self._cache, self._inflight = (self._monotonic(), answer), None
        self._bodies.clear()  # drawn from the previous snapshot
        return answer

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes, kind: str, lang: str | None = None,
                    head_only: bool = False, extra: tuple[tuple[str, str], ...] = ()) -> None:
        if status == 200:
            self.counts["served"] += 1
        else:
            self.counts["refused"] += 1
            LOGGER.debug("status page: answered %d", status)
        headers = [("Content-Type", kind), ("Content-Length", str(len(body))), ("Connection", "close"),
                   *SECURITY_HEADERS, *extra]
        if lang is not None:
            headers += [("Content-Language", lang), ("Vary", "Accept-Language")]
        head = f"HTTP/1.1 {status} {REASONS[status]}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        writer.write(head.encode() + (b"" if head_only else body))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)

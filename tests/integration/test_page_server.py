"""The status page's server on a real socket (loopback): answers, headers, and what bad
clients get. Each bad client (malformed, oversize, slow, a flood of 200) is followed by a
good request that must be served: the server keeps serving whatever came before. How fast
it serves under load is tests/bench/bench_page.py's, not asserted here."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agent.core.page_settings import PageSettings
from agent.errors import ControlError
from agent.faces.page import server as srv
from agent.faces.page.server import PageServer
from tests.console.rig import RENTER

HOST = "127.0.0.1"


def settings(network: str = "127.0.0.1/8", **kw: Any) -> PageSettings:
    return PageSettings(enabled=True, interface=ipaddress.IPv4Interface(network), port=0, device="", **kw)


class Daemon:
    """Stands in for the control socket's ``renter`` op: counts the questions asked."""

    def __init__(self, answer: dict[str, Any] | None = RENTER):
        self.answer, self.asked = answer, 0

    async def __call__(self) -> dict[str, Any]:
        self.asked += 1
        if self.answer is None:
            raise ControlError("the daemon is not answering", reason="not_available")
        return dict(self.answer)


def run(body: Callable[[PageServer], Awaitable[Any]], daemon: Daemon | None = None, **kw: Any) -> Any:
    async def main() -> Any:
        server = PageServer(settings(**kw), daemon or Daemon())
        task = asyncio.get_running_loop().create_task(server.run())
        while server.port == 0:
            await asyncio.sleep(0.01)
        try:
            return await body(server)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return asyncio.run(asyncio.wait_for(main(), 60))


async def exchange(port: int, data: bytes, source: str | None = None) -> bytes:
    """Send ``data``, read until the server closes."""
    sock = socket.socket()
    if source:
        sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(data)
    await writer.drain()
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def get(port: int, path: str = "/", method: str = "GET", headers: str = "") -> tuple[int, dict[str, str], bytes]:
    raw = await exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def test_page_json_favicon_and_their_headers() -> None:
    async def body(server: PageServer) -> None:
        status, headers, page = await get(server.port, headers="Accept-Language: ja,en;q=0.5\r\n")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in \
            headers["content-security-policy"] and "default-src 'none'" in headers["content-security-policy"]
        assert headers["content-language"] == "ja" and '<html lang="ja">' in page.decode()
        assert "本日 2.1 GB / 3.0 GB 使用" in page.decode() and int(headers["content-length"]) == len(page)
        status, headers, data = await get(server.port, srv.JSON_PATH)
        doc = json.loads(data)
        assert status == 200 and doc["version"] == 1 and doc["lang"] == "en" and doc["state"]["code"] == "full_speed"
        assert headers["content-type"].startswith("application/json")
        status, headers, icon = await get(server.port, "/favicon.ico")
        assert status == 200 and headers["content-type"] == "image/svg+xml" and icon.startswith(b"<svg")
        status, headers, nothing = await get(server.port, "/?lang=ja", method="HEAD")
        assert status == 200 and nothing == b"" and int(headers["content-length"]) > 1000
    run(body)


def test_other_paths_methods_and_bodies_are_refused_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def body(server: PageServer) -> None:
        for path in ("/admin", "/../etc/passwd", "/api/v2/status", "/favicon.ico/x"):
            assert (await get(server.port, path))[0] == 404
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE"):
            status, headers, _ = await get(server.port, "/", method)
            assert status == 405 and headers["allow"] == "GET, HEAD"
        assert (await get(server.port, "/", headers="Content-Length: 5\r\n"))[0] == 413
        assert (await exchange(server.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert (await exchange(server.port, b"GET http://[x/ HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        assert (await get(server.port))[0] == 200
    run(body)
    noisy = [r for r in caplog.records if r.name.startswith("agent.faces.page") and r.levelno > logging.DEBUG
             and "status page on" not in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]


def test_huge_header_is_closed_without_an_answer_and_serving_goes_on() -> None:
    async def body(server: PageServer) -> None:
        huge = b"GET / HTTP/1.1\r\nX-Filler: " + b"a" * (srv.MAX_HEAD * 4) + b"\r\n\r\n"
        assert await exchange(server.port, huge) == b""
        many = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (srv.MAX_HEADERS + 5) + b"\r\n"
        assert (await exchange(server.port, many)).startswith(b"HTTP/1.1 400 ")
        assert (await get(server.port))[0] == 200
        assert server.counts["closed"] >= 1
    run(body)


def test_slow_client_is_cut_off_and_others_are_served_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srv, "HEAD_TIMEOUT_S", 0.5)

    async def body(server: PageServer) -> None:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
        await writer.drain()
        assert (await get(server.port))[0] == 200  # served while the slow one holds its slot
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, no answer
        writer.close()
    run(body)


def test_two_hundred_at_once_and_the_daemon_asked_about_once() -> None:
    daemon = Daemon()

    async def body(server: PageServer) -> None:
        began = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                                         for _ in range(200)), return_exceptions=True)
        served = [a for a in answers if isinstance(a, bytes) and a.startswith(b"HTTP/1.1 200 ")]
        assert served and len(served) <= 200  # the rest closed at once (connection cap) or rate-limited
        assert all(isinstance(a, bytes | ConnectionError) for a in answers), answers
        await asyncio.sleep(srv.CACHE_S)
        server._buckets.clear()  # the flood spent this one client address's budget
        assert (await get(server.port))[0] == 200
        # One question per CACHE_S, however many asked: counted over the time the flood
        # really took (seconds on a loaded machine), plus the last request's own.
        windows = math.ceil((asyncio.get_running_loop().time() - began) / srv.CACHE_S)
        assert 1 <= daemon.asked <= windows + 1, (daemon.asked, windows)
    run(body, daemon)


def test_one_client_in_a_loop_is_rate_limited() -> None:
    async def body(server: PageServer) -> None:
        codes = [(await get(server.port, srv.JSON_PATH))[0] for _ in range(srv.RATE_BURST + 10)]
        assert codes[0] == 200 and 429 in codes
    run(body)


def test_a_peer_outside_the_lan_gets_nothing() -> None:
    async def body(server: PageServer) -> None:
        assert await exchange(server.port, b"GET / HTTP/1.1\r\n\r\n", source="127.0.0.2") == b""
        assert (await exchange(server.port, b"GET / HTTP/1.1\r\n\r\n", source=HOST)).startswith(b"HTTP/1.1 200")
    run(body, network="127.0.0.1/32")


def test_daemon_not_answering_is_a_page_that_says_so() -> None:
    async def body(server: PageServer) -> None:
        status, _, page = await get(server.port, headers="Accept-Language: ja\r\n")
        assert status == 503 and "現在、状態を取得できません。" in page.decode()
        status, _, data = await get(server.port, srv.JSON_PATH)
        assert status == 503 and json.loads(data)["state"]["code"] == "unknown"
    run(body, Daemon(None))

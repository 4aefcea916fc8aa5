"""The control socket: typed JSON lines, bounded requests, rate limit, errors kept apart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.core.control import MAX_REQUEST, RATE_BURST, ControlClient, ControlServer, TokenBucket
from agent.errors import ControlError
from tests.console.rig import CannedFacts, view_double


def broken(tmp: Path) -> Any:
    """The real view's interface (autospecced) whose ``modem`` op has a bug."""
    view = view_double(CannedFacts(tmp / "state", tmp / "tech.json"))
    view.modem.side_effect = RuntimeError("bug")
    return view


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def with_server(tmp: Path, body: Any) -> Any:
    server = ControlServer(tmp / "ctl" / "control.sock", broken(tmp))
    await server.start()
    try:
        return await body(server)
    finally:
        await server.stop()


async def raw(path: Path, data: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    out = [json.loads(line) for line in (await reader.read()).splitlines()]
    writer.close()
    return out


def test_socket_is_private(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        assert server.path.stat().st_mode & 0o777 == 0o600
        assert server.path.parent.stat().st_mode & 0o777 == 0o700
    run(with_server(tmp_path, body))


def test_request_and_typed_errors(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        client = ControlClient(server.path)
        assert (await client.request("device"))["device_id"] == "rtr-test01"
        lines = (await client.request("log", n=3))["lines"]
        assert len(lines) == 3 and "log line 002" in lines[2]
        with pytest.raises(ControlError) as exc:
            await client.request("swaps")
        assert exc.value.reason == "not_available"
        with pytest.raises(ControlError) as exc:
            await client.request("modem")  # the provider raised: reported, server keeps serving
        assert exc.value.reason == "failed" and "internal error" in str(exc.value)
        with pytest.raises(ControlError) as exc:
            await client.request("at", command="AT+VSIMLOAD=1")
        assert exc.value.reason == "unauthorized"  # in the daemon's own process: no uid trust
        assert (await client.request("status"))["state"] == "serving"
        client.close()
    run(with_server(tmp_path, body))


def test_malformed_requests_are_answered_not_fatal(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        lines = b"not json\n" + b'[1]\n' + b'{"op":"rm"}\n' + b'{"op":"log","args":{"n":"5"}}\n' + \
            b'{"op":"log","args":{"n":5,"x":1}}\n' + b'{"op":"log","args":{"n":true}}\n' + b'{"id":9,"op":"device"}\n'
        replies = await raw(server.path, lines)
        assert [r["ok"] for r in replies] == [False] * 6 + [True]
        assert {r["error"]["reason"] for r in replies[:6]} == {"bad_request"}
        assert replies[-1]["id"] == 9
    run(with_server(tmp_path, body))


def test_oversized_request_closes_the_connection(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        replies = await raw(server.path, b'{"op":"device","pad":"' + b"x" * (MAX_REQUEST * 4) + b'"}\n')
        assert len(replies) == 1 and replies[0]["error"]["reason"] == "bad_request"
        assert (await ControlClient(server.path).request("device"))["state"] == "serving"
    run(with_server(tmp_path, body))


def test_rate_limit(tmp_path: Path) -> None:
    async def body(server: ControlServer) -> None:
        replies = await raw(server.path, b'{"op":"device"}\n' * (RATE_BURST + 20))
        limited = [r for r in replies if not r["ok"]]
        assert limited and all(r["error"]["reason"] == "rate_limited" for r in limited)
        assert sum(r["ok"] for r in replies) >= RATE_BURST
    run(with_server(tmp_path, body))


def test_token_bucket_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 0.1
    assert bucket.take()


def test_client_reports_a_daemon_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ControlError) as exc:
        run(ControlClient(tmp_path / "nothing.sock").request("status"))
    assert exc.value.reason == "not_available"

"""The control socket checks its peer (issue 20, finding 4), tested from other processes.

Each client here is a real process the kernel vouches for through ``SO_PEERCRED``: a
child started as ``nobody`` (uid 65534: "a process on the router that is not root"), a
child left as root, and the test's own process (the daemon's own pid: what the in-daemon
console is). ``Op.privileged`` used to be declared and never checked, so any process that
reached the socket could send raw AT, swap, reset the modem, reboot, and hand in forged
audit entries. Now a privileged op runs only for a connection holding a login the daemon
verified, or for a root peer that is neither a console nor the daemon itself, and the
daemon alone writes the audit log.

The socket is chowned to ``nobody`` here to stand for the daemon's own user: on a router
that is ``pocket-agent``, whose processes pass the socket's 0600 mode as this child does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.core.control import ControlClient, ControlServer
from agent.faces.console import auth
from tests.conftest import _unavailable, need_root
from tests.console.rig import CannedFacts, technician_key, view_double

NOBODY = 65534
PRIVILEGED = [("at", {"command": "AT+CSQ"}), ("swap", {"reason": "x"}), ("modem_reset", {}), ("reboot", {}),
              ("trace", {"action": "start"})]

CLIENT = r"""
import json, socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
stream = sock.makefile("rwb")
for line in sys.stdin:
    stream.write(line.encode())
    stream.flush()
    sys.stdout.write(stream.readline().decode())
    sys.stdout.flush()
"""
"""A line proxy: each request read from stdin goes to the socket, each reply to stdout.
Standard library only: it runs under the system Python, which ``nobody`` may execute."""

PYTHON = shutil.which("python3", path="/usr/bin:/bin")

@pytest.fixture(autouse=True)
def _root_and_system_python() -> None:
    """Root to start a client as another uid, and a Python that uid may run: fails in CI,
    skips locally with the reason (tests/conftest.py)."""
    need_root()
    if PYTHON is None:
        _unavailable("no /usr/bin/python3 for the other uid's client (make test installs python3)")


class Peer:
    """A client process of its own, speaking JSON lines through the proxy above."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.next_id = 0

    @classmethod
    async def start(cls, path: Path, uid: int | None) -> Peer:
        ids = {"user": uid, "group": uid} if uid is not None else {}
        assert PYTHON is not None
        proc = await asyncio.create_subprocess_exec(PYTHON, "-c", CLIENT, str(path), cwd="/", stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, **ids)
        return cls(proc)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"id": self.next_id, "op": op, "args": args}).encode() + b"\n")
        await self.proc.stdin.drain()
        reply = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 20))
        assert reply["id"] == self.next_id
        return dict(reply)

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 20)


@asynccontextmanager
async def daemon(tmp: Path) -> AsyncIterator[tuple[ControlServer, CannedFacts]]:
    """The control server on a socket that ``nobody`` can reach, as the daemon's user would,
    serving an autospecced SupervisorView; yields the facts it answers from."""
    where = Path(tempfile.mkdtemp(prefix="ctl-"))  # pytest's tmp_path is 0700 root: nobody could not reach it
    provider = CannedFacts(tmp / "state", tmp / "technicians.json")
    server = ControlServer(where / "control.sock", view_double(provider))
    await server.start()
    os.chown(where, NOBODY, NOBODY)
    os.chown(server.path, NOBODY, NOBODY)
    try:
        yield server, provider
    finally:
        await server.stop()
        shutil.rmtree(where, ignore_errors=True)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_a_process_that_is_not_root_cannot_change_anything_without_a_login(tmp_path: Path) -> None:
    async def body() -> None:
        async with daemon(tmp_path) as (server, provider):
            peer = await Peer.start(server.path, NOBODY)
            try:
                assert (await peer.ask("status"))["result"]["state"] == "serving"  # reading is open
                for op, args in PRIVILEGED:
                    reply = await peer.ask(op, **args)
                    assert not reply["ok"] and reply["error"]["reason"] == "unauthorized", (op, reply)
                forged = await peer.ask("audit", entry={"action": "login", "technician": "alice"})
                assert forged["error"]["reason"] == "bad_request"  # no op hands the daemon an audit entry
                hello = await peer.ask("hello", terminal="/dev/ttyGS0")  # a console claim buys nothing
                assert hello["ok"] and (await peer.ask("at", command="AT+CSQ"))["error"]["reason"] == "unauthorized"
            finally:
                await peer.close()
            assert provider.sent == [] and provider.audit_log.entries() == []
    run(body())


def test_a_login_the_daemon_verified_opens_privileged_ops_for_that_connection_only(tmp_path: Path) -> None:
    key, public = technician_key(tmp_path)

    async def body() -> None:
        async with daemon(tmp_path) as (server, provider):
            (tmp_path / "technicians.json").write_text(json.dumps(
                {"version": 1, "keys": [{"name": "alice", "ed25519": public}]}))
            peer, other = await Peer.start(server.path, NOBODY), await Peer.start(server.path, NOBODY)
            try:
                challenge = (await peer.ask("login_challenge"))["result"]["challenge"]
                assert challenge.startswith("pwc1 rtr-test01 ")
                wrong = await peer.ask("login", signature="AAAA")
                assert wrong["error"]["reason"] == "refused" and "next attempt in 1 s" in wrong["error"]["message"]
                provider.logins.auth._next_try = 0.0  # skip the wait; its length is tested elsewhere
                challenge = (await peer.ask("login_challenge"))["result"]["challenge"]
                stolen = await other.ask("login", signature=auth.sign(key, challenge))  # not its challenge
                assert stolen["error"]["reason"] == "refused"
                provider.logins.auth._next_try = 0.0
                assert (await peer.ask("login", signature=auth.sign(key, challenge)))["result"]["technician"] == "alice"
                assert (await peer.ask("at", command="AT+CSQ"))["ok"]
                assert (await other.ask("at", command="AT+CSQ"))["error"]["reason"] == "unauthorized"
                await peer.ask("logout", reason="done")
                assert (await peer.ask("at", command="AT+CSQ"))["error"]["reason"] == "unauthorized"
            finally:
                await peer.close()
                await other.close()
            assert provider.sent == ["AT+CSQ"]
            entries = [(e["action"], e.get("technician"), e.get("outcome")) for e in provider.audit_log.entries()]
            assert ("login_failed", None, None) in entries and ("login", "alice", None) in entries
            assert ("at", "alice", "requested") in entries and ("at", "alice", "ok") in entries
            assert entries[-1] == ("logout", "alice", None)
    run(body())


def test_root_may_act_but_not_through_a_console_or_from_inside_the_daemon(tmp_path: Path) -> None:
    async def body() -> None:
        async with daemon(tmp_path) as (server, provider):
            root = await Peer.start(server.path, None)
            console = await Peer.start(server.path, None)
            try:
                assert (await root.ask("at", command="AT+CSQ"))["ok"]
                refused = await root.ask("at", command="AT+CSQ;+EGMR=1,7,\"1\"")  # root still meets the AT gate
                assert refused["error"]["reason"] == "refused"
                await console.ask("hello", terminal="/dev/ttyGS0")
                assert (await console.ask("swap", reason="x"))["error"]["reason"] == "unauthorized"
            finally:
                await root.close()
                await console.close()
            in_daemon = ControlClient(server.path)  # the in-daemon console's connection: same pid as the server
            try:
                with pytest.raises(Exception, match="needs a technician login"):
                    await in_daemon.request("reboot")
            finally:
                in_daemon.close()
            assert provider.sent == ["AT+CSQ"]
            audited = provider.audit_log.entries()
            assert {e["terminal"] for e in audited} == {f"local uid 0 pid {root.proc.pid}"}
            assert [e["outcome"] for e in audited][-1].startswith("refused: AT+EGMR refused")
    run(body())

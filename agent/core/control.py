"""The daemon's local control interface: typed JSON lines over a Unix socket.

Why a socket and not shared objects: the faces (the technician console first) must never
reach into the supervisor's objects or open the modem's AT port. They ask the running
daemon, and the daemon answers from a *provider* (``agent/core/view.py``) whose methods
are the whole interface. The same client works whether the console runs inside the
daemon's event loop or as its own process.

Wire format, one JSON object per line, UTF-8::

    -> {"id": 7, "op": "status", "args": {}}
    <- {"id": 7, "ok": true, "result": {...}}
    <- {"id": 7, "ok": false, "error": {"reason": "refused", "message": "..."}}

``op`` must be one of ``OPS``; ``args`` are checked against the op's declared argument
types before the provider sees them. A request longer than ``MAX_REQUEST`` bytes closes
the connection; more than ``RATE_PER_S`` requests a second (after a burst of
``RATE_BURST``) are answered ``rate_limited`` without running. Every op has a timeout.

Who may do what (issue 20, finding 4). The socket is created 0600 inside a 0700 directory,
so only the daemon's own user and root reach it; but a process running as the daemon's
user is not a technician. Each connection is a ``Caller``: its peer as the kernel reports
it (``SO_PEERCRED``: pid, uid, gid; a client cannot claim another) and, once it logged in,
the technician. Read-only ops are open to any peer that reaches the socket. An op marked
``privileged`` (``at``, ``swap``, ``modem_reset``, ``reboot``, ``trace``) runs only for

* a connection holding a technician login the daemon itself verified (``login_challenge``
  then ``login``, ``agent/core/logins.py``), or
* a root peer that is not a console: root on the router can reach the modem's tty anyway.
  A console (a client that said ``hello``) acts for whoever is at its terminal, and a
  client inside the daemon's own process is the in-daemon console: neither ever borrows
  its uid's trust.

The daemon writes the audit log itself: every privileged request before it runs and its
outcome, every login, failed login and logout. No op lets a client hand in an entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.errors import AgentError, ControlError

LOGGER = logging.getLogger(__name__)

MAX_REQUEST = 4096
"""Bytes per request line: the largest legitimate request is an audit entry or an ``at``
command line (256 characters); anything bigger is a bug or an attack."""
MAX_RESPONSE = 1 << 20
"""Bytes per response line the client accepts (a ``log 500`` answer is ~60 kB)."""
RATE_PER_S = 20.0
RATE_BURST = 60
"""A technician types a few commands a minute and ``watch`` asks once a second; 20/s with
a burst of 60 leaves room for scripts and still bounds what one client can ask of the
modem's single AT channel."""
OP_TIMEOUT = 30.0
"""Seconds one op may take. The slowest read-only op is ``selftest`` (a handful of AT
commands, each under 5 s on a healthy modem); slower means the daemon is in trouble."""
SLOW_OP_TIMEOUT = 180.0
"""``swap`` and ``modem-reset``: a SIM switch with re-attach takes up to ~90 s (supervisor
REGISTRATION_TIMEOUT) plus the assignment exchange."""
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Op:
    """One operation: its argument names and types, whether it changes the device, and
    whether the provider needs to know who asks (``caller``)."""

    args: tuple[tuple[str, type], ...] = ()
    privileged: bool = False
    timeout: float = OP_TIMEOUT
    caller: bool = False


OPS: dict[str, Op] = {
    "device": Op(),
    "status": Op(),
    "modem": Op(),
    "signal": Op(),
    "sim": Op(),
    "usage": Op(),
    "health": Op(),
    "swaps": Op(),
    "renter": Op(),
    "log": Op(args=(("n", int),)),
    "selftest": Op(),
    "technicians": Op(),
    "hello": Op(args=(("terminal", str),)),
    "login_challenge": Op(caller=True),
    "login": Op(args=(("signature", str),), caller=True),
    "logout": Op(args=(("reason", str),), caller=True),
    "trace": Op(args=(("action", str),), privileged=True),
    "at": Op(args=(("command", str),), privileged=True, timeout=SLOW_OP_TIMEOUT),
    "swap": Op(args=(("reason", str),), privileged=True, timeout=SLOW_OP_TIMEOUT),
    "modem_reset": Op(privileged=True, timeout=SLOW_OP_TIMEOUT),
    "reboot": Op(privileged=True),
}
"""The whole interface. A provider has one method per op, same name, same arguments (and
``caller=`` for the ops that take it); ``hello`` is the server's own."""

TERMINAL_MAX = 64
"""Characters of a console's terminal name kept for the audit log (``/dev/ttyGS0``; the
end of a longer path, which is the part that names the port)."""


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel saw it connect."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket | None) -> Peer | None:
        """``SO_PEERCRED`` of a Unix socket; None where the platform has none (then only a
        login makes a caller privileged)."""
        option = getattr(socket, "SO_PEERCRED", None)
        if sock is None or option is None:
            return None
        try:
            pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
        except OSError:
            return None
        return cls(pid, uid, gid)


@dataclass
class Caller:
    """One connection: who the kernel says is there, and what it has become since."""

    peer: Peer | None
    terminal: str | None = None
    """Set by ``hello``: this connection is a console serving that terminal."""
    technician: str | None = None
    """Set by a successful ``login`` (the daemon checked the signature)."""
    challenge: str | None = None
    """The login challenge issued to this connection, if one is outstanding."""
    warned: bool = field(default=False, repr=False)

    @property
    def root_trusted(self) -> bool:
        """Root, and neither a console nor a client inside the daemon's own process."""
        return (self.peer is not None and self.peer.uid == 0 and self.terminal is None
                and self.peer.pid != os.getpid())

    @property
    def may_change(self) -> bool:
        return self.technician is not None or self.root_trusted

    @property
    def where(self) -> str:
        """The audit log's ``terminal``: the console's port, else the local peer."""
        if self.terminal is not None:
            return self.terminal
        return f"local uid {self.peer.uid} pid {self.peer.pid}" if self.peer else "local (peer unknown)"


class Provider(Protocol):
    """What the control server answers from (agent/core/view.py's SupervisorView)."""

    async def device(self) -> dict[str, Any]: ...
    async def status(self) -> dict[str, Any]: ...
    async def modem(self) -> dict[str, Any]: ...
    async def signal(self) -> dict[str, Any]: ...
    async def sim(self) -> dict[str, Any]: ...
    async def usage(self) -> dict[str, Any]: ...
    async def health(self) -> dict[str, Any]: ...
    async def swaps(self) -> dict[str, Any]: ...
    async def renter(self) -> dict[str, Any]: ...
    async def log(self, n: int) -> dict[str, Any]: ...
    async def selftest(self) -> dict[str, Any]: ...
    async def trace(self, action: str) -> dict[str, Any]: ...
    async def technicians(self) -> dict[str, Any]: ...
    async def login_challenge(self, caller: Caller) -> dict[str, Any]: ...
    async def login(self, caller: Caller, signature: str) -> dict[str, Any]: ...
    async def logout(self, caller: Caller, reason: str) -> dict[str, Any]: ...
    async def audit(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Not an op: the server's own record of privileged requests and their outcome."""
        ...
    async def at(self, command: str) -> dict[str, Any]: ...
    async def swap(self, reason: str) -> dict[str, Any]: ...
    async def modem_reset(self) -> dict[str, Any]: ...
    async def reboot(self) -> dict[str, Any]: ...


def check_request(obj: Any) -> tuple[Any, str, dict[str, Any]]:
    """Validate one decoded request; returns (id, op, args) or raises ControlError."""
    if not isinstance(obj, dict):
        raise ControlError("a request is a JSON object", reason="bad_request")
    op_name, args = obj.get("op"), obj.get("args", {})
    if op_name not in OPS:
        raise ControlError(f"unknown op {str(op_name)[:40]!r}", reason="bad_request")
    if not isinstance(args, dict):
        raise ControlError("args must be an object", reason="bad_request")
    spec = OPS[op_name].args
    names = {name for name, _ in spec}
    if set(args) - names:
        raise ControlError(f"{op_name}: unexpected argument {min(set(args) - names)!r}", reason="bad_request")
    for name, kind in spec:
        if not isinstance(args.get(name), kind) or isinstance(args.get(name), bool):
            raise ControlError(f"{op_name}: argument {name!r} must be {kind.__name__}", reason="bad_request")
    return obj.get("id"), op_name, args


class TokenBucket:
    """``RATE_PER_S`` refills a second up to ``RATE_BURST``; ``take()`` says yes or no."""

    def __init__(self, rate: float = RATE_PER_S, burst: int = RATE_BURST, clock: Any = time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class ControlServer:
    """Serves ``provider`` on a Unix socket, in the caller's event loop."""

    def __init__(self, path: Path | str, provider: Provider):
        self.path = Path(path)
        self.provider = provider
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.served = 0
        self.refused = 0

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a killed daemon
        old = os.umask(0o177)  # the socket exists 0600 from its first instant
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)
        LOGGER.info("control socket on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        bucket = TokenBucket()
        caller = Caller(Peer.of(writer.get_extra_info("socket")))
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    await self._send(writer, _error(None, ControlError(
                        f"request longer than {MAX_REQUEST} bytes", reason="bad_request")))
                    return
                except asyncio.IncompleteReadError:
                    return
                reply = await self._answer(line, bucket, caller)
                await self._send(writer, reply)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            if caller.technician is not None:  # the login ends with its connection, on the record
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.provider.logout(caller, "connection closed"), OP_TIMEOUT)

    async def _answer(self, line: bytes, bucket: TokenBucket, caller: Caller) -> dict[str, Any]:
        req_id = None
        try:
            try:
                obj = json.loads(line)
            except ValueError:
                raise ControlError("not JSON", reason="bad_request") from None
            req_id = obj.get("id") if isinstance(obj, dict) else None  # a refusal answers its request too
            req_id, op_name, args = check_request(obj)
            if not bucket.take():
                raise ControlError(f"more than {RATE_PER_S:.0f} requests a second", reason="rate_limited")
            result = await self._run(op_name, args, caller)
            self.served += 1
            return {"id": req_id, "ok": True, "result": result}
        except ControlError as exc:
            self.refused += 1
            return _error(req_id, exc)
        except TimeoutError:
            return _error(req_id, ControlError("the daemon did not answer in time", reason="failed"))
        except AgentError as exc:
            return _error(req_id, ControlError(f"{type(exc).__name__}: {exc}", reason="failed"))
        except Exception as exc:  # a provider bug must not take the socket (or the daemon) down
            LOGGER.exception("control op failed")
            return _error(req_id, ControlError(f"internal error ({type(exc).__name__})", reason="failed"))

    async def _run(self, op_name: str, args: dict[str, Any], caller: Caller) -> dict[str, Any]:
        op = OPS[op_name]
        if op_name == "hello":
            caller.terminal = args["terminal"][-TERMINAL_MAX:] or "console"
            return {"hello": caller.terminal}
        if op.privileged and not caller.may_change:
            if not caller.warned:  # once per connection: the log is no lever for flash wear
                caller.warned = True
                LOGGER.warning("control: %s refused to %s: no technician login", op_name, caller.where)
            raise ControlError(f"{op_name} needs a technician login", reason="unauthorized")
        method = getattr(self.provider, op_name)
        call = method(**args, caller=caller) if op.caller else method(**args)
        if not op.privileged:
            return await asyncio.wait_for(call, op.timeout)
        entry = {"action": op_name.replace("_", "-"), "args": args, "technician": caller.technician,
                 "terminal": caller.where}
        try:
            await self.provider.audit(dict(entry, outcome="requested"))  # on flash before it runs
            result = await asyncio.wait_for(call, op.timeout)
        except ControlError as exc:
            await self.provider.audit(dict(entry, outcome=f"{exc.reason}: {exc}"))
            raise
        except (AgentError, TimeoutError) as exc:
            await self.provider.audit(dict(entry, outcome=f"failed: {type(exc).__name__}"))
            raise
        finally:
            call.close()  # never awaited when the audit itself failed: no "never awaited" warning
        await self.provider.audit(dict(entry, outcome="ok"))
        return result

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply, separators=(",", ":"), default=str).encode() + b"\n")
        await writer.drain()


def _error(req_id: Any, exc: ControlError) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"reason": exc.reason, "message": str(exc)}}


class ControlClient:
    """One connection, one request in flight; reconnects on the next request if it broke."""

    def __init__(self, path: Path | str, *, hello: str | None = None):
        self.path = Path(path)
        self.hello = hello
        """A console's terminal: said on every (re)connection, so the daemon never lends
        this connection its uid's trust (see the module doc)."""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        """The op's result, or ControlError (``not_available`` when the daemon is down)."""
        async with self._lock:
            try:
                return await self._request(op, args)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                self.close()
                raise ControlError(f"the daemon is not answering on {self.path} ({type(exc).__name__})",
                                   reason="not_available") from None

    async def _request(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=MAX_RESPONSE), CONNECT_TIMEOUT)
            if self.hello is not None:
                await self._exchange("hello", {"terminal": self.hello})
        return await self._exchange(op, args)

    async def _exchange(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        assert self._reader is not None and self._writer is not None
        self._next_id += 1
        self._writer.write(json.dumps({"id": self._next_id, "op": op, "args": args}).encode() + b"\n")
        await self._writer.drain()
        timeout = OPS[op].timeout + CONNECT_TIMEOUT if op in OPS else OP_TIMEOUT
        line = await asyncio.wait_for(self._reader.readuntil(b"\n"), timeout)
        reply = json.loads(line)
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        err = reply.get("error") or {}
        raise ControlError(str(err.get("message", "refused")), reason=str(err.get("reason", "failed")))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

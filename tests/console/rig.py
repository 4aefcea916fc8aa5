"""A console on real ptys against a control server, for the console tests and the bench.

``ConsoleRig`` runs, in a thread with its own event loop, the real ``ControlServer`` and
the real ``ConsoleServer`` serving the device ends of ``PtyCable``s (board/virtual/network/cable.py).
The provider is ``SupervisorView`` itself, autospecced (``view_double``): every op the
control server calls must exist on the real view with the real signature, so the double
cannot drift from it; each op answers from ``CannedFacts``, canned answers shaped like the
view's, so every command can be exercised without a modem (tests/lab/test_lab_console.py
does the same against the real daemon). ``Terminal`` is the technician's side: it opens the
cable's technician end with pyserial, exactly as picocom would, and keeps every byte it
read in ``transcript`` so tests can search it for secrets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import serial

from agent import store
from agent.clock import Clock
from agent.core.audit import AuditLog
from agent.core.control import OPS, Caller, ControlClient, ControlServer
from agent.core.logins import STATE_FILE, Authenticator, LoginDesk
from agent.core.view import SupervisorView
from agent.errors import ControlError
from agent.faces.console import auth
from agent.faces.console.ports import ConsoleServer
from agent.modem.commands import KNOWN
from board.virtual.network.cable import PtyCable

KI = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OPC = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
"""The known secrets the tests search for (hex, upper and lower case, and base64)."""
DEVICE_ID = "rtr-test01"
EXPECT_TIMEOUT = 10.0


def secret_forms() -> list[bytes]:
    out = []
    for key in (KI, OPC):
        out += [key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), key]
    return out


PROVIDER_OPS = tuple(op for op in OPS if op != "hello") + ("audit",)
"""What the control server asks its provider (``hello`` is the server's own)."""


def view_double(facts: CannedFacts, autospec: Callable[..., Any] = create_autospec) -> Any:
    """``SupervisorView`` autospecced, each op answered by ``facts``. A call the real view
    would refuse (an op it lacks, an argument it does not take) fails here as it would in
    the daemon. ``autospec``: pytest-mock's ``mocker.create_autospec`` in tests that have it."""
    view = autospec(SupervisorView, instance=True)
    for op in PROVIDER_OPS:
        getattr(view, op).side_effect = getattr(facts, op)
    return view


RENTER: dict[str, Any] = {
    "wall": 1764766500.0, "wall_trusted": True, "tz": "+09:00", "state": "serving",
    "health": {"state": "ok", "kbps": None, "cause": None}, "no_service_since": None,
    "signal": {"rsrp_dbm": -85.0, "sinr_db": 12.0, "rating": "good"}, "network": {"plmn": "44010"},
    "sim": {"iccid_tail": "0017", "seed": False, "plan": "daypass-3GB"},
    "rules": [{"window": "day", "cap_bytes": 3_000_000_000, "used_bytes": 2_100_000_000, "left_bytes": 900_000_000,
               "resets_at": 1764774000.0, "throttle_kbps": 384}],
    "swap": {"in_progress_s": None, "expected_break_s": 5.9, "planned": None,
             "last": {"reason": "throttled", "ok": True, "rolled_back": False, "break_ms": 5912.0,
                      "started": "2025-12-03T21:40:00+09:00"}},
    "throughput": {"now_kbps": 12000.0, "bucket_s": 300, "day": "2025-12-03",
                   "today_kbps": [float(100 * (i % 40)) for i in range(263)]},
}
"""The view's ``renter`` answer at 21:55 JST on 2025-12-03 (SupervisorView.renter's shape):
a day pass 2.1 GB into its 3 GB, full speed, docomo at three bars, one swap at 21:40."""


class CannedFacts:
    """What ``view_double`` answers with, shaped like SupervisorView's answers, and what
    the tests read back (``calls``, ``sent``, ``upstream``, the real audit log and login
    desk). ``at`` answers one command with a line that carries the Ki, as a misbehaving
    modem might: the console must mask it."""

    def __init__(self, state_dir: Path, technicians_file: Path):
        self.audit_log = AuditLog(state_dir / "console", Clock())
        self.upstream: list[dict[str, Any]] = []
        self.technicians_file = technicians_file
        self.logins = LoginDesk(DEVICE_ID, technicians_file, self.audit,
                                authenticator=Authenticator(state_dir / "console" / STATE_FILE))
        self.calls: list[str] = []
        self.sent: list[str] = []
        """AT command lines that passed the gate and reached the "modem"."""
        self.slow = 0.0

    async def device(self) -> dict[str, Any]:
        return {"device_id": DEVICE_ID, "state": "serving"}

    async def status(self) -> dict[str, Any]:
        self.calls.append("status")
        return {"device_id": DEVICE_ID, "state": "serving",
                "sim": {"iccid": "8981100000000000017", "imsi": "440100000000017", "slot": 1, "seed": False},
                "operator": "PW LAB", "technology": "LTE", "registration": "registered (home)",
                "signal": {"rsrp_dbm": -95.0, "rsrq_db": -11.0, "sinr_db": 8.0, "rssi_dbm": None, "rating": "fair"},
                "address": "198.18.10.2", "throughput": {"rx_kbps": 120.5, "tx_kbps": 10.0},
                "classification": {"state": "throttled", "rate_kbps": 128.0, "why": "plateau at the plan rate"},
                "cloud": {"connected": True}, "allowance": RENTER["rules"]}

    async def renter(self) -> dict[str, Any]:
        self.calls.append("renter")
        return json.loads(json.dumps(RENTER))  # a copy each time, as from the socket

    async def modem(self) -> dict[str, Any]:
        return {"manufacturer": "PW", "model": "VM-1", "firmware": "1.0.0", "imei": "359000000000017"}

    async def signal(self) -> dict[str, Any]:
        self.calls.append("signal")
        return {"rsrp_dbm": -95.0, "rsrq_db": -11.0, "sinr_db": 8.0, "rssi_dbm": None, "rating": "fair",
                "technology": "LTE", "registration": "registered (home)"}

    async def sim(self) -> dict[str, Any]:
        return {"active": {"iccid": "8981100000000000017", "imsi": "440100000000017", "slot": 1},
                "sim_state": "READY", "vsim_slots": [1, 2], "seed_slot": 0}

    async def usage(self) -> dict[str, Any]:
        return {"day": "2026-11-27", "month": "2026-11", "sims": [
            {"iccid": "8981100000000000017", "today_bytes": 1000, "month_bytes": 5000, "unreported_bytes": 1000}]}

    async def health(self) -> dict[str, Any]:
        return {"now": {"state": "ok"}, "outages": [{"kind": "no_service", "cause": "cell down"}]}

    async def swaps(self) -> dict[str, Any]:
        raise ControlError("swap history is not available in this build", reason="not_available")

    async def log(self, n: int) -> dict[str, Any]:
        return {"lines": [f"2026-11-27 15:00:{i % 60:02d} INFO agent.core.supervisor: log line {i:03d} " + "." * 60
                          for i in range(n)]}

    async def selftest(self) -> dict[str, Any]:
        return {"checks": [{"name": "modem answers", "ok": True, "detail": "answers AT"},
                           {"name": "registered", "ok": False, "detail": "searching"}], "passed": 1}

    async def trace(self, action: str) -> dict[str, Any]:
        return {"recording": action == "start", "file": "/tmp/trace.csv"}

    async def technicians(self) -> dict[str, Any]:
        return store.read_json(self.technicians_file) or {"version": 0, "keys": []}

    async def audit(self, entry: dict[str, Any]) -> dict[str, Any]:
        record = self.audit_log.append(entry)
        self.upstream.append(record)
        return {"recorded": True}

    async def login_challenge(self, caller: Caller) -> dict[str, Any]:
        return await self.logins.challenge(caller)

    async def login(self, caller: Caller, signature: str) -> dict[str, Any]:
        return await self.logins.login(caller, signature)

    async def logout(self, caller: Caller, reason: str) -> dict[str, Any]:
        return await self.logins.logout(caller, reason)

    async def at(self, command: str) -> dict[str, Any]:
        why = KNOWN.refusal(command)
        if why:
            raise ControlError(why, reason="refused")
        self.sent.append(command)
        if command.upper() == "AT+VSIMLIST":
            return {"lines": [f'+VSIMLIST: 1,"8981100000000000017","{KI.hex()}"'], "final": "OK"}
        return {"lines": ["+CESQ: 99,99,255,255,20,45"], "final": "OK"}

    async def swap(self, reason: str) -> dict[str, Any]:
        return {"requested": True, "result": reason}

    async def modem_reset(self) -> dict[str, Any]:
        await asyncio.sleep(self.slow)
        return {"reset": True}

    async def reboot(self) -> dict[str, Any]:
        raise ControlError("reboot is not configured on this board", reason="not_available")


class ConsoleRig:
    """Control server + console server on ``cables`` in a background event loop."""

    def __init__(self, tmp: Path, cables: int = 1, *, idle_logout: float = 300.0):
        self.tmp = tmp
        self.socket = tmp / "control.sock"
        self.technicians_file = tmp / "technicians.json"
        self.cables = [PtyCable(tmp / f"dev{i}.pty", tmp / f"tech{i}.pty") for i in range(cables)]
        self.facts = CannedFacts(tmp / "state", self.technicians_file)
        self.provider = view_double(self.facts)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="console-rig")
        self.thread.start()
        self.server = ControlServer(self.socket, self.provider)
        self.call(self.server.start())
        self.console = ConsoleServer([str(c.device_path) for c in self.cables],
                                     lambda: ControlClient(self.socket), idle_logout=idle_logout)
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Start serving the ports. Open the technicians' ``Terminal``s first: opening a
        serial port flushes its input, so a terminal opened later misses the greeting."""
        async def spawn() -> asyncio.Task[Any]:
            return asyncio.get_running_loop().create_task(self.console.run())
        self.task = self.call(spawn())

    def call(self, coro: Any, timeout: float = EXPECT_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def pin(self, name: str, public_b64: str, version: int = 1) -> None:
        store.atomic_write_json(self.technicians_file, {"version": version, "keys": [{"name": name, "ed25519": public_b64}]})

    def close(self) -> None:
        if self.task is not None:
            self.call(self._cancel(self.task))
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        for c in self.cables:
            c.close()


    @staticmethod
    async def _cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Terminal:
    """The technician's laptop end: pyserial on the cable's technician end, 115200 8N1."""

    def __init__(self, path: Path | str):
        self.port = serial.Serial(str(path), 115200, timeout=0)
        self.transcript = bytearray()
        self._seen = 0

    def send(self, data: bytes | str) -> None:
        self.port.write(data.encode() if isinstance(data, str) else data)

    def expect(self, pattern: bytes | str, timeout: float = EXPECT_TIMEOUT) -> re.Match[bytes]:
        """Read until ``pattern`` (regex) appears after what earlier expects consumed."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.transcript, self._seen)
            if m:
                self._seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen; got: {bytes(self.transcript[self._seen:])[-600:]!r}")
            ready, _, _ = select.select([self.port.fileno()], [], [], left)
            if ready:
                self.transcript += self.port.read(65536)

    def command(self, line: str, until: str = r"rtr-test01 \w+[>#] $") -> bytes:
        """Type ``line`` + CR and return what came back up to the next prompt."""
        start = self._seen
        self.send(line + "\r")
        m = self.expect(until)
        return bytes(self.transcript[start:m.start()])

    def drain(self, quiet: float = 0.3) -> None:
        """Read whatever is pending until the line is quiet for ``quiet`` seconds."""
        while select.select([self.port.fileno()], [], [], quiet)[0]:
            self.transcript += self.port.read(65536)
        self._seen = len(self.transcript)

    def close(self) -> None:
        self.port.close()


def technician_key(tmp: Path, name: str = "alice") -> tuple[Any, str]:
    """(private key, public base64) for a technician, written the way keygen writes it."""
    path = tmp / f"{name}.key"
    public = auth.generate_key(path)
    return auth.load_private_key(path), public

"""RemoteSimHost's own logic (agent/modem/rsimhost.py) over a recording AT port: the order
of answers, a reset dropping the old session's queue, bad lines answered 6700, an empty
slot silent, a failed answer not stopping it. The pty end to end is
tests/integration/test_remote_sim_pty.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent.errors import AtCommandError
from agent.modem.at import AtResponse
from agent.modem.rsim import parse_answer_command
from agent.modem.rsimhost import RemoteSimHost
from agent.sim import SimProfile
from agent.usim.atr import ATR
from tests.unit.at_fakes import async_test

PROFILE = SimProfile("8981100000000000075", "440101234500075", bytes(range(16)), bytes(range(16, 32)),
                     "44010", "internet")


class Port:
    """Records every command; URCs are pushed with ``urc``; ``refuse`` makes answers fail."""

    def __init__(self) -> None:
        self.subscribers: list[tuple[str, Callable[[str], None]]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.refuse = False
        self.gate: asyncio.Event | None = None

    def subscribe(self, prefix: str, callback: Callable[[str], None]) -> Callable[[], None]:
        entry = (prefix, callback)
        self.subscribers.append(entry)
        return lambda: self.subscribers.remove(entry)

    def urc(self, line: str) -> None:
        for prefix, callback in list(self.subscribers):
            if line.upper().startswith(prefix):
                callback(line)

    async def command(self, command: str, **kw: Any) -> AtResponse:
        self.sent.append((command, kw))
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse and command.startswith("AT+SIMDATA"):
            raise AtCommandError(f"{command[:11]}: +CME ERROR: 3", command=command[:11], code=3)
        return AtResponse(command, (), "OK")

    async def held(self) -> None:
        """Return once an answer is waiting at the gate (the host's worker got that far)."""
        while not any(c.startswith("AT+SIMDATA") for c, _ in self.sent):
            await asyncio.sleep(0)

    def answers(self) -> list[bytes]:
        return [parse_answer_command(c) for c, _ in self.sent if c.startswith("AT+SIMDATA")]


@async_test
async def test_answers_in_order_sensitive_and_with_priority() -> None:
    port = Port()
    host = RemoteSimHost(port)
    host.start()
    await host.insert(PROFILE)
    assert port.sent[0][0] == 'AT+GTSET="RSIM",1'
    port.urc("+SIMRESET")
    port.urc('+SIMDATA: "00A4000402"')
    port.urc('+SIMDATA: "3F00"')
    await host.idle()
    assert port.answers() == [ATR, b"\xa4", bytes.fromhex("6122")]
    assert all(kw == {"priority": True, "sensitive": True, "timeout": 5.0}
               for c, kw in port.sent if c.startswith("AT+SIMDATA"))
    assert len(host.answer_times) == 3
    await host.stop()
    assert port.subscribers == []


@async_test
async def test_a_reset_drops_what_the_old_session_still_had_queued() -> None:
    port = Port()
    host = RemoteSimHost(port)
    host.start()
    await host.insert(PROFILE)
    port.gate = asyncio.Event()  # the module has not taken the first answer yet
    port.urc("+SIMRESET")
    await port.held()
    port.urc('+SIMDATA: "00A4000402"')  # old session, still queued ...
    port.urc('+SIMDATA: "3F00"')
    port.urc("+SIMRESET")  # ... when the module resets the card again
    port.gate.set()
    await host.idle()
    assert port.answers() == [ATR, ATR]
    assert host.stats["dropped_after_reset"] == 2 and host.stats["resets"] == 2


@async_test
async def test_unreadable_lines_are_answered_6700_and_logged_without_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = Port()
    host = RemoteSimHost(port)
    host.start()
    await host.insert(PROFILE)
    port.urc("+SIMRESET")
    port.urc('+SIMDATA: "0088008122DEADBEEFCAFE0"')  # odd length, RAND-like data in it
    port.urc('+SIMDATA: "' + "00" * 300 + '"')
    await host.idle()
    assert port.answers() == [ATR, b"\x67\x00", b"\x67\x00"]
    assert host.stats["malformed"] == 2
    assert "DEADBEEF" not in caplog.text


@async_test
async def test_an_empty_slot_is_silent_at_a_reset_and_6f00_to_a_command() -> None:
    port = Port()
    host = RemoteSimHost(port)
    host.start()
    port.urc("+SIMRESET")
    port.urc('+SIMDATA: "00A40004023F00"')
    await host.idle()
    assert port.answers() == [b"\x6f\x00"]
    assert host.stats["unanswered_resets"] == 1


@async_test
async def test_an_answer_the_module_refuses_does_not_stop_the_host() -> None:
    port = Port()
    host = RemoteSimHost(port)
    host.start()
    await host.insert(PROFILE)
    port.refuse = True
    port.urc("+SIMRESET")
    await host.idle()
    port.refuse = False
    port.urc("+SIMRESET")
    await host.idle()
    assert host.stats["answer_failures"] == 1 and port.answers() == [ATR, ATR]


@async_test
async def test_a_late_answer_is_counted_against_the_deadline() -> None:
    now = [0.0]
    port = Port()
    host = RemoteSimHost(port, clock=lambda: now[0])
    host.start()
    await host.insert(PROFILE)
    port.gate = asyncio.Event()
    port.urc("+SIMRESET")
    await port.held()
    now[0] = 1.5  # the module's OK comes 1.5 s after the URC
    port.gate.set()
    await host.idle()
    assert host.stats["late"] == 1 and list(host.answer_times) == [1.5]

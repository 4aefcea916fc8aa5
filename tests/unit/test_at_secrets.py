"""No exception text or repr that can carry a sensitive AT line reaches a log (issue 20, finding 2).

A profile with a non-ASCII field used to make ``AT+VSIMLOAD`` fail inside the encoder:
``UnicodeEncodeError``'s repr quotes the whole line, Ki and OPc included, and the
supervisor logs a dying task with ``%r``. The AT layer now turns whatever fails under a
sensitive command into its own ``ModemError`` naming only the redacted line, with nothing
chained. Opening such a profile is refused before this (tests/unit/test_profile_fields.py,
tests/cloud/test_profile_delivery.py); this is the second, independent fence.
"""

from __future__ import annotations

import logging
import traceback

import pytest

from agent.errors import ModemError
from agent.logs import TRACE
from agent.modem.at import AtChannel
from agent.modem.dialects import get_dialect
from agent.sim import SimProfile
from tests.unit.at_fakes import FakeModem, async_test

KI = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OPC = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
LOAD = (f'AT+VSIMLOAD=1,"8981100000001000\u00e919","440100000100001","{KI.hex().upper()}",'
        f'"{OPC.hex().upper()}","44010","internet.a.lab"')
"""The load line the virtual dialect would have built from the crash's profile."""


def leaks(text: str) -> bool:
    return any(form in text for key in (KI, OPC) for form in (key.hex(), key.hex().upper()))


def everything_shown(exc: BaseException) -> str:
    """What any log line could make of ``exc``: its text, its repr (the supervisor's
    ``%r``) and the full traceback with whatever is chained to it."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + repr(exc.__context__) + \
        repr(exc.__cause__) + repr(exc.args)


class LeakyTransport(FakeModem):
    """A transport whose failure quotes what it was given, as a careless driver's might."""

    def write(self, data: bytes) -> None:
        raise RuntimeError(f"driver bug while writing {data!r}")


@async_test
async def test_a_non_ascii_load_line_fails_with_a_redacted_typed_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(TRACE)
    channel = AtChannel(commands=get_dialect("virtual").commands)
    modem = FakeModem(channel)
    with pytest.raises(ModemError) as err:  # not UnicodeEncodeError
        await channel.command(LOAD)  # the table marks the line sensitive without being told
    assert modem.sent == []
    assert "AT+VSIMLOAD=<redacted>" in str(err.value) and "non-ASCII" in str(err.value)
    assert not leaks(everything_shown(err.value))
    logging.getLogger("agent.core.supervisor").error("task %s died: %r; stopping", "swap", err.value)
    assert "task swap died" in caplog.text and not leaks(caplog.text)


@async_test
async def test_whatever_fails_under_a_sensitive_command_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(TRACE)
    channel = AtChannel(commands=get_dialect("virtual").commands)
    LeakyTransport(channel)
    line = LOAD.replace("\u00e9", "0")
    with pytest.raises(ModemError) as err:
        await channel.command(line, sensitive=True)
    assert "RuntimeError" in str(err.value) and "details withheld" in str(err.value)
    assert err.value.__context__ is None and err.value.__cause__ is None
    assert "tx <sensitive command" in caplog.text  # the capture saw the write: its silence below means something
    assert not leaks(everything_shown(err.value)) and not leaks(caplog.text)


@async_test
async def test_an_ordinary_command_keeps_its_error_text() -> None:
    channel = AtChannel()
    FakeModem(channel)
    with pytest.raises(ModemError, match="AT\\+COPS=1,2,\"4401\u00e9\": not sent"):
        await channel.command('AT+COPS=1,2,"4401\u00e9"')


def test_the_dialect_refuses_a_field_an_at_string_cannot_hold_by_its_name() -> None:
    profile = SimProfile("8981100000001000\u00e919", "440100000100001", KI, OPC, "44010", "internet.a.lab")
    with pytest.raises(ModemError, match="'iccid'") as err:
        get_dialect("virtual").vsim_load(1, profile)
    assert not leaks(everything_shown(err.value)) and "\u00e9" not in str(err.value)
    quoted = SimProfile("8981100000001000019", "440100000100001", KI, OPC, "44010", 'x","y')
    with pytest.raises(ModemError, match="'apn'"):
        get_dialect("virtual").vsim_load(1, quoted)

"""The virtual modem as a person at a terminal meets it: echo per character, S5 editing,
``A/``, S3/S4 and the command-line limit (V.250 clause 5.2). Over the real pty."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import serial

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from board.virtual.modem.term import MAX_COMMAND_LINE, LineEditor, Registers
from tests.integration.ec25_port import READ_DEADLINE, read_until


@pytest.fixture
def port() -> Iterator[serial.Serial]:
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as vm, serial.serial_for_url(vm.path, timeout=0.02) as p:
        yield p


def read_exactly(port: serial.Serial, expected: bytes) -> bytes:
    """Read until ``expected`` bytes have arrived (or the deadline), return what came."""
    buf = b""
    end = time.monotonic() + READ_DEADLINE
    while len(buf) < len(expected) and time.monotonic() < end:
        buf += port.read(len(expected) - len(buf))
    return buf


def test_each_character_is_echoed_as_it_arrives(port: serial.Serial) -> None:
    port.write(b"A")
    assert read_exactly(port, b"A") == b"A"
    port.write(b"T+CGM")
    assert read_exactly(port, b"T+CGM") == b"T+CGM"
    port.write(b"I\r")
    assert read_until(port) == b"I\r\r\nPocketLab\r\n\r\nOK\r\n"


@pytest.mark.parametrize("rubout", [b"\x08", b"\x7f"])
def test_backspace_rubs_out_a_typo(port: serial.Serial, rubout: bytes) -> None:
    port.write(b"AT+CGMX")
    read_exactly(port, b"AT+CGMX")
    port.write(rubout)
    assert read_exactly(port, b"\x08 \x08") == b"\x08 \x08"  # V.250: S5, space, S5
    port.write(b"I\r")
    assert read_until(port).endswith(b"\r\nPocketLab\r\n\r\nOK\r\n")


def test_a_slash_repeats_the_last_command_without_enter(port: serial.Serial) -> None:
    port.write(b"ATE0\r")
    read_until(port)
    port.write(b"AT+CGMI\r")
    assert read_until(port) == b"\r\nPocketLab\r\n\r\nOK\r\n"
    port.write(b"A/")
    assert read_until(port) == b"\r\nPocketLab\r\n\r\nOK\r\n"


def test_s3_and_s4_change_the_framing(port: serial.Serial) -> None:
    port.write(b"ATE0\r")
    read_until(port)
    port.write(b"ATS4=13\r")  # response formatting character: CR instead of LF
    assert read_until(port, b"OK\r\r") == b"\r\rOK\r\r"
    port.write(b"ATS4=10S3=64\r")  # V.250 6.2.1: this line's result already uses the new S3
    assert read_until(port, b"OK@\n") == b"@\nOK@\n"
    port.write(b"AT+CGMI@")
    assert read_until(port, b"OK@\n") == b"@\nPocketLab@\n@\nOK@\n"
    port.write(b"AT\r")  # CR is no longer a terminator: nothing happens ...
    port.write(b"S3?S3=13@")  # ... the CR is part of this line, which the modem refuses
    assert read_until(port, b"ERROR@\n") == b"@\nERROR@\n"
    port.write(b"ATS3=13@")
    assert read_until(port, b"OK\r\n") == b"\r\nOK\r\n"
    port.write(b"AT\r")
    assert read_until(port, b"OK\r\n") == b"\r\nOK\r\n"


def test_a_line_over_the_limit_is_refused(port: serial.Serial) -> None:
    port.write(b"ATE0\r")
    read_until(port)
    port.write(b"AT+CGMI" + b"X" * MAX_COMMAND_LINE + b"\r")
    assert read_until(port) == b"\r\nERROR\r\n"
    port.write(b"AT\r")  # the editor is usable again
    assert read_until(port) == b"\r\nOK\r\n"


def test_editor_alone() -> None:
    regs = {3: 13, 5: 8}
    echo = [True]
    editor = LineEditor(Registers(lambda n: regs[n]), lambda: echo[0])
    assert editor.feed(b"at\r\n") == (b"at\r", ["at"])  # LF after CR starts nothing
    assert editor.feed(b"A/") == (b"A/\r", ["at"])
    echo[0] = False
    assert editor.feed(b"ATI\x08\x08\rXYZ\r") == (b"", ["A", "XYZ"])
    assert editor.feed(b"\x08\x08\r") == (b"", [])  # nothing to rub out, empty line

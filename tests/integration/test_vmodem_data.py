"""Data calls on the virtual modem: ATD*99***<cid>#, +CEER, +CGPADDR, +QNETDEVCTL (real pty)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serial

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, CarrierReject, ModemConfig, NullCarrier
from tests.integration.ec25_port import ask, info, read_until, wait_registered


def open_port(vm: VirtualModem) -> serial.Serial:
    port = serial.serial_for_url(vm.path, timeout=0.02)
    port.write(b"ATE0\r")
    read_until(port)
    info(port, "AT+CEREG=1")
    wait_registered(port, True)  # the attach
    return port


@pytest.fixture
def port() -> Iterator[serial.Serial]:
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as vm, open_port(vm) as p:
        yield p


def test_dial_on_the_at_port_fails_and_ceer_says_why(port: serial.Serial) -> None:
    assert info(port, "AT+CEER") == ['+CEER: "No report available"']
    assert ask(port, "ATD*99***1#") == ([], "NO CARRIER")
    assert "network interface" in info(port, "AT+CEER")[0]
    assert ask(port, "ATD0312345678;") == ([], "NO CARRIER")  # no voice
    assert info(port, "AT+CGPADDR=1") == ['+CGPADDR: 1,"0.0.0.0"']


def test_ppp_capable_port_connects_escapes_and_hangs_up() -> None:
    config = ModemConfig(time_scale=FAST_SCALE, ppp_on_at_port=True)
    with VirtualModem(config) as vm, open_port(vm) as port:
        assert ask(port, "ATD*99***7#") == ([], "NO CARRIER")  # cid 7 is not defined
        assert "unknown PDP context" in info(port, "AT+CEER")[0]
        assert ask(port, "ATD*99***1#") == ([], "CONNECT 150000000")
        port.write(b"\x7e\xff\x7d\x23\xc0\x21\x7e")  # a PPP frame: swallowed, no answer
        port.write(b"+++")
        assert read_until(port) == b"\r\nOK\r\n"
        addr = info(port, "AT+CGPADDR=1")[0]
        assert addr.startswith('+CGPADDR: 1,"198.18.1.')
        assert ask(port, "ATO") == ([], "CONNECT 150000000")
        port.write(b"+++")
        read_until(port)
        assert info(port, "ATH") == []
        assert info(port, "AT+CGPADDR=1") == ['+CGPADDR: 1,"0.0.0.0"']
        assert ask(port, "ATO") == ([], "NO CARRIER")


def test_rejected_context_reports_the_esm_cause() -> None:
    class Rejecting(NullCarrier):
        def activate(self, imsi, cid, apn):  # type: ignore[no-untyped-def]
            raise CarrierReject(33)

    with VirtualModem(ModemConfig(time_scale=FAST_SCALE), Rejecting()) as vm, open_port(vm) as port:
        assert ask(port, "AT+QNETDEVCTL=1,1,1")[1] == "+CME ERROR: 133"
        assert info(port, "AT+CEER") == ['+CEER: "requested service option not subscribed (ESM cause 33)"']


def test_qnetdevctl_brings_the_interface_up_and_down(port: serial.Serial) -> None:
    assert info(port, "AT+QNETDEVCTL=?") == ["+QNETDEVCTL: (0-3),(1-15),(0,1)"]
    assert info(port, "AT+QNETDEVCTL?") == []
    port.write(b"AT+QNETDEVCTL=1,1,1\r")
    assert read_until(port, b"+QNETDEVSTATUS: 1\r\n") == b"\r\nOK\r\n\r\n+QNETDEVSTATUS: 1\r\n"
    assert info(port, "AT+QNETDEVCTL?") == ["+QNETDEVCTL: 1,1,1,1"]
    assert info(port, "AT+CGACT?") == ["+CGACT: 1,1"]
    assert info(port, "AT+CGPADDR=?") == ["+CGPADDR: (1)"]
    assert info(port, "AT+CGCONTRDP=?") == ["+CGCONTRDP: (1)"]
    info(port, "AT+QNETDEVCTL=0,1,0")
    assert info(port, "AT+CGACT?") == ["+CGACT: 1,0"]
    assert ask(port, "AT+QNETDEVCTL=1,9,0")[1] == "+CME ERROR: 50"

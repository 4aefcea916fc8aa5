"""Fixtures of the virtual-modem conformance tests: a fast modem and its port, echo off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serial

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from tests.integration.ec25_port import read_until


@pytest.fixture
def fast_vm() -> Iterator[VirtualModem]:
    """A virtual modem with the default identity, every latency x FAST_SCALE."""
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as modem:
        yield modem


@pytest.fixture
def quiet_port(fast_vm: VirtualModem) -> Iterator[serial.Serial]:
    """The modem's pty through pyserial, after ``ATE0`` (answers without the echo)."""
    with serial.serial_for_url(fast_vm.path, timeout=0.02) as port:
        port.write(b"ATE0\r")
        read_until(port)
        yield port

"""Peer check: python-gsmmodem-new, a library many SMS/USSD tools use, drives the virtual modem.

Nothing here was written for the virtual modem: ``GsmModem.connect()`` runs its own init
sequence (ATZ, +CMEE, +CFUN?, +CLAC, +COPS=3,0, +CMGF, +CSCA?, +CSMP, +CPMS=?, +CNMI,
+CLIP, +CRC, +CVHU) and fails on an answer it does not accept. Then it reads identity,
network and signal, receives a text (announced by +CMTI, read with +CMGR) and a USSD answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gsmmodem.modem import GsmModem

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.ident import EC25_IDENTITY
from board.virtual.modem.model import FAST_SCALE, ModemConfig

EC25 = ModemConfig(time_scale=FAST_SCALE, **EC25_IDENTITY)
NOTICE = "Your 3 GB data cap is used up. Speed is now 128 kbps."
CALLBACK_DEADLINE = 5.0
"""Seconds for the library's reader thread to hand over a received SMS."""


@pytest.fixture
def peer() -> Iterator[tuple[VirtualModem, GsmModem, list[Any], threading.Event]]:
    received: list[Any] = []
    arrived = threading.Event()

    def on_sms(sms: Any) -> None:
        received.append(sms)
        arrived.set()

    with VirtualModem(EC25) as vm:
        modem = GsmModem(vm.path, 115200, smsReceivedCallbackFunc=on_sms)
        modem.connect()
        try:
            yield vm, modem, received, arrived
        finally:
            modem.close()


def test_connect_identity_network_signal(peer: tuple[VirtualModem, GsmModem, list[Any], threading.Event]) -> None:
    _, modem, _, _ = peer
    assert (modem.manufacturer, modem.model, modem.revision) == ("Quectel", "EC25", "EC25EFAR06A06M4G")
    assert (modem.imei, modem.imsi) == (EC25.imei, EC25.seed.imsi)
    assert modem.smsc == "+819000000100"
    assert modem.waitForNetworkCoverage(timeout=5) == modem.signalStrength
    assert 0 < modem.signalStrength <= 31
    assert modem.networkName == EC25.operator_name
    assert {"+CUSD", "+CMGR", "+CRSM"} <= set(modem.supportedCommands)


def test_receives_a_cap_notice_and_a_ussd_answer(peer: tuple[VirtualModem, GsmModem, list[Any], threading.Event]) -> None:
    vm, modem, received, arrived = peer
    vm.deliver_sms("+819012340000", NOTICE)
    assert arrived.wait(CALLBACK_DEADLINE)
    assert (received[0].number, received[0].text) == ("+819012340000", NOTICE)
    assert modem.listStoredSms() == []  # the library read it and deleted it (+CMGD)
    modem.waitForNetworkCoverage(timeout=5)  # USSD needs the network, as on a real modem
    answer = modem.sendUssd("*100#", responseTimeout=5)
    assert answer.message.startswith("Data plan active") and not answer.sessionActive

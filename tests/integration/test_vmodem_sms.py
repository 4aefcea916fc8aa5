"""SMS and USSD on the virtual modem (27.005 / 27.007 +CUSD), over the real pty.

PDUs are decoded with python-gsmmodem-new's decoder: a PDU another project can read is the
check that the encoding is right, not our own decoder agreeing with our own encoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import serial
from gsmmodem.pdu import decodeSmsPdu

from board.virtual.modem import FAST_SCALE, ModemConfig, VirtualModem
from board.virtual.modem_sms import JST, Message, deliver_pdu, timestamp
from tests.integration.ec25_port import ask, info, read_lines, read_until

NOTICE = "Your 3 GB data cap is used up. Speed is now 128 kbps."
SENDER = "+819012340000"


@pytest.fixture
def vm() -> Iterator[VirtualModem]:
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as modem:
        yield modem


@pytest.fixture
def port(vm: VirtualModem) -> Iterator[serial.Serial]:
    with serial.serial_for_url(vm.path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        yield p


def test_pdu_encoding_is_readable_by_another_implementation() -> None:
    when = datetime(2026, 11, 27, 15, 0, 5, tzinfo=JST)
    assert timestamp(when) == "62117251005063"
    pdu, length = deliver_pdu(Message(SENDER, NOTICE, when), "+819000000100")
    decoded = decodeSmsPdu(pdu)
    assert (decoded["number"], decoded["text"], decoded["smsc"]) == (SENDER, NOTICE, "+819000000100")
    assert decoded["time"].utcoffset().total_seconds() == 9 * 3600
    assert length == len(pdu) // 2 - 8  # TPDU octets: the SMSC field (8 octets) is not counted
    jp = deliver_pdu(Message(SENDER, "データ容量を超えました", when), "+819000000100")[0]
    assert decodeSmsPdu(jp)["text"] == "データ容量を超えました"  # UCS2


def test_sms_settings_and_test_forms(port: serial.Serial) -> None:
    assert info(port, "AT+CMGF=?") == ["+CMGF: (0,1)"]
    assert info(port, "AT+CMGF?") == ["+CMGF: 0"]
    assert info(port, "AT+CSCA?") == ['+CSCA: "+819000000100",145']
    info(port, 'AT+CSCA="+819000000200"')
    assert info(port, "AT+CSCA?") == ['+CSCA: "+819000000200",145']
    info(port, 'AT+CSCA=""')
    assert ask(port, "AT+CSCA?")[1] == "+CMS ERROR: 330"  # what python-gsmmodem expects then
    assert ask(port, 'AT+CSCA="12ab"')[1] == "+CME ERROR: 50"
    assert info(port, "AT+CPMS=?") == ['+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")']
    assert info(port, "AT+CPMS?") == ['+CPMS: "ME",0,255,"ME",0,255,"ME",0,255']
    assert info(port, 'AT+CPMS="SM","SM","SM"') == ["+CPMS: 0,50,0,50,0,50"]
    assert ask(port, 'AT+CPMS="XX"')[1] == "+CMS ERROR: 302"
    assert info(port, "AT+CNMI=?") == ["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]
    info(port, "AT+CNMI=2,1,0,2")
    assert info(port, "AT+CNMI?") == ["+CNMI: 2,1,0,2,0"]
    assert ask(port, "AT+CNMI=2,9")[1] == "+CMS ERROR: 302"
    assert info(port, "AT+CSMP?") == ["+CSMP: 17,167,0,0"]
    for name in ("+CLIP", "+CRC", "+CVHU"):
        info(port, f"AT{name}=1")
        assert info(port, f"AT{name}?") == [f"{name}: 1"]
    assert "AT+CMGR" in info(port, "AT+CLAC")


def test_cmti_then_read_list_delete_in_pdu_mode(vm: VirtualModem, port: serial.Serial) -> None:
    info(port, "AT+CNMI=2,1,0,0,0")
    assert vm.deliver_sms(SENDER, NOTICE) == 0
    assert read_until(port, b'+CMTI: "ME",0\r\n') == b'\r\n+CMTI: "ME",0\r\n'
    lines = info(port, "AT+CMGL=0")  # unread
    assert lines[0].startswith("+CMGL: 0,0,,") and decodeSmsPdu(lines[1])["text"] == NOTICE
    assert info(port, "AT+CMGL=0") == []  # listing read it
    head, pdu = info(port, "AT+CMGR=0")
    assert head == f"+CMGR: 1,,{len(pdu) // 2 - 8}" and decodeSmsPdu(pdu)["number"] == SENDER
    assert ask(port, "AT+CMGR=7")[1] == "+CMS ERROR: 321"
    assert info(port, "AT+CMGD=?") == ["+CMGD: (0),(0-4)"]
    info(port, "AT+CMGD=0")
    assert ask(port, "AT+CMGD=0")[1] == "+CMS ERROR: 321"
    assert info(port, "AT+CPMS?")[0].startswith('+CPMS: "ME",0,255')


def test_text_mode_and_bulk_delete(vm: VirtualModem, port: serial.Serial) -> None:
    info(port, "AT+CMGF=1")
    vm.deliver_sms(SENDER, NOTICE)
    vm.deliver_sms(SENDER, "second")
    head, text = info(port, "AT+CMGR=1")
    assert head.startswith(f'+CMGR: "REC UNREAD","{SENDER}",,"') and head.endswith('+36"') and text == "second"
    listing = info(port, 'AT+CMGL="ALL"')
    assert listing[0].startswith('+CMGL: 0,"REC UNREAD"') and listing[1] == NOTICE
    assert listing[2].startswith('+CMGL: 1,"REC READ"')
    assert info(port, 'AT+CMGL="REC UNREAD"') == []
    info(port, "AT+CMGD=0,4")
    assert info(port, 'AT+CMGL="ALL"') == []


def test_sim_memory_follows_the_card(vm: VirtualModem, port: serial.Serial) -> None:
    info(port, 'AT+CPMS="SM","SM","SM"')
    vm.deliver_sms(SENDER, NOTICE)
    assert info(port, "AT+CPMS?") == ['+CPMS: "SM",1,50,"SM",1,50,"SM",1,50']


def test_cmt_routes_without_storing(vm: VirtualModem, port: serial.Serial) -> None:
    info(port, "AT+CNMI=2,2,0,0,0")
    assert vm.deliver_sms(SENDER, NOTICE) is None
    head, pdu = read_lines(port, 2)  # "+CMT: ,<length>" and the PDU on the next line
    assert head == f"+CMT: ,{len(pdu) // 2 - 8}".encode() and decodeSmsPdu(pdu.decode())["text"] == NOTICE
    assert info(port, "AT+CPMS?")[0].startswith('+CPMS: "ME",0,')


def test_ussd_answer_arrives_as_urc(port: serial.Serial) -> None:
    assert info(port, "AT+CUSD=?") == ["+CUSD: (0-2)"]
    port.write(b'AT+CUSD=1,"*100#",15\r')
    assert read_lines(port, 2) == [b"OK", b'+CUSD: 0,"Data plan active. Check your remaining data at *101#.",15']
    assert info(port, "AT+CUSD?") == ["+CUSD: 1"]
    port.write(b'AT+CUSD=1,"*999#",15\r')
    assert read_lines(port, 2) == [b"OK", b"+CUSD: 4"]
    info(port, "AT+CUSD=2")

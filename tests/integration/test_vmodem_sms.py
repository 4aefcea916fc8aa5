"""SMS and USSD on the virtual modem (27.005 / 27.007 +CUSD), over the real pty.

PDUs are decoded with python-gsmmodem-new's decoder: a PDU another project can read is the
check that the encoding is right, not our own decoder agreeing with our own encoder.
"""

from __future__ import annotations

from datetime import datetime

import serial
from gsmmodem.pdu import decodeSmsPdu

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.sms import JST, Message, deliver_pdu, timestamp
from tests.integration.ec25_port import ask, info, read_lines, read_until

NOTICE = "Your 3 GB data cap is used up. Speed is now 128 kbps."
SENDER = "+819012340000"


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


def test_sms_settings_and_test_forms(quiet_port: serial.Serial) -> None:
    assert info(quiet_port, "AT+CMGF=?") == ["+CMGF: (0,1)"]
    assert info(quiet_port, "AT+CMGF?") == ["+CMGF: 0"]
    assert info(quiet_port, "AT+CSCA?") == ['+CSCA: "+819000000100",145']
    info(quiet_port, 'AT+CSCA="+819000000200"')
    assert info(quiet_port, "AT+CSCA?") == ['+CSCA: "+819000000200",145']
    info(quiet_port, 'AT+CSCA=""')
    assert ask(quiet_port, "AT+CSCA?")[1] == "+CMS ERROR: 330"  # what python-gsmmodem expects then
    assert ask(quiet_port, 'AT+CSCA="12ab"')[1] == "+CME ERROR: 50"
    assert info(quiet_port, "AT+CPMS=?") == ['+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")']
    assert info(quiet_port, "AT+CPMS?") == ['+CPMS: "ME",0,255,"ME",0,255,"ME",0,255']
    assert info(quiet_port, 'AT+CPMS="SM","SM","SM"') == ["+CPMS: 0,50,0,50,0,50"]
    assert ask(quiet_port, 'AT+CPMS="XX"')[1] == "+CMS ERROR: 302"
    assert info(quiet_port, "AT+CNMI=?") == ["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]
    info(quiet_port, "AT+CNMI=2,1,0,2")
    assert info(quiet_port, "AT+CNMI?") == ["+CNMI: 2,1,0,2,0"]
    assert ask(quiet_port, "AT+CNMI=2,9")[1] == "+CMS ERROR: 302"
    assert info(quiet_port, "AT+CSMP?") == ["+CSMP: 17,167,0,0"]
    for name in ("+CLIP", "+CRC", "+CVHU"):
        info(quiet_port, f"AT{name}=1")
        assert info(quiet_port, f"AT{name}?") == [f"{name}: 1"]
    assert "AT+CMGR" in info(quiet_port, "AT+CLAC")


def test_cmti_then_read_list_delete_in_pdu_mode(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CNMI=2,1,0,0,0")
    assert fast_vm.deliver_sms(SENDER, NOTICE) == 0
    assert read_until(quiet_port, b'+CMTI: "ME",0\r\n') == b'\r\n+CMTI: "ME",0\r\n'
    lines = info(quiet_port, "AT+CMGL=0")  # unread
    assert lines[0].startswith("+CMGL: 0,0,,") and decodeSmsPdu(lines[1])["text"] == NOTICE
    assert info(quiet_port, "AT+CMGL=0") == []  # listing read it
    head, pdu = info(quiet_port, "AT+CMGR=0")
    assert head == f"+CMGR: 1,,{len(pdu) // 2 - 8}" and decodeSmsPdu(pdu)["number"] == SENDER
    assert ask(quiet_port, "AT+CMGR=7")[1] == "+CMS ERROR: 321"
    info(quiet_port, "AT+CMEE=2")
    assert ask(quiet_port, "AT+CMGR=7")[1] == "+CMS ERROR: invalid memory index"  # the agent's table
    info(quiet_port, "AT+CMEE=1")
    assert info(quiet_port, "AT+CMGD=?") == ["+CMGD: (0),(0-4)"]
    info(quiet_port, "AT+CMGD=0")
    assert ask(quiet_port, "AT+CMGD=0")[1] == "+CMS ERROR: 321"
    assert info(quiet_port, "AT+CPMS?")[0].startswith('+CPMS: "ME",0,255')


def test_text_mode_and_bulk_delete(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CMGF=1")
    fast_vm.deliver_sms(SENDER, NOTICE)
    fast_vm.deliver_sms(SENDER, "second")
    head, text = info(quiet_port, "AT+CMGR=1")
    assert head.startswith(f'+CMGR: "REC UNREAD","{SENDER}",,"') and head.endswith('+36"') and text == "second"
    listing = info(quiet_port, 'AT+CMGL="ALL"')
    assert listing[0].startswith('+CMGL: 0,"REC UNREAD"') and listing[1] == NOTICE
    assert listing[2].startswith('+CMGL: 1,"REC READ"')
    assert info(quiet_port, 'AT+CMGL="REC UNREAD"') == []
    info(quiet_port, "AT+CMGD=0,4")
    assert info(quiet_port, 'AT+CMGL="ALL"') == []


def test_sim_memory_follows_the_card(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, 'AT+CPMS="SM","SM","SM"')
    fast_vm.deliver_sms(SENDER, NOTICE)
    assert info(quiet_port, "AT+CPMS?") == ['+CPMS: "SM",1,50,"SM",1,50,"SM",1,50']


def test_cmt_routes_without_storing(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CNMI=2,2,0,0,0")
    assert fast_vm.deliver_sms(SENDER, NOTICE) is None
    head, pdu = read_lines(quiet_port, 2)  # "+CMT: ,<length>" and the PDU on the next line
    assert head == f"+CMT: ,{len(pdu) // 2 - 8}".encode() and decodeSmsPdu(pdu.decode())["text"] == NOTICE
    assert info(quiet_port, "AT+CPMS?")[0].startswith('+CPMS: "ME",0,')


def test_ussd_answer_arrives_as_urc(quiet_port: serial.Serial) -> None:
    assert info(quiet_port, "AT+CUSD=?") == ["+CUSD: (0-2)"]
    quiet_port.write(b'AT+CUSD=1,"*100#",15\r')
    assert read_lines(quiet_port, 2) == [b"OK", b'+CUSD: 0,"Data plan active. Check your remaining data at *101#.",15']
    assert info(quiet_port, "AT+CUSD?") == ["+CUSD: 1"]
    quiet_port.write(b'AT+CUSD=1,"*999#",15\r')
    assert read_lines(quiet_port, 2) == [b"OK", b"+CUSD: 4"]
    info(quiet_port, "AT+CUSD=2")

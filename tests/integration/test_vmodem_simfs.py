"""The SIM as files (+CRSM/+CSIM), ICCID commands and PIN counters of the virtual modem.

Over the real pty through pyserial; the answers are decoded with the agent's own parsers
where it has one (an answer the agent cannot read would be a wrong answer).
"""

from __future__ import annotations

import serial

from agent.modem import parse
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.simfs import bcd_swapped, plmn_bcd
from tests.integration.ec25_port import ask, info, read_until

SEED_ICCID = "8981100000000000001"
OTHER_ICCID = "8981100000000000042"
KEY = "000102030405060708090A0B0C0D0E0F"
SWAPPED = "981801000000000000F1"
"""EF_ICCID of the seed SIM as stored: digits in swapped pairs, F filler (TS 102 221 13.2)."""


def crsm(quiet_port: serial.Serial, args: str) -> tuple[int, int, str]:
    line = info(quiet_port, f"AT+CRSM={args}")[0]
    fields = line.split(": ", 1)[1].split(",")
    return int(fields[0]), int(fields[1]), fields[2].strip('"') if len(fields) > 2 else ""


def test_bcd_helpers() -> None:
    assert bcd_swapped("8981100000000000001", 10).hex().upper() == SWAPPED
    assert plmn_bcd("44010").hex().upper() == "44F001"
    assert plmn_bcd("310410").hex().upper() == "130014"


def test_iccid_commands_agree(quiet_port: serial.Serial) -> None:
    answers = [info(quiet_port, c)[0] for c in ("AT+CCID", "AT+ICCID", "AT+QCCID")]
    assert answers == [f"+CCID: {SEED_ICCID}", f"+ICCID: {SEED_ICCID}", f"+QCCID: {SEED_ICCID}F"]
    assert {parse.parse_iccid(a) for a in answers} == {SEED_ICCID}


def test_crsm_reads_ef_iccid_nibble_swapped(quiet_port: serial.Serial) -> None:
    sw1, sw2, data = crsm(quiet_port, "176,12258,0,0,10")
    assert (sw1, sw2) == (144, 0) and data == SWAPPED
    assert parse.parse_iccid(f'+CRSM: 144,0,"{data}"') == SEED_ICCID


def test_crsm_spn_ad_gid_loci_imsi(quiet_port: serial.Serial) -> None:
    _, _, spn = crsm(quiet_port, "176,28486,0,0,17")
    raw = bytes.fromhex(spn)
    assert raw[0] == 0x01 and raw[1:].rstrip(b"\xff") == b"LAB MOBILE"
    assert crsm(quiet_port, "176,28589,0,0,4")[2] == "00000002"  # 2-digit MNC (44010)
    assert crsm(quiet_port, "176,28478,0,0,0")[2] == "0A" + "FF" * 7
    assert crsm(quiet_port, "176,28479,0,0,0")[2] == "FF" * 8
    loci = crsm(quiet_port, "176,28542,0,0,11")[2]
    assert loci[8:14] == "44F001" and loci[14:18] == "1A2B"
    assert crsm(quiet_port, "176,28423,0,0,9")[2] == "084904012143050010"


def test_crsm_errors_are_status_words(quiet_port: serial.Serial) -> None:
    assert crsm(quiet_port, "176,28472,0,0,10")[:2] == (0x6A, 0x82)  # no such file
    assert crsm(quiet_port, "176,12258,0,0,12")[:2] == (0x6C, 10)  # only 10 bytes there
    assert crsm(quiet_port, "176,12258,0,20,1")[:2] == (0x6B, 0)  # offset past the end
    assert crsm(quiet_port, "178,12258,1,4,10")[:2] == (0x6D, 0)  # records: not a record EF
    sw1, sw2, fcp = crsm(quiet_port, "192,12258,0,0,15")
    assert (sw1, sw2) == (144, 0) and fcp.startswith("62") and "83022FE2" in fcp and "8002000A" in fcp
    assert ask(quiet_port, "AT+CRSM?")[1] == "+CME ERROR: 50"


def test_csim_pin_retries_and_read(quiet_port: serial.Serial) -> None:
    def csim(apdu: str) -> str:
        line = info(quiet_port, f'AT+CSIM={len(apdu)},"{apdu}"')[0]
        length, answer = line.split(": ", 1)[1].split(",")
        assert int(length) == len(answer.strip('"'))
        return answer.strip('"')

    assert csim("0020000100") == "63C3"  # PIN1: 3 tries
    assert csim("0020008100") == "63C3"  # PIN2
    assert csim("002C000100") == "63CA"  # PUK1: 10
    assert csim("00A4000C022FE2") == "9000"
    assert csim("00B000000A") == SWAPPED + "9000"
    assert csim("F0A4000C022FE2") == "6E00"
    assert ask(quiet_port, 'AT+CSIM=5,"00200"')[1] == "+CME ERROR: 50"


def test_pin_lock_counters_and_reboot(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    assert info(quiet_port, 'AT+CLCK="SC",2') == ["+CLCK: 0"]
    assert ask(quiet_port, 'AT+CLCK="SC",1,"0000"')[1] == "+CME ERROR: 16"
    assert info(quiet_port, 'AT+QPINC="SC"') == ['+QPINC: "SC",2,10']
    info(quiet_port, 'AT+CLCK="SC",1,"1234"')
    assert info(quiet_port, 'AT+CLCK="SC",2') == ["+CLCK: 1"]
    assert info(quiet_port, 'AT+QPINC="SC"') == ['+QPINC: "SC",3,10']  # a right PIN resets the count
    assert info(quiet_port, 'AT+CLCK="AO",2') == ["+CLCK: 0"]
    fast_vm.reboot()
    read_until(quiet_port, b"+CPIN: SIM PIN\r\n")
    quiet_port.write(b"ATE0\r")
    read_until(quiet_port)
    assert info(quiet_port, "AT+CPIN?") == ["+CPIN: SIM PIN"]
    assert ask(quiet_port, "AT+CRSM=176,12258,0,0,10")[1] == "+CME ERROR: 11"
    for left in (2, 1):
        assert ask(quiet_port, 'AT+CPIN="9999"')[1] == "+CME ERROR: 16"
        assert info(quiet_port, 'AT+QPINC="SC"') == [f'+QPINC: "SC",{left},10']
    assert info(quiet_port, 'AT+CPIN="1234"') == ["+CPIN: READY"]
    assert info(quiet_port, "AT+CPIN?") == ["+CPIN: READY"]


def test_puk_after_three_wrong_pins(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, 'AT+CLCK="SC",1,"1234"')
    fast_vm.reboot()
    read_until(quiet_port, b"+CPIN: SIM PIN\r\n")
    quiet_port.write(b"ATE0\r")
    read_until(quiet_port)
    for _ in range(3):
        ask(quiet_port, 'AT+CPIN="0000"')
    assert info(quiet_port, "AT+CPIN?") == ["+CPIN: SIM PUK"]
    assert info(quiet_port, 'AT+CSIM=10,"0020000100"') == ['+CSIM: 4,"6983"']  # blocked
    assert ask(quiet_port, 'AT+CPIN="00000000","4321"')[1] == "+CME ERROR: 16"
    info(quiet_port, f'AT+CPIN="{SEED_ICCID[-8:]}","4321"')
    assert info(quiet_port, "AT+CPIN?") == ["+CPIN: READY"]


def test_files_follow_the_active_vsim_slot(quiet_port: serial.Serial) -> None:
    info(quiet_port, f'AT+VSIMLOAD=1,"{OTHER_ICCID}","440109876500042","{KEY}","{KEY}","44020","x"')
    info(quiet_port, "AT+VSIMSEL=1")
    assert parse.parse_iccid(info(quiet_port, "AT+QCCID")[0]) == OTHER_ICCID
    data = crsm(quiet_port, "176,12258,0,0,10")[2]
    assert parse.parse_iccid(data) == OTHER_ICCID
    loci = crsm(quiet_port, "176,28542,0,0,11")[2]
    assert loci[8:14] == "44F002"

"""The status word the card answers to every class byte and every length (ETSI TS 102 221
clauses 7.2, 10.1 and table 10.3; issue 29's mutation run on agent/usim/apdu.py).

The class byte is held to an oracle written from the table, for all 256 values: '0X'
(and its proprietary twin '8X') carries secure messaging in b4-b3 and the logical
channel in b2-b1; '4X' and '6X' ('CX', 'EX') carry channels 4 to 19 in b4-b1, '6X'/'EX'
with secure messaging. This card has the basic channel only and no secure messaging."""

from __future__ import annotations

import pytest

from agent.usim import apdu, sw


def expected_for_class(cla: int, proprietary_ins: bool) -> bytes | None:
    """The refusal a command of the given family gets with class ``cla`` (None: accepted)."""
    high, low = cla >> 4, cla & 0x0F
    first = {0x0: (False, low & 0x3, low >> 2), 0x8: (True, low & 0x3, low >> 2),
             0x4: (False, 4 + low, 0), 0x6: (False, 4 + low, 1), 0xC: (True, 4 + low, 0), 0xE: (True, 4 + low, 1)}
    if high not in first:
        return sw.CLA_NOT_SUPPORTED
    proprietary, channel, secure = first[high]
    if proprietary != proprietary_ins:
        return sw.CLA_NOT_SUPPORTED
    if channel:
        return sw.LOGICAL_CHANNEL_NOT_SUPPORTED
    if secure:
        return sw.SECURE_MESSAGING_NOT_SUPPORTED
    return None


@pytest.mark.parametrize("cla", range(256), ids=lambda c: f"{c:02X}")
def test_every_class_byte(cla: int) -> None:
    read = apdu.parse(bytes([cla, apdu.READ_BINARY, 0, 0, 4]))            # interindustry, reads
    status = apdu.parse(bytes([cla, apdu.STATUS, 0, 0, 0]))               # proprietary, reads
    profile = apdu.parse(bytes([cla, apdu.TERMINAL_PROFILE, 0, 0, 2, 0xFF, 0xFF]))  # proprietary, sends
    for got, proprietary in ((read, False), (status, True), (profile, True)):
        want = expected_for_class(cla, proprietary)
        if want is None:
            assert isinstance(got, apdu.Apdu) and got.cla == cla
        else:
            assert got == want


@pytest.mark.parametrize(("ins", "command"), sorted(apdu.COMMANDS.items()))
def test_every_command_takes_exactly_its_length(ins: int, command: apdu.Command) -> None:
    """A command that sends data takes exactly P3 bytes after the header; one that reads
    takes none (P3 is Le); anything else is 6700."""
    cla = 0x80 if command.proprietary else 0x00
    for p3 in (0, 1, 2, 255):
        sent = bytes(p3) if command.sends_data else b""
        got = apdu.parse(bytes([cla, ins, 1, 2, p3]) + sent)
        assert got == apdu.Apdu(cla, ins, 1, 2, p3, sent)
        assert apdu.parse(bytes([cla, ins, 1, 2, p3]) + sent + b"\x00") == sw.WRONG_LENGTH
        if command.sends_data and p3:
            assert apdu.parse(bytes([cla, ins, 1, 2, p3]) + sent[1:]) == sw.WRONG_LENGTH
    assert apdu.COMMANDS[ins] is command


def test_t0_frames_shorter_than_a_header_or_longer_than_255_data_bytes() -> None:
    assert apdu.parse(bytes([0x00, apdu.SELECT, 0, 4])) == sw.WRONG_LENGTH
    assert apdu.parse(b"") == sw.WRONG_LENGTH
    longest = bytes([0x00, apdu.UPDATE_BINARY, 0, 0, 255]) + bytes(255)
    assert isinstance(apdu.parse(longest), apdu.Apdu) and len(longest) == apdu.MAX_APDU
    assert apdu.parse(longest + b"\x00") == sw.WRONG_LENGTH


def test_an_unknown_instruction_is_6d00_and_le_00_means_256() -> None:
    assert apdu.parse(bytes([0x00, 0x12, 0, 0, 0])) == sw.INS_NOT_SUPPORTED  # FETCH: no proactive commands
    assert apdu.parse(bytes([0xA0, 0x12, 0, 0, 0])) == sw.CLA_NOT_SUPPORTED  # a 2G SIM's class, checked first
    read = apdu.parse(bytes([0x00, apdu.READ_BINARY, 0, 0, 0]))
    assert isinstance(read, apdu.Apdu) and read.le == 256
    read = apdu.parse(bytes([0x00, apdu.READ_BINARY, 0, 0, 1]))
    assert isinstance(read, apdu.Apdu) and read.le == 1


def test_only_the_header_may_be_logged() -> None:
    command = apdu.parse(bytes([0x00, apdu.VERIFY, 0x00, 0x01, 0x08]) + b"12345678")
    assert isinstance(command, apdu.Apdu) and command.header() == "00 20 00 01 08"
    select = apdu.parse(bytes([0x00, apdu.SELECT, 0x00, 0x04, 0x02, 0x7F, 0xFF]))
    assert isinstance(select, apdu.Apdu) and select.header() == "00 A4 00 04 02"  # as 102 221 writes it

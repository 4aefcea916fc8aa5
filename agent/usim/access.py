"""READ BINARY, UPDATE BINARY, READ RECORD and UPDATE RECORD (ETSI TS 102 221 11.1.3-11.1.6).

Each names its file either as the current EF or by a short file identifier (SFI) of the
current DF, which then becomes the current EF, as on a card. Transparent files are read
from an offset; linear fixed files by record number or by moving the record pointer
(next, previous). Where the terminal's Le does not match what the file holds the answer
is 6Cxx with the right length and nothing moves, so the terminal's retry sees the same
record.
"""

from __future__ import annotations

from agent.usim import sw
from agent.usim.apdu import Apdu
from agent.usim.fs import Ef
from agent.usim.select import Reply, Selection, refuse

SFI_FLAG = 0x80
"""READ/UPDATE BINARY P1 b8: P1's low five bits are an SFI and P2 the offset."""
SFI_RFU_BITS = 0x60
"""P1 b7-b6 must be 0 with an SFI (102 221, READ BINARY)."""
MAX_SFI = 30
"""SFIs run 1..30; 31 is RFU (102 221 clause 8)."""
MODE_NEXT, MODE_PREVIOUS, MODE_ABSOLUTE = 0x02, 0x03, 0x04
"""READ/UPDATE RECORD P2 b3-b1 (102 221 table 11.9); absolute with P1=00 is 'current'."""


def _by_sfi(sel: Selection, sfi: int) -> Ef | bytes:
    if not 1 <= sfi <= MAX_SFI:
        return sw.INCORRECT_P1P2
    ef = sel.df.by_sfi(sfi)
    if ef is None:
        return sw.FILE_NOT_FOUND
    if ef is not sel.ef:
        sel.choose(ef)
    return ef


def _binary_target(sel: Selection, apdu: Apdu) -> tuple[Ef, int] | bytes:
    """(file, offset) of a READ/UPDATE BINARY, or the status word that refuses it."""
    if apdu.p1 & SFI_FLAG:
        if apdu.p1 & SFI_RFU_BITS:
            return sw.INCORRECT_P1P2
        ef = _by_sfi(sel, apdu.p1 & 0x1F)
        offset = apdu.p2
    else:
        ef = sel.ef if sel.ef is not None else sw.NO_EF_SELECTED
        offset = (apdu.p1 << 8) | apdu.p2
    if isinstance(ef, bytes):
        return ef
    if ef.linear:
        return sw.WRONG_FILE_TYPE
    if offset >= ef.size:
        return sw.WRONG_P1P2
    return ef, offset


def read_binary(sel: Selection, apdu: Apdu) -> Reply:
    target = _binary_target(sel, apdu)
    if isinstance(target, bytes):
        return refuse(target)
    ef, offset = target
    left = ef.size - offset
    if apdu.le > left:
        return refuse(sw.wrong_le(left))
    return Reply(bytes(ef.data[offset:offset + apdu.le]), sw.OK)


def update_binary(sel: Selection, apdu: Apdu) -> Reply:
    target = _binary_target(sel, apdu)
    if isinstance(target, bytes):
        return refuse(target)
    ef, offset = target
    if not ef.writable:
        return refuse(sw.SECURITY_STATUS)
    if not apdu.data or offset + len(apdu.data) > ef.size:
        return refuse(sw.WRONG_LENGTH)
    ef.data[offset:offset + len(apdu.data)] = apdu.data
    return Reply(b"", sw.OK)


def _record_target(sel: Selection, apdu: Apdu) -> Ef | bytes:
    sfi = apdu.p2 >> 3
    if sfi:
        ef = _by_sfi(sel, sfi)
    else:
        ef = sel.ef if sel.ef is not None else sw.NO_EF_SELECTED
    if isinstance(ef, bytes):
        return ef
    return ef if ef.linear else sw.WRONG_FILE_TYPE


def _record_number(sel: Selection, ef: Ef, apdu: Apdu) -> int | bytes:
    """The record a READ/UPDATE RECORD addresses (not yet moving the pointer)."""
    mode = apdu.p2 & 0x07
    count = len(ef.records)
    if mode == MODE_ABSOLUTE:
        number = apdu.p1 or sel.record
        if number is None:
            return sw.RECORD_NOT_FOUND
    elif mode in (MODE_NEXT, MODE_PREVIOUS):
        if apdu.p1:
            return sw.INCORRECT_P1P2
        if sel.record is None:
            number = 1 if mode == MODE_NEXT else count
        else:
            number = sel.record + (1 if mode == MODE_NEXT else -1)
    else:
        return sw.INCORRECT_P1P2
    return number if 1 <= number <= count else sw.RECORD_NOT_FOUND


def read_record(sel: Selection, apdu: Apdu) -> Reply:
    ef = _record_target(sel, apdu)
    if isinstance(ef, bytes):
        return refuse(ef)
    number = _record_number(sel, ef, apdu)
    if isinstance(number, bytes):
        return refuse(number)
    if apdu.le != ef.record_length:
        return refuse(sw.wrong_le(ef.record_length))
    _move(sel, apdu, number)
    return Reply(bytes(ef.records[number - 1]), sw.OK)


def update_record(sel: Selection, apdu: Apdu) -> Reply:
    ef = _record_target(sel, apdu)
    if isinstance(ef, bytes):
        return refuse(ef)
    if not ef.writable:
        return refuse(sw.SECURITY_STATUS)
    number = _record_number(sel, ef, apdu)
    if isinstance(number, bytes):
        return refuse(number)
    if len(apdu.data) != ef.record_length:
        return refuse(sw.WRONG_LENGTH)
    _move(sel, apdu, number)
    ef.records[number - 1][:] = apdu.data
    return Reply(b"", sw.OK)


def _move(sel: Selection, apdu: Apdu, number: int) -> None:
    """Next and previous move the record pointer; absolute leaves it (102 221 11.1.5)."""
    if apdu.p2 & 0x07 != MODE_ABSOLUTE:
        sel.record = number

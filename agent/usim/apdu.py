"""Command APDUs as a T=0 card receives them (ETSI TS 102 221 clauses 7.2 and 10.1).

Under T=0 every command is a five-byte header CLA INS P1 P2 P3 and, for a command that
sends data, exactly P3 bytes of it; for a command that reads, P3 is Le (00 meaning 256)
and nothing follows. So the longest APDU is 5 + 255 bytes and the shortest 5. ``parse``
checks that frame and the class byte against the command table here, and answers a
status word for anything a card would refuse before looking at the command itself.

The table says, per INS, which class family it belongs to (the first interindustry
'0X/4X/6X', or the proprietary '8X/CX/EX' of TS 102 221 table 10.5) and whether P3 counts
bytes sent (Lc) or bytes expected (Le). An INS not in it is 6D00.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.usim import sw

HEADER = 5
"""CLA INS P1 P2 P3 (102 221 clause 7, T=0)."""
MAX_APDU = HEADER + 255
"""T=0 carries at most 255 data bytes after the header: P3 is one byte."""


@dataclass(frozen=True)
class Command:
    """One INS of the table: its name, class family and the meaning of P3."""

    name: str
    proprietary: bool
    """True: CLA '8X'/'CX'/'EX'; False: '0X'/'4X'/'6X'."""
    sends_data: bool
    """True: P3 is Lc and that many data bytes follow; False: P3 is Le (or 0)."""


SELECT, STATUS, READ_BINARY, UPDATE_BINARY = 0xA4, 0xF2, 0xB0, 0xD6
READ_RECORD, UPDATE_RECORD, GET_RESPONSE, AUTHENTICATE = 0xB2, 0xDC, 0xC0, 0x88
VERIFY, CHANGE_PIN, DISABLE_PIN, ENABLE_PIN, UNBLOCK_PIN = 0x20, 0x24, 0x26, 0x28, 0x2C
TERMINAL_PROFILE, MANAGE_CHANNEL = 0x10, 0x70

COMMANDS: dict[int, Command] = {
    SELECT: Command("SELECT", False, True),
    STATUS: Command("STATUS", True, False),
    READ_BINARY: Command("READ BINARY", False, False),
    UPDATE_BINARY: Command("UPDATE BINARY", False, True),
    READ_RECORD: Command("READ RECORD", False, False),
    UPDATE_RECORD: Command("UPDATE RECORD", False, True),
    GET_RESPONSE: Command("GET RESPONSE", False, False),
    AUTHENTICATE: Command("AUTHENTICATE", False, True),
    VERIFY: Command("VERIFY PIN", False, True),
    CHANGE_PIN: Command("CHANGE PIN", False, True),
    DISABLE_PIN: Command("DISABLE PIN", False, True),
    ENABLE_PIN: Command("ENABLE PIN", False, True),
    UNBLOCK_PIN: Command("UNBLOCK PIN", False, True),
    TERMINAL_PROFILE: Command("TERMINAL PROFILE", True, True),
    MANAGE_CHANNEL: Command("MANAGE CHANNEL", False, False),
}
"""The commands this card knows. Not here, so 6D00: the toolkit (ENVELOPE, FETCH,
TERMINAL RESPONSE: the card has no proactive commands), SEARCH RECORD, INCREASE, GET
CHALLENGE, (DE)ACTIVATE FILE and the GSM class 'A0' commands of a 2G SIM."""


@dataclass(frozen=True)
class Apdu:
    cla: int
    ins: int
    p1: int
    p2: int
    p3: int
    data: bytes

    @property
    def le(self) -> int:
        """P3 read as Le: 00 asks for 256 bytes (102 221 10.1)."""
        return self.p3 or 256

    def header(self) -> str:
        """The five header bytes in hex: what may be logged (never the data)."""
        return bytes([self.cla, self.ins, self.p1, self.p2, self.p3]).hex(" ").upper()


def _class_family(cla: int) -> tuple[bool, int, bool] | None:
    """(proprietary, logical channel, secure messaging) for a UICC class byte, or None."""
    high = cla >> 4
    if high in (0x0, 0x8):
        return high == 0x8, cla & 0x03, bool(cla & 0x0C)
    if high in (0x4, 0x6, 0xC, 0xE):  # further channels 4-19; b6 set: secure messaging
        return high in (0xC, 0xE), 4 + (cla & 0x0F), high in (0x6, 0xE)
    return None


def parse(raw: bytes) -> Apdu | bytes:
    """The APDU, or the status word that refuses it (framing, class, INS, length)."""
    if len(raw) < HEADER or len(raw) > MAX_APDU:
        return sw.WRONG_LENGTH
    cla, ins, p1, p2, p3 = raw[:HEADER]
    data = bytes(raw[HEADER:])
    family = _class_family(cla)
    if family is None:
        return sw.CLA_NOT_SUPPORTED
    command = COMMANDS.get(ins)
    if command is None:
        return sw.INS_NOT_SUPPORTED
    proprietary, channel, secure = family
    if proprietary != command.proprietary:
        return sw.CLA_NOT_SUPPORTED
    if channel:
        return sw.LOGICAL_CHANNEL_NOT_SUPPORTED
    if secure:
        return sw.SECURE_MESSAGING_NOT_SUPPORTED
    if len(data) != (p3 if command.sends_data else 0):
        return sw.WRONG_LENGTH
    return Apdu(cla, ins, p1, p2, p3, data)

"""The remote-SIM dialect on the AT line: the module asks for the card, the host answers as it.

Pure: lines in, typed values or typed errors out; byte strings in, command lines out. No
I/O, no card: the card is ``agent/usim`` and the wiring is ``agent/modem/rsimhost.py``.

Which dialect
-------------
Fibocom's "Remote SIM Protocol AT Commands Application Note" (V1.0.3, 2015-08-24, for the
G510-Q50-00 and G610-A20-00) names four things, and this module speaks exactly those:

* ``+SIMRESET`` -- the module asks the host to reset the (remote) SIM card;
* ``+SIMDATA: "<hex>"`` -- the module sends data to the SIM card;
* ``AT+SIMDATA="<hex>"`` -- the host sends the SIM card's data to the module (``OK``);
* an enable/disable command for the remote SIM (the note's section 5, added with
  ``AT+GTSET`` in V1.0.1).

Where the note's text could not be read, the details come from a deployed host that
speaks the same dialect (a SIM-bank gateway's client whose strings are
``+SIMDATA: "%s"``, ``+SIMRESET``, ``AT+SIMDATA="9000"``, ``AT+SIMDATA="611b"``, and
answers such as ``c0`` + FCP + ``9000`` to a GET RESPONSE and ``b2`` + record + ``9000``
to a READ RECORD). From those: the data is hexadecimal in double quotes with no length
field, and it is the T=0 exchange itself (ISO/IEC 7816-3 10.3), procedure bytes
included, not bare APDUs: the card's answer to a command that reads is the ACK procedure
byte (the INS) followed by the data and SW1 SW2; to one that only writes, SW1 SW2. What
is *not* confirmed, and is decided here (docs/remote-sim.md says so):

* ``RSIM_ENABLE``'s parameter name: ``AT+GTSET`` is confirmed, ``"RSIM"`` is not;
* that the ATR answers ``+SIMRESET`` through ``AT+SIMDATA``;
* that the module may send a case-3 header alone and wait for the ACK byte before the
  data (real T=0) as well as header and data together: both are accepted here.

Bounds: a command TPDU is at most 5 + 255 bytes (T=0's P3 is one byte); an answer is at
most 1 (ACK) + 256 (Le 00) + 2 (SW) bytes; an ATR at most 33 bytes (ISO/IEC 7816-3 8.2.1).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol

from agent.errors import ModemError

LOGGER = logging.getLogger(__name__)

SIMDATA = "+SIMDATA"
SIMRESET = "+SIMRESET"
URC_NAMES: tuple[str, ...] = (SIMDATA, SIMRESET)
"""What the module sends unsolicited in this dialect."""

RSIM_ENABLE = 'AT+GTSET="RSIM",{on}'
"""Remote SIM on (1) or off (0). Off is the module's "card removed"; on makes it start a
card session with ``+SIMRESET``. The parameter name is not confirmed (module doc)."""

MAX_COMMAND_BYTES = 5 + 255
"""Header CLA INS P1 P2 P3 and at most 255 data bytes: the longest T=0 command."""
MAX_ANSWER_BYTES = 1 + 256 + 2
"""ACK byte, Le 00 (256 bytes) of data, SW1 SW2: the longest T=0 answer."""
MAX_ATR_BYTES = 33
"""ISO/IEC 7816-3 8.2.1: TS and at most 32 further characters."""


class RsimError(ModemError):
    """A remote-SIM line or payload that cannot be used. ``raw`` holds at most the first
    ``RAW_KEPT`` characters: a +SIMDATA line carries RAND/AUTN or RES/CK/IK in part of a
    session, and none of those belong in a log (docs/remote-sim.md, secrets)."""

    RAW_KEPT = 16


class RsimSyntaxError(RsimError):
    """The line is not ``+SIMRESET`` nor ``+SIMDATA: "<hex>"`` (quotes unbalanced, fields
    after the data, nothing after the colon)."""


class RsimHexError(RsimError):
    """The payload is not hexadecimal, or has an odd number of digits."""


class RsimTooLong(RsimError):
    """More bytes than T=0 allows in that direction."""


class RsimOrderError(RsimError):
    """A payload that does not fit the exchange in progress: data with no header waiting
    for it, a header that needs more bytes, or an answer with no command to answer."""


class RsimChannelError(RsimError):
    """A command for a logical channel the link does not carry: the remote SIM is one card
    on the basic channel (its ATR says it has no others)."""


@dataclass(frozen=True)
class SimReset:
    """``+SIMRESET``: the module powers the card up (again); the host answers the ATR."""


@dataclass(frozen=True)
class SimData:
    """``+SIMDATA: "<hex>"``: bytes for the card, the next part of a T=0 exchange."""

    payload: bytes

    def __repr__(self) -> str:  # the payload may hold RAND/AUTN: length only
        return f"SimData(<{len(self.payload)} bytes>)"


RsimEvent = SimReset | SimData

_SIMDATA = re.compile(r'^\+SIMDATA:\s*(?:"([^"]*)"|([0-9A-Fa-f]*))\s*$', re.IGNORECASE)
_SIMRESET = re.compile(r"^\+SIMRESET\s*$", re.IGNORECASE)


def _shown(raw: str) -> str:
    return raw[: RsimError.RAW_KEPT] + ("..." if len(raw) > RsimError.RAW_KEPT else "")


def unhex(text: str, limit: int, what: str) -> bytes:
    """Hex digits to bytes, at most ``limit`` bytes; typed errors naming lengths only."""
    if len(text) % 2:
        raise RsimHexError(f"{what}: odd number of hex digits ({len(text)})", raw=_shown(text))
    if not re.fullmatch(r"[0-9A-Fa-f]*", text):
        raise RsimHexError(f"{what}: not hexadecimal", raw=_shown(text))
    if len(text) // 2 > limit:
        raise RsimTooLong(f"{what}: {len(text) // 2} bytes, at most {limit}", raw=_shown(text))
    return bytes.fromhex(text)


def parse_urc(line: str) -> RsimEvent:
    """One URC line of the dialect -> ``SimReset`` or ``SimData``; ``RsimError`` else."""
    text = line.strip()
    if _SIMRESET.match(text):
        return SimReset()
    found = _SIMDATA.match(text)
    if found is None:
        raise RsimSyntaxError("not a +SIMRESET or +SIMDATA line", raw=_shown(text))
    digits = found.group(1) if found.group(1) is not None else found.group(2)
    if not digits:
        raise RsimSyntaxError("+SIMDATA with no data", raw=_shown(text))
    payload = unhex(digits, MAX_COMMAND_BYTES, "+SIMDATA")
    return SimData(payload)


def answer_command(answer: bytes) -> str:
    """The host's answer -> ``AT+SIMDATA="<HEX>"``. ``RsimTooLong`` beyond T=0's bound;
    ``RsimOrderError`` for nothing at all (the module waits for at least one byte)."""
    if not answer:
        raise RsimOrderError("an empty answer: the module waits for a procedure byte or SW1 SW2")
    if len(answer) > MAX_ANSWER_BYTES:
        raise RsimTooLong(f"answer of {len(answer)} bytes, at most {MAX_ANSWER_BYTES}")
    return f'AT+SIMDATA="{answer.hex().upper()}"'


def parse_answer_command(line: str) -> bytes:
    """The module's side: ``AT+SIMDATA="<hex>"`` -> the bytes (tests and tools read the
    host's lines back with it)."""
    found = re.fullmatch(r'\s*AT\+SIMDATA="([^"]*)"\s*', line, re.IGNORECASE)
    if found is None:
        raise RsimSyntaxError("not an AT+SIMDATA command", raw=_shown(line))
    return unhex(found.group(1), MAX_ANSWER_BYTES, "AT+SIMDATA")


def enable_command(on: bool) -> str:
    """The command that inserts (True) or removes (False) the remote card."""
    return RSIM_ENABLE.format(on=int(on))


class RsimFraming(Protocol):
    """What the host needs of a module family's remote-SIM commands: which URCs to listen
    to, how to read one, how to write the card's answer and the insert/remove command.
    A new family is one class like ``FibocomFraming`` (docs/remote-sim.md)."""

    urc_prefixes: tuple[str, ...]

    def parse_urc(self, line: str) -> RsimEvent: ...

    def answer_command(self, answer: bytes) -> str: ...

    def enable_command(self, on: bool) -> str: ...


class FibocomFraming:
    """Fibocom's remote SIM protocol (this module's doc): the functions above."""

    urc_prefixes: tuple[str, ...] = URC_NAMES

    def parse_urc(self, line: str) -> RsimEvent:
        return parse_urc(line)

    def answer_command(self, answer: bytes) -> str:
        return answer_command(answer)

    def enable_command(self, on: bool) -> str:
        return enable_command(on)


FIBOCOM = FibocomFraming()

"""The host-side USIM: a UICC that answers command APDUs the way a T=0 card does.

``Uicc.transmit(apdu) -> response`` is the one entry point: whatever bytes come in, the
answer is response data (possibly none) followed by a two-byte status word, and no
exception leaves it (a fault inside is answered 6F00 and logged by its type only). The
card holds a profile's files and keys from ``load`` until ``unload``; with none it
answers 6F00 to every well-framed command, since it has no file system to answer from.

T=0 rules kept here: a command that sends data and has data to give back (SELECT with
FCP, AUTHENTICATE) answers 61xx and keeps the data for GET RESPONSE; GET RESPONSE hands
out up to Le bytes (61xx again if more wait, 6Cxx if Le asks for more than there is, the
data kept for the retry); any other command drops what was waiting.

Logging: the five header bytes and the status word at TRACE, refusals of malformed
APDUs and authentication results at DEBUG/INFO; never a data field (it may carry RAND,
AUTN, RES, CK, IK, or keys the terminal writes to EF_KEYS) and never Ki or OPc, which
live only inside ``Milenage``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.logs import TRACE
from agent.sim import SimProfile
from agent.usim import apdu as cmd
from agent.usim import sw
from agent.usim.access import read_binary, read_record, update_binary, update_record
from agent.usim.apdu import Apdu
from agent.usim.atr import ATR
from agent.usim.auth import authenticate
from agent.usim.milenage import Milenage
from agent.usim.select import Reply, Selection, refuse, select, status
from agent.usim.sqn import SqnState
from agent.usim.usimfs import build

LOGGER = logging.getLogger(__name__)

PIN_REFERENCES = frozenset({0x01, 0x81})
"""PIN1 and PIN2 of the USIM: they exist and are disabled (no value is ever set)."""
PIN_LENGTH = 8
"""A PIN block is 8 bytes, 'FF'-padded (102 221 9.5)."""


class _Loaded:
    """What a loaded SIM brings: its files, keys and SQN state."""

    __slots__ = ("iccid", "milenage", "selection", "sqn")

    def __init__(self, profile: SimProfile, sqn: SqnState, spn: str) -> None:
        self.iccid = profile.iccid
        self.milenage = Milenage(profile.ki, profile.opc)
        self.selection = Selection(build(profile, spn))
        self.sqn = sqn


class Uicc:
    """A UICC with one USIM application, or an empty reader slot until ``load``."""

    def __init__(self) -> None:
        self._sim: _Loaded | None = None
        self._pending = b""
        self.terminal_profile = b""
        """The terminal's capabilities from TERMINAL PROFILE (kept, used for nothing:
        this card issues no proactive commands)."""
        self._handlers: dict[int, Callable[[_Loaded, Apdu], Reply]] = {
            cmd.SELECT: lambda s, a: select(s.selection, a),
            cmd.STATUS: lambda s, a: status(s.selection, a),
            cmd.READ_BINARY: lambda s, a: read_binary(s.selection, a),
            cmd.UPDATE_BINARY: lambda s, a: update_binary(s.selection, a),
            cmd.READ_RECORD: lambda s, a: read_record(s.selection, a),
            cmd.UPDATE_RECORD: lambda s, a: update_record(s.selection, a),
            cmd.AUTHENTICATE: self._authenticate,
            cmd.VERIFY: _verify,
            cmd.CHANGE_PIN: _pin_change,
            cmd.DISABLE_PIN: _pin_change,
            cmd.ENABLE_PIN: _pin_change,
            cmd.UNBLOCK_PIN: _pin_change,
            cmd.TERMINAL_PROFILE: self._terminal_profile,
            cmd.MANAGE_CHANNEL: lambda s, a: refuse(sw.LOGICAL_CHANNEL_NOT_SUPPORTED),
        }

    def __repr__(self) -> str:
        held = f"iccid={self._sim.iccid!r}" if self._sim else "empty"
        return f"Uicc({held})"

    __str__ = __repr__

    # --- the SIM in the slot -----------------------------------------------------------
    def load(self, profile: SimProfile, sqn: SqnState | None = None, spn: str = "") -> None:
        """Insert ``profile``'s card: fresh files, its keys, and the SQN state the
        platform carried with it (a new card's all-zero state when there is none)."""
        self._sim = _Loaded(profile, sqn if sqn is not None else SqnState(), spn)
        self.reset()
        LOGGER.info("USIM loaded: iccid %s", profile.iccid)

    def unload(self) -> None:
        self._sim = None
        self.reset()

    def reset(self) -> bytes:
        """A card reset: the MF is current, no application, nothing waits for GET
        RESPONSE. Returns the ATR a reset answers with, or nothing with no SIM (an empty
        reader slot stays silent)."""
        self._pending = b""
        if self._sim is None:
            return b""
        self._sim.selection = Selection(self._sim.selection.files)
        return ATR

    @property
    def loaded(self) -> bool:
        return self._sim is not None

    @property
    def iccid(self) -> str | None:
        """The loaded SIM's ICCID (public: it is on the card in clear), None when empty."""
        return self._sim.iccid if self._sim is not None else None

    @property
    def sqn_state(self) -> SqnState | None:
        """The SQN state to hand back to the platform (it changes with every accepted
        AUTHENTICATE); None with no SIM."""
        return self._sim.sqn if self._sim is not None else None

    # --- the entry point ------------------------------------------------------------------
    def transmit(self, raw: bytes) -> bytes:
        """Answer one command APDU: response data + SW1 SW2. Never raises."""
        try:
            response = self._transmit(bytes(raw))
        except Exception as exc:  # noqa: BLE001 - the card must answer: a fault is 6F00
            LOGGER.error("USIM fault answering an APDU: %s", type(exc).__name__)
            self._pending = b""
            response = sw.TECHNICAL_PROBLEM
        return response

    def _transmit(self, raw: bytes) -> bytes:
        parsed = cmd.parse(raw)
        if isinstance(parsed, bytes):
            LOGGER.debug("USIM refused a malformed APDU (%d bytes, header %s): %s",
                         len(raw), raw[:cmd.HEADER].hex(" ").upper(), parsed.hex().upper())
            self._pending = b""
            return parsed
        if self._sim is None:
            LOGGER.debug("USIM: %s with no SIM loaded", parsed.header())
            return sw.TECHNICAL_PROBLEM
        if parsed.ins == cmd.GET_RESPONSE:
            answer = self._get_response(parsed)
        else:
            self._pending = b""
            reply = self._handlers[parsed.ins](self._sim, parsed)
            answer = self._deliver(parsed, reply)
        LOGGER.log(TRACE, "USIM %s -> %s", parsed.header(), answer[-2:].hex().upper())
        return answer

    def _deliver(self, apdu: Apdu, reply: Reply) -> bytes:
        """Case 4 (data both ways) under T=0: the data waits for GET RESPONSE."""
        if cmd.COMMANDS[apdu.ins].sends_data and reply.data:
            self._pending = reply.data
            return sw.more_data(len(reply.data))
        return reply.data + reply.sw

    def _get_response(self, apdu: Apdu) -> bytes:
        if apdu.p1 or apdu.p2:
            self._pending = b""
            return sw.WRONG_P1P2
        if not self._pending:
            return sw.CONDITIONS_OF_USE
        if apdu.le > len(self._pending):
            return sw.wrong_le(len(self._pending))
        out, self._pending = self._pending[:apdu.le], self._pending[apdu.le:]
        return out + (sw.more_data(len(self._pending)) if self._pending else sw.OK)

    # --- commands that need the card itself ----------------------------------------------
    def _authenticate(self, sim: _Loaded, apdu: Apdu) -> Reply:
        if sim.selection.app is None:
            return refuse(sw.CONDITIONS_OF_USE)
        outcome = authenticate(sim.milenage, sim.sqn, apdu.p1, apdu.p2, apdu.data)
        sim.sqn = outcome.state
        level = logging.DEBUG if outcome.result == "success" else logging.INFO
        LOGGER.log(level, "USIM AUTHENTICATE: %s%s", outcome.result,
                   f" ({outcome.reason})" if outcome.reason else "")
        return Reply(outcome.reply, outcome.sw)

    def _terminal_profile(self, sim: _Loaded, apdu: Apdu) -> Reply:
        self.terminal_profile = apdu.data
        return Reply(b"", sw.OK)


def _verify(sim: _Loaded, apdu: Apdu) -> Reply:
    """VERIFY PIN (102 221 11.1): with no data it asks whether verification is needed:
    PIN1 and PIN2 are disabled, so 9000. A value to verify cannot be checked against a
    PIN that holds none: 6984."""
    if apdu.p1 != 0:
        return refuse(sw.INCORRECT_P1P2)
    if apdu.p2 not in PIN_REFERENCES:
        return refuse(sw.REFERENCED_DATA_NOT_FOUND)
    if not apdu.data:
        return Reply(b"", sw.OK)
    if len(apdu.data) != PIN_LENGTH:
        return refuse(sw.WRONG_LENGTH)
    return refuse(sw.REFERENCE_DATA_NOT_USABLE)


def _pin_change(sim: _Loaded, apdu: Apdu) -> Reply:
    """CHANGE, DISABLE, ENABLE and UNBLOCK PIN: the card's PINs hold no value to change
    (the cloud SIM is never locked), so each is refused as unusable reference data."""
    if apdu.p2 not in PIN_REFERENCES:
        return refuse(sw.REFERENCED_DATA_NOT_FOUND)
    return refuse(sw.REFERENCE_DATA_NOT_USABLE)




"""The T=0 exchange between a module and the host-side card, one transmission at a time.

A remote-SIM module does not hand the host whole APDUs: it tunnels the T=0 byte exchange
of ISO/IEC 7816-3 10.3 (docs/remote-sim.md). For a command that reads (case 1/2) the
module sends the five-byte header and the card answers the ACK procedure byte (the INS)
with the data and SW1 SW2, or SW1 SW2 alone. For a command that sends data (case 3/4) the
module may send the header alone: the card answers the ACK byte, the module sends the P3
data bytes, and the card answers SW1 SW2 (61xx when data waits for GET RESPONSE). A
module that sends header and data together gets SW1 SW2 at once.

``TpduLink`` keeps that state (a header waiting for its data) in front of a ``Uicc``.
Pure and total: every input gets an answer a card could give; what cannot belong to the
exchange in progress is answered as a card would (6700 for a length that does not fit)
and reported through ``last_error`` as a typed ``RsimError`` for the caller to log.
Nothing here logs a data byte: payloads carry RAND, AUTN, RES, CK and IK.
"""

from __future__ import annotations

import logging

from agent.errors import AgentError
from agent.usim import sw
from agent.usim.apdu import COMMANDS, HEADER, MAX_APDU, parse
from agent.usim.card import Uicc

LOGGER = logging.getLogger(__name__)

BASIC_CHANNEL_MASK = 0x03
"""CLA b2-b1 name logical channels 0-3 of the first interindustry class (102 221 10.1.1)."""
FURTHER_CHANNEL_CLASSES = frozenset({0x4, 0x6, 0xC, 0xE})
"""CLA high nibbles of channels 4-19 (102 221 table 10.3)."""


class LinkError(AgentError):
    """Something the module sent that does not fit the exchange: the card answered it as a
    real one would, and this says why, without any data byte."""


class DataOutOfOrder(LinkError):
    """Data whose length is not the waiting header's P3, or fewer than five bytes with no
    header waiting (nothing a card could read as a command)."""


class UnknownChannel(LinkError):
    """A command for a logical channel other than the basic one (the card has none)."""


class TpduLink:
    """The card end of the T=0 tunnel: ``reset()`` -> ATR, ``receive(bytes)`` -> answer."""

    def __init__(self, card: Uicc) -> None:
        self.card = card
        self._header: bytes | None = None
        self.last_error: LinkError | None = None
        """Why the last ``receive`` was answered as a refusal of the framing, or None."""
        self.exchanges = 0

    def reset(self) -> bytes:
        """A card reset (``+SIMRESET``): nothing waits, the ATR (empty with no SIM)."""
        self._header = None
        self.last_error = None
        return self.card.reset()

    def reset_exchange(self) -> None:
        """Forget a header that waits for its data (the transmission after it was lost)."""
        self._header = None

    @property
    def waiting_for_data(self) -> bool:
        return self._header is not None

    def receive(self, payload: bytes) -> bytes:
        """The card's answer to one transmission from the module; never raises."""
        self.last_error = None
        self.exchanges += 1
        if self._header is not None:
            return self._complete(payload)
        if len(payload) < HEADER:
            return self._refuse(DataOutOfOrder(f"{len(payload)} bytes with no command header waiting"))
        if len(payload) > MAX_APDU:
            return self._refuse(DataOutOfOrder(f"{len(payload)} bytes, more than T=0 carries"))
        if _further_channel(payload[0]):
            self.last_error = UnknownChannel(f"CLA {payload[0]:02X} names a logical channel the card lacks")
        if len(payload) == HEADER and _needs_data(payload):
            refused = parse(bytes(payload) + bytes(payload[4]))  # class, INS, channel: data unseen
            if isinstance(refused, bytes):
                return refused  # a card refuses such a header before asking for its data
            self._header = bytes(payload)
            return payload[1:2]  # ACK: the INS, "send the data"
        return self._answer(bytes(payload))

    def _complete(self, data: bytes) -> bytes:
        header, self._header = self._header, None
        assert header is not None
        if len(data) != header[4]:
            return self._refuse(DataOutOfOrder(f"{len(data)} data bytes after a header announcing {header[4]}"))
        return self._answer(header + data)

    def _answer(self, command: bytes) -> bytes:
        response = self.card.transmit(command)
        if len(response) > 2:  # data to the module: ACK byte, the data, SW1 SW2
            return command[1:2] + response
        return response

    def _refuse(self, why: LinkError) -> bytes:
        self._header = None
        self.last_error = why
        return sw.WRONG_LENGTH


def _needs_data(header: bytes) -> bool:
    """Does this header announce data the module has not sent yet (case 3/4, P3 > 0)?
    An INS the card does not know sends none: the card refuses it at once (6D00)."""
    command = COMMANDS.get(header[1])
    return command is not None and command.sends_data and header[4] > 0


def _further_channel(cla: int) -> bool:
    return (cla >> 4) in FURTHER_CHANNEL_CLASSES or ((cla >> 4) in (0x0, 0x8) and bool(cla & BASIC_CHANNEL_MASK))

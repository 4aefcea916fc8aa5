"""Any bytes at the host-side USIM's entry point give a status word a card can give,
never an exception, and leave the card serving (issue 24: every class, INS, P1, P2 and
length). Hypothesis draws APDUs from loaded, empty and mid-session cards; an exhaustive
sweep covers every CLA x INS pair once."""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.usim import sw
from agent.usim.card import Uicc
from agent.usim.select import Reply
from tests.unit.usim_terminal import USIM_AID, Terminal, apdu, loaded_card

NAMED = {value for name, value in vars(sw).items() if name.isupper() and isinstance(value, bytes)}
"""Every fixed status word the card knows (sw.py); 61xx and 6Cxx carry a length."""


def valid(response: bytes) -> bool:
    if len(response) < 2:
        return False
    status, data = response[-2:], response[:-2]
    if status[0] in (sw.MORE_DATA, sw.WRONG_LE):
        return not data  # a procedure word comes alone
    return status in NAMED and (not data or status == sw.OK)


def still_serving(card: Uicc) -> None:
    """After whatever came before, a reset card reads its IMSI as on power-up."""
    card.reset()
    term = Terminal(card)
    assert term.send(apdu("00 A4 04 0C 10") + USIM_AID)[1] == sw.OK
    assert term.send(apdu("00 B0 87 00 09"))[0] == bytes.fromhex("084904010000010010")


headers = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
                    st.integers(0, 255))
known_ins = st.sampled_from([0xA4, 0xF2, 0xB0, 0xD6, 0xB2, 0xDC, 0xC0, 0x88, 0x20, 0x24, 0x10, 0x70])


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    """Mostly well framed (data length = P3 for the card to get past framing), with
    classes and INS biased to the ones the card knows, and some raw noise."""
    cla = draw(st.one_of(st.sampled_from([0x00, 0x80, 0x01, 0x40, 0xA0, 0xC0]), st.integers(0, 255)))
    ins = draw(st.one_of(known_ins, st.integers(0, 255)))
    p1, p2, p3 = draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 255))
    shape = draw(st.sampled_from(["framed", "case2", "short", "long", "noise"]))
    if shape == "framed":
        return bytes([cla, ins, p1, p2, p3]) + draw(st.binary(min_size=p3, max_size=p3))
    if shape == "case2":
        return bytes([cla, ins, p1, p2, p3])
    if shape == "short":
        return draw(st.binary(max_size=4))
    if shape == "long":
        return bytes([cla, ins, p1, p2, p3]) + draw(st.binary(min_size=256, max_size=300))
    return draw(st.binary(max_size=270))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(apdus(), min_size=1, max_size=12), st.booleans())
def test_any_apdu_sequence_gets_a_valid_status_word(commands: list[bytes], in_usim: bool) -> None:
    card = loaded_card()
    if in_usim:
        card.transmit(apdu("00 A4 04 0C 10") + USIM_AID)
    for command in commands:
        response = card.transmit(command)
        assert valid(response), (command.hex(), response.hex())
    still_serving(card)


@settings(max_examples=200, deadline=None)
@given(st.lists(apdus(), min_size=1, max_size=5))
def test_an_empty_slot_answers_too(commands: list[bytes]) -> None:
    card = Uicc()
    for command in commands:
        assert valid(card.transmit(command))


def test_every_class_and_ins() -> None:
    """All 65536 CLA x INS pairs with P1 = P2 = P3 = 0: a valid word each, no fault."""
    card = loaded_card()
    logging.getLogger("agent.usim").setLevel(logging.ERROR)
    try:
        for cla in range(256):
            for ins in range(256):
                response = card.transmit(bytes([cla, ins, 0, 0, 0]))
                assert valid(response), (cla, ins, response.hex())
                assert response != sw.TECHNICAL_PROBLEM, (cla, ins)  # no internal fault
    finally:
        logging.getLogger("agent.usim").setLevel(logging.NOTSET)
    still_serving(card)


def test_a_fault_inside_is_answered_6f00() -> None:
    """The entry point's last fence: a handler that raises still gives a card's answer,
    and the card keeps serving."""
    card = loaded_card()

    def broken(*args: object) -> Reply:
        raise RuntimeError("boom")

    card._handlers[0xF2] = broken  # STATUS breaks; the rest of the card does not
    assert card.transmit(apdu("80 F2 00 0C 00")) == sw.TECHNICAL_PROBLEM
    still_serving(card)

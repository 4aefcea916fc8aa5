"""The remote-SIM dialect's lines (agent/modem/rsim.py): every valid form read, every
hostile one refused with its own typed error, and no payload in an error's text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.modem import rsim
from agent.modem.rsim import (
    RsimError,
    RsimHexError,
    RsimOrderError,
    RsimSyntaxError,
    RsimTooLong,
    SimData,
    SimReset,
)


@pytest.mark.parametrize("line", ["+SIMRESET", "+simreset", "  +SIMRESET  "])
def test_a_reset_request(line: str) -> None:
    assert rsim.parse_urc(line) == SimReset()


@pytest.mark.parametrize(("line", "payload"), [
    ('+SIMDATA: "00A40004023F00"', bytes.fromhex("00A40004023F00")),
    ('+SIMDATA:"00b0000009"', bytes.fromhex("00B0000009")),
    ("+SIMDATA: 00B0000009", bytes.fromhex("00B0000009")),
    ('+simdata: "0088008122"', bytes.fromhex("0088008122")),
])
def test_a_transmission_in_every_spelling(line: str, payload: bytes) -> None:
    assert rsim.parse_urc(line) == SimData(payload)


@pytest.mark.parametrize(("line", "error"), [
    ('+SIMDATA: "00A400040"', RsimHexError),               # odd number of digits
    ('+SIMDATA: "00A4ZZ"', RsimHexError),                  # not hex
    ('+SIMDATA: "' + "00" * 261 + '"', RsimTooLong),      # one byte beyond 5 + 255
    ('+SIMDATA: ""', RsimSyntaxError),                     # nothing to send
    ("+SIMDATA:", RsimSyntaxError),
    ('+SIMDATA: "00A4', RsimSyntaxError),                  # quote never closed
    ('+SIMDATA: "00A4",1', RsimSyntaxError),               # a field the dialect lacks
    ('+SIMDATA: 1,"00A4"', RsimSyntaxError),               # a channel field the dialect lacks
    ("+SIMRESET: 1", RsimSyntaxError),
    ("+SIMDATAX", RsimSyntaxError),
    ("OK", RsimSyntaxError),
])
def test_hostile_lines_are_typed_errors(line: str, error: type[RsimError]) -> None:
    with pytest.raises(error):
        rsim.parse_urc(line)


def test_the_longest_t0_command_is_read() -> None:
    assert len(rsim.parse_urc('+SIMDATA: "' + "AB" * 260 + '"').payload) == 260  # type: ignore[union-attr]


def test_an_error_keeps_only_the_head_of_the_line() -> None:
    """A garbled AUTHENTICATE line holds RAND and AUTN: the error text and ``raw`` keep
    the head of the line and lengths, never the data behind it."""
    secret = "0123456789ABCDEF0123456789ABCDEF"
    with pytest.raises(RsimHexError) as caught:
        rsim.parse_urc(f'+SIMDATA: "0088008122{secret}X"')
    assert secret not in str(caught.value) and secret not in (caught.value.raw or "")
    assert secret[:8] not in (caught.value.raw or "")


def test_a_transmission_prints_its_length_only() -> None:
    assert repr(SimData(b"\x11" * 34)) == "SimData(<34 bytes>)"


@given(st.binary(min_size=1, max_size=rsim.MAX_ANSWER_BYTES))
def test_an_answer_goes_out_and_comes_back(answer: bytes) -> None:
    line = rsim.answer_command(answer)
    assert line.startswith('AT+SIMDATA="') and line.isascii()
    assert rsim.parse_answer_command(line) == answer


def test_answers_beyond_t0_or_empty_are_refused() -> None:
    with pytest.raises(RsimTooLong):
        rsim.answer_command(b"\x00" * (rsim.MAX_ANSWER_BYTES + 1))
    with pytest.raises(RsimOrderError):
        rsim.answer_command(b"")


@given(st.text(max_size=600))
def test_any_text_is_an_event_or_a_typed_error(line: str) -> None:
    try:
        event = rsim.parse_urc(line)
    except RsimError:
        return
    assert isinstance(event, SimReset | SimData)


def test_the_remote_card_is_switched_with_one_command() -> None:
    assert rsim.enable_command(True) == 'AT+GTSET="RSIM",1'
    assert rsim.enable_command(False) == 'AT+GTSET="RSIM",0'

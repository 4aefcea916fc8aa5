"""The T=0 tunnel in front of the card (agent/usim/tpdu.py): the exchanges a remote-SIM
module makes, byte for byte, and every framing it can get wrong."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sim import SimProfile
from agent.usim.atr import ATR
from agent.usim.card import Uicc
from agent.usim.tpdu import DataOutOfOrder, TpduLink, UnknownChannel

PROFILE = SimProfile(iccid="8981100000000000017", imsi="440101234500017", ki=bytes(range(16)),
                     opc=bytes(range(16, 32)), plmn="44010", apn="internet")


def loaded() -> TpduLink:
    card = Uicc()
    card.load(PROFILE)
    link = TpduLink(card)
    assert link.reset() == ATR
    return link


def test_a_case_3_command_is_header_ack_data_sw() -> None:
    link = loaded()
    assert link.receive(bytes.fromhex("00A4000402")) == b"\xa4"  # ACK: send the data
    assert link.waiting_for_data
    answer = link.receive(bytes.fromhex("3F00"))
    assert answer[0] == 0x61 and not link.waiting_for_data      # FCP waits for GET RESPONSE
    fcp = link.receive(bytes([0x00, 0xC0, 0x00, 0x00, answer[1]]))
    assert fcp[0] == 0xC0 and fcp[1] == 0x62 and fcp[-2:] == b"\x90\x00"  # ACK, FCP, 9000


def test_header_and_data_together_get_the_status_word_at_once() -> None:
    link = loaded()
    assert link.receive(bytes.fromhex("00A40004023F00"))[0] == 0x61


def test_a_case_2_read_is_ack_data_sw() -> None:
    link = loaded()
    link.receive(bytes.fromhex("00A4040C10A0000000871002FFFFFFFF8900000100"))
    link.receive(bytes.fromhex("00A4000C026F07"))
    answer = link.receive(bytes.fromhex("00B0000009"))
    assert answer[0] == 0xB0 and answer[-2:] == b"\x90\x00" and len(answer) == 1 + 9 + 2


def test_a_status_word_alone_has_no_ack() -> None:
    link = loaded()
    assert link.receive(bytes.fromhex("00B0000009")) == bytes.fromhex("6986")  # no EF selected


def test_data_of_the_wrong_length_after_a_header_is_6700() -> None:
    link = loaded()
    link.receive(bytes.fromhex("00A4000402"))
    assert link.receive(bytes.fromhex("3F")) == bytes.fromhex("6700")
    assert isinstance(link.last_error, DataOutOfOrder) and not link.waiting_for_data
    assert link.receive(bytes.fromhex("00A40004023F00"))[0] == 0x61  # and the card goes on


def test_bytes_that_are_no_command_are_6700() -> None:
    link = loaded()
    assert link.receive(b"\x3f\x00") == bytes.fromhex("6700")
    assert isinstance(link.last_error, DataOutOfOrder)


def test_a_header_a_card_refuses_is_refused_before_its_data() -> None:
    link = loaded()
    assert link.receive(bytes.fromhex("A0A4000002")) == bytes.fromhex("6E00")  # a 2G SIM's class
    assert not link.waiting_for_data


def test_a_logical_channel_is_refused_and_named() -> None:
    link = loaded()
    assert link.receive(bytes.fromhex("01B0000009")) == bytes.fromhex("6881")
    assert isinstance(link.last_error, UnknownChannel)


def test_a_reset_drops_a_waiting_header() -> None:
    link = loaded()
    link.receive(bytes.fromhex("0088008122"))
    assert link.reset() == ATR and not link.waiting_for_data


def test_an_empty_slot_has_no_atr_and_answers_6f00() -> None:
    link = TpduLink(Uicc())
    assert link.reset() == b""
    assert link.receive(bytes.fromhex("00A40004023F00")) == bytes.fromhex("6F00")


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=0, max_size=300), max_size=8))
def test_any_transmissions_get_an_answer_a_card_gives(payloads: list[bytes]) -> None:
    link = loaded()
    for payload in payloads:
        answer = link.receive(payload)
        assert 1 <= len(answer) <= 1 + 256 + 2
        if len(answer) == 1:  # only an ACK, and only to a header waiting for its data
            assert link.waiting_for_data and answer == payload[1:2]
    assert link.reset() == ATR

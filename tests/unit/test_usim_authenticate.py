"""AUTHENTICATE's outcome, field by field, called as the card calls it (TS 31.102 7.1.2.1,
TS 33.102 6.3.3; issue 29's mutation run on agent/usim/auth.py): the status word, the
reply, the SQN state after it, and the result and reason the card's log line carries.
The TS 35.208 vectors through the whole card are tests/unit/test_usim_milenage.py's."""

from __future__ import annotations

import pytest

from agent.usim import sw
from agent.usim.auth import authenticate
from agent.usim.milenage import Milenage
from agent.usim.sqn import AGE_LIMIT, DELTA, IND_BITS, SLOTS, SqnState

K, OPC = bytes(range(16)), bytes(range(16, 32))
RAND = bytes(range(0x40, 0x50))
AMF = b"\x80\x00"
MILENAGE = Milenage(K, OPC)
TOP = 1000
STATE = SqnState(tuple(TOP if i == 3 else 0 if i == 9 else TOP - 1 for i in range(SLOTS)))
"""SEQ_MS 1000 in slot 3, slot 9 unused, every other slot one below."""


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def command(seq: int, ind: int, *, mac_flip: int = 0) -> bytes:
    sqn = ((seq << IND_BITS) | ind).to_bytes(6, "big")
    mac = bytearray(MILENAGE.f1(RAND, sqn, AMF))
    mac[-1] ^= mac_flip
    autn = xor(sqn, MILENAGE.f2345(RAND).ak) + AMF + bytes(mac)
    return bytes([16]) + RAND + bytes([16]) + autn


def test_a_fresh_vector_gives_res_ck_ik_and_moves_its_slot_only() -> None:
    got = authenticate(MILENAGE, STATE, 0x00, 0x81, command(TOP + 1, 5))
    out = MILENAGE.f2345(RAND)
    assert (got.sw, got.result, got.reason) == (sw.OK, "success", "")
    assert got.reply == b"\xdb" + bytes([len(out.res)]) + out.res + b"\x10" + out.ck + b"\x10" + out.ik
    assert got.state.seq == tuple(TOP + 1 if i == 5 else s for i, s in enumerate(STATE.seq))


@pytest.mark.parametrize(("seq", "ind", "reason", "fresh"), [
    (TOP, 3, "replayed", TOP + 1), (TOP - 1, 4, "replayed", TOP), (TOP + DELTA + 1, 4, "too_far", TOP + DELTA),
    (TOP - AGE_LIMIT, 9, "too_old", TOP - AGE_LIMIT + 1)])
def test_a_stale_vector_gives_auts_with_sqn_ms_and_changes_nothing(seq: int, ind: int, reason: str,
                                                                  fresh: int) -> None:
    """Each refusal one SEQ from the edge, where the next SEQ over is accepted."""
    assert authenticate(MILENAGE, STATE, 0x00, 0x81, command(fresh, ind)).result == "success"
    got = authenticate(MILENAGE, STATE, 0x00, 0x81, command(seq, ind))
    assert (got.sw, got.result, got.reason, got.state) == (sw.OK, "sync_failure", reason, STATE)
    assert got.reply[:2] == b"\xdc\x0e"
    sqn_ms = xor(got.reply[2:8], MILENAGE.f2345(RAND).ak_star)
    assert sqn_ms == ((TOP << IND_BITS) | 3).to_bytes(6, "big")
    assert got.reply[8:] == MILENAGE.f1_star(RAND, sqn_ms, b"\x00\x00")


def test_a_wrong_mac_is_9862_with_no_data_and_no_change() -> None:
    got = authenticate(MILENAGE, STATE, 0x00, 0x81, command(TOP + 1, 5, mac_flip=1))
    assert (got.reply, got.sw, got.result, got.state) == (b"", sw.AUTH_MAC_FAILURE, "mac_failure", STATE)


GOOD = command(TOP + 1, 5)


@pytest.mark.parametrize(("p1", "p2", "data", "status"), [
    (0x01, 0x81, GOOD, sw.INCORRECT_P1P2),
    (0x00, 0x01, GOOD, sw.INCORRECT_P1P2),             # b8 clear: no usable key named
    (0x00, 0x80, GOOD, sw.AUTH_CONTEXT_NOT_SUPPORTED),  # the GSM context
    (0x00, 0x82, GOOD, sw.AUTH_CONTEXT_NOT_SUPPORTED),  # VGCS/VBS and the others
    (0x00, 0x81, GOOD[:-1], sw.WRONG_LENGTH),
    (0x00, 0x81, GOOD + b"\x00", sw.WRONG_LENGTH),
    (0x00, 0x81, b"\x0f" + GOOD[1:], sw.WRONG_DATA),
    (0x00, 0x81, GOOD[:17] + b"\x11" + GOOD[18:], sw.WRONG_DATA),
])
def test_a_malformed_command_is_refused_with_its_status_word(p1: int, p2: int, data: bytes, status: bytes) -> None:
    got = authenticate(MILENAGE, STATE, p1, p2, data)
    assert (got.reply, got.sw, got.result, got.state) == (b"", status, "refused", STATE)


def test_the_outcome_shows_no_value_of_the_exchange() -> None:
    got = authenticate(MILENAGE, STATE, 0x00, 0x81, GOOD)
    assert repr(got) == "AuthOutcome(result='success', reason='', sw=9000)"

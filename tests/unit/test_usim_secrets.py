"""Ki and OPc never leave the host-side USIM: not in a repr, a str, an exception's text or
a log line at any level, TRACE included, through a whole session with good and bad input.
The session's own values (RAND, AUTN, RES, CK, IK, AUTS) stay out of the logs too: the
card logs headers and status words, never a data field."""

from __future__ import annotations

import traceback

import pytest

from agent.logs import TRACE
from agent.sim import SimProfile
from agent.usim.auth import authenticate
from agent.usim.card import Uicc
from agent.usim.milenage import Milenage
from agent.usim.sqn import SqnState, SqnStateError
from tests.unit.usim_terminal import KI, OPC, PROFILE, USIM_AID, Terminal, apdu

RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")


def forms(value: bytes) -> list[str]:
    return [value.hex(), value.hex().upper(), value.hex(" "), value.hex(" ").upper(), repr(value)]


def shows(text: str, *values: bytes) -> bool:
    return any(form in text for value in values for form in forms(value))


def autn_for(m: Milenage, sqn: bytes) -> bytes:
    out = m.f2345(RAND)
    return bytes(a ^ b for a, b in zip(sqn, out.ak, strict=True)) + b"\x80\x00" + m.f1(RAND, sqn, b"\x80\x00")


def test_reprs_hold_no_key() -> None:
    m = Milenage(KI, OPC)
    card = Uicc()
    card.load(PROFILE)
    outcome = authenticate(m, SqnState(), 0, 0x81, b"\x10" + RAND + b"\x10" + autn_for(m, bytes(6)))
    for thing in (m, card, m.f2345(RAND), outcome, PROFILE):
        assert not shows(repr(thing) + str(thing), KI, OPC)
    assert not shows(repr(m.f2345(RAND)), m.f2345(RAND).ck, m.f2345(RAND).ik)


@pytest.mark.parametrize("k,opc", [(KI[:15], OPC), (KI, OPC + b"\x00"), (KI + KI, OPC)])
def test_wrong_key_lengths_name_lengths_only(k: bytes, opc: bytes) -> None:
    with pytest.raises(ValueError) as caught:
        Milenage(k, opc)
    text = str(caught.value) + repr(caught.value) + "".join(traceback.format_exception(caught.value))
    assert not shows(text, KI, OPC, k, opc)


def test_a_whole_session_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(TRACE, logger="agent.usim")
    card = Uicc()
    term = Terminal(card)
    term.raw(apdu("00 A4 00 04 02 3F00"))  # before any SIM
    card.load(PROFILE, sqn=SqnState((10,) * 32))
    m = Milenage(KI, OPC)
    good = autn_for(m, ((11 << 5) | 1).to_bytes(6, "big"))
    stale = autn_for(m, ((3 << 5) | 2).to_bytes(6, "big"))
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    keys = b"\x01" + bytes(range(32))
    term.send(apdu("00 A4 04 04 10") + USIM_AID)
    results = [term.send(apdu("00 88 00 81 22 10") + RAND + b"\x10" + autn) for autn in (good, stale, bad)]
    assert [r[0][:1] for r in results] == [b"\xdb", b"\xdc", b""] and results[2][1] == b"\x98\x62"
    term.select(0x6F08)
    term.raw(apdu("00 D6 00 00 21") + keys)
    for noise in (b"\x00\x88", b"\x00" * 300, apdu("00 88 00 81 05") + KI[:5], apdu("00 20 00 01 08") + OPC[:8]):
        term.raw(noise)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "AUTHENTICATE: success" in text and "sync_failure" in text and "mac_failure" in text
    out = m.f2345(RAND)
    secrets = (KI, OPC, RAND, good, stale, out.res, out.ck, out.ik, out.ak, out.ak_star, keys[1:],
               results[1][0][2:])
    assert not shows(text, *secrets)
    assert not any(shows(repr(r.args), *secrets) for r in caplog.records)


def test_sqn_state_errors_name_the_field_only() -> None:
    with pytest.raises(SqnStateError) as caught:
        SqnState.from_dict({"version": 1, "ind_bits": 5, "seq": [int.from_bytes(KI, "big")] + [0] * 31})
    assert str(int.from_bytes(KI, "big")) not in str(caught.value) and not shows(str(caught.value), KI)


def test_a_profile_with_short_keys_never_reaches_the_card() -> None:
    with pytest.raises(ValueError) as caught:
        SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=KI[:8], opc=OPC, plmn="44010")
    assert not shows(str(caught.value), KI[:8], OPC)

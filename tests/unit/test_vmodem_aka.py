"""The lab carrier's side of AKA (board/virtual/modem/milenage.py, auc.py): f1, f1* and
f5* against TS 35.208's test sets, and the AuC's vectors, resynchronisation and RES check.
Written apart from the agent's USIM: the two agree only through the standard."""

from __future__ import annotations

import pytest

from board.virtual.modem import milenage
from board.virtual.modem.auc import AMF_EPS, Auc
from tests.unit.test_usim_milenage import IDS, SETS, Vector


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_f1_f1_star_and_f5_star_of_ts_35_208(ts: Vector) -> None:
    k, opc, rand = bytes.fromhex(ts.k), bytes.fromhex(ts.opc), bytes.fromhex(ts.rand)
    mac_a, mac_s = milenage.f1_both(k, opc, rand, bytes.fromhex(ts.sqn), bytes.fromhex(ts.amf))
    assert (mac_a.hex(), mac_s.hex()) == (ts.f1, ts.f1_star)
    assert milenage.f5_star(k, opc, rand).hex() == ts.f5_star
    res, ck, ik, ak = milenage.f2345(k, opc, rand)
    assert (res.hex(), ck.hex(), ik.hex(), ak.hex()) == (ts.f2, ts.f3, ts.f4, ts.f5)


KI, OPC = bytes.fromhex(SETS[0].k), bytes.fromhex(SETS[0].opc)
IMSI = "440101234500017"


def auc() -> Auc:
    return Auc({IMSI: (KI, OPC)}.get)


def test_a_vector_carries_sqn_concealed_and_a_mac_over_it() -> None:
    centre = auc()
    vector = centre.vector(IMSI)
    assert vector is not None
    res, _, _, ak = milenage.f2345(KI, OPC, vector.rand)
    sqn = bytes(x ^ y for x, y in zip(vector.autn[:6], ak, strict=True))
    assert vector.autn[6:8] == AMF_EPS
    assert milenage.f1_both(KI, OPC, vector.rand, sqn, AMF_EPS)[0] == vector.autn[8:]
    assert vector.xres == res
    assert centre.vector("440109999999999") is None


def test_sequence_numbers_rise_through_the_index_slots() -> None:
    centre = auc()
    first, second = centre.sqn_of(IMSI), None
    centre.vector(IMSI)
    second = centre.sqn_of(IMSI)
    assert second > first and (second >> 5) > (first >> 5)


def test_res_is_checked_once() -> None:
    centre = auc()
    vector = centre.vector(IMSI)
    assert vector is not None
    assert not centre.confirm(IMSI, vector.rand, bytes(8))
    vector = centre.vector(IMSI)
    assert vector is not None
    assert centre.confirm(IMSI, vector.rand, vector.xres)
    assert centre.take_authenticated(IMSI) and not centre.take_authenticated(IMSI)


def test_a_valid_auts_moves_the_sqn_above_the_cards_and_a_forged_one_does_not() -> None:
    centre = auc()
    vector = centre.vector(IMSI)
    assert vector is not None
    sqn_ms = (1000 << 5 | 3).to_bytes(6, "big")
    mac_s = milenage.f1_both(KI, OPC, vector.rand, sqn_ms, bytes(2))[1]
    concealed = bytes(x ^ y for x, y in zip(sqn_ms, milenage.f5_star(KI, OPC, vector.rand), strict=True))
    assert not centre.resync(IMSI, vector.rand, concealed + bytes(8))
    assert centre.sqn_of(IMSI) < 1000 << 5
    assert centre.resync(IMSI, vector.rand, concealed + mac_s)
    assert centre.sqn_of(IMSI) >> 5 >= 1000

"""The agent's MILENAGE against 3GPP TS 35.208 test sets 1-6, function by function, and
the same sets through the host-side USIM's AUTHENTICATE (TS 31.102 7.1.2.1): RES, CK and
IK on success, AUTS on a sequence failure, 9862 on a wrong MAC."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agent.sim import SimProfile
from agent.usim.card import Uicc
from agent.usim.milenage import Milenage, opc_from_op
from agent.usim.sqn import IND_BITS, SLOTS, SqnState
from tests.unit.usim_terminal import USIM_AID, Terminal, apdu


@dataclass(frozen=True)
class Vector:
    k: str
    rand: str
    sqn: str
    amf: str
    op: str
    opc: str
    f1: str
    f1_star: str
    f2: str
    f5: str
    f3: str
    f4: str
    f5_star: str


SETS = [  # TS 35.208 section 4.3 (test sets 1 to 6), in the document's column order
    Vector("465b5ce8b199b49faa5f0a2ee238a6bc", "23553cbe9637a89d218ae64dae47bf35", "ff9bb4d0b607", "b9b9",
            "cdc202d5123e20f62b6d676ac72cb318", "cd63cb71954a9f4e48a5994e37a02baf", "4a9ffac354dfafb3",
            "01cfaf9ec4e871e9", "a54211d5e3ba50bf", "aa689c648370", "b40ba9a3c58b2a05bbf0d987b21bf8cb",
            "f769bcd751044604127672711c6d3441", "451e8beca43b"),
    Vector("fec86ba6eb707ed08905757b1bb44b8f", "9f7c8d021accf4db213ccff0c7f71a6a", "9d0277595ffc", "725c",
            "dbc59adcb6f9a0ef735477b7fadf8374", "1006020f0a478bf6b699f15c062e42b3", "9cabc3e99baf7281",
            "95814ba2b3044324", "8011c48c0c214ed2", "33484dc2136b", "5dbdbb2954e8f3cde665b046179a5098",
            "59a92d3b476a0443487055cf88b2307b", "deacdd848cc6"),
    Vector("9e5944aea94b81165c82fbf9f32db751", "ce83dbc54ac0274a157c17f80d017bd6", "0b604a81eca8", "9e09",
            "223014c5806694c007ca1eeef57f004f", "a64a507ae1a2a98bb88eb4210135dc87", "74a58220cba84c49",
            "ac2cc74a96871837", "f365cd683cd92e96", "f0b9c08ad02e", "e203edb3971574f5a94b0d61b816345d",
            "0c4524adeac041c4dd830d20854fc46b", "6085a86c6f63"),
    Vector("4ab1deb05ca6ceb051fc98e77d026a84", "74b0cd6031a1c8339b2b6ce2b8c4a186", "e880a1b580b6", "9f07",
            "2d16c5cd1fdf6b22383584e3bef2a8d8", "dcf07cbd51855290b92a07a9891e523e", "49e785dd12626ef2",
            "9e85790336bb3fa2", "5860fc1bce351e7e", "31e11a609118", "7657766b373d1c2138f307e3de9242f9",
            "1c42e960d89b8fa99f2744e0708ccb53", "fe2555e54aa9"),
    Vector("6c38a116ac280c454f59332ee35c8c4f", "ee6466bc96202c5a557abbeff8babf63", "414b98222181", "4464",
            "1ba00a1a7c6700ac8c3ff3e96ad08725", "3803ef5363b947c6aaa225e58fae3934", "078adfb488241a57",
            "80246b8d0186bcf1", "16c8233f05a0ac28", "45b0f69ab06c", "3f8c7587fe8e4b233af676aede30ba3b",
            "a7466cc1e6b2a1337d49d3b66e95d7b4", "1f53cd2b1113"),
    Vector("2d609d4db0ac5bf0d2c0de267014de0d", "194aa756013896b74b4a2a3b0af4539e", "6bf69438c2e4", "5f67",
            "460a48385427aa39264aac8efc9e73e8", "c35a0ab0bcbfc9252caff15f24efbde0", "bd07d3003b9e5cc3",
            "bcb6c2fcad152250", "8c25a16cd918a1df", "7e6455f34cf3", "4cd0846020f8fa0731dd47cbdc6be411",
            "88ab80a415f15c73711254a1d388f696", "dc6dd01e8f15"),
]
IDS = [f"set{i}" for i in range(1, len(SETS) + 1)]


def b(text: str) -> bytes:
    return bytes.fromhex(text)


def xor(x: bytes, y: bytes) -> bytes:
    return bytes(p ^ q for p, q in zip(x, y, strict=True))


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_opc_from_op(ts: Vector) -> None:
    assert opc_from_op(b(ts.k), b(ts.op)).hex() == ts.opc


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_each_function(ts: Vector) -> None:
    m = Milenage(b(ts.k), b(ts.opc))
    rand, sqn, amf = b(ts.rand), b(ts.sqn), b(ts.amf)
    out = m.f2345(rand)
    assert m.f1(rand, sqn, amf).hex() == ts.f1
    assert m.f1_star(rand, sqn, amf).hex() == ts.f1_star
    assert (out.res.hex(), out.ck.hex(), out.ik.hex(), out.ak.hex(), out.ak_star.hex()) == \
        (ts.f2, ts.f3, ts.f4, ts.f5, ts.f5_star)


def card_for(ts: Vector, state: SqnState) -> Terminal:
    """A card holding the test set's K and OPc, its USIM selected, with ``state``."""
    card = Uicc()
    card.load(SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=b(ts.k),
                         opc=b(ts.opc), plmn="44010"), sqn=state)
    term = Terminal(card)
    assert term.send(apdu("00 A4 04 0C 10") + USIM_AID) == (b"", b"\x90\x00")
    return term


def autn(ts: Vector) -> bytes:
    return xor(b(ts.sqn), b(ts.f5)) + b(ts.amf) + b(ts.f1)


def auth_apdu(rand: bytes, autn_: bytes) -> bytes:
    return apdu("00 88 00 81 22 10") + rand + b"\x10" + autn_


def state_just_below(sqn: int) -> SqnState:
    """Every slot one SEQ below the vector's: its SQN is the next fresh one."""
    return SqnState((max((sqn >> IND_BITS) - 1, 0),) * SLOTS)


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_authenticate_returns_res_ck_ik(ts: Vector) -> None:
    sqn = int(ts.sqn, 16)
    term = card_for(ts, state_just_below(sqn))
    first = term.raw(auth_apdu(b(ts.rand), autn(ts)))
    assert first == b"\x61\x2c"  # 44 bytes wait: DB 08 RES 10 CK 10 IK
    data = term.raw(apdu("00 C0 00 00 2C"))
    assert data == b"\xdb\x08" + b(ts.f2) + b"\x10" + b(ts.f3) + b"\x10" + b(ts.f4) + b"\x90\x00"
    assert term.card.sqn_state is not None
    assert term.card.sqn_state.seq[sqn & (SLOTS - 1)] == sqn >> IND_BITS


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_replayed_vector_gives_auts_the_network_can_open(ts: Vector) -> None:
    sqn = int(ts.sqn, 16)
    term = card_for(ts, state_just_below(sqn))
    assert term.send(auth_apdu(b(ts.rand), autn(ts)))[1] == b"\x90\x00"
    after = term.card.sqn_state
    data, status = term.send(auth_apdu(b(ts.rand), autn(ts)))  # the same vector again
    assert status == b"\x90\x00" and data[:2] == b"\xdc\x0e" and len(data) == 16
    auts = data[2:]
    sqn_ms = xor(auts[:6], b(ts.f5_star))  # what the AuC does with AUTS (TS 33.102 6.3.5)
    assert int.from_bytes(sqn_ms, "big") == sqn  # the highest accepted: this very vector
    mac_s = Milenage(b(ts.k), b(ts.opc)).f1_star(b(ts.rand), sqn_ms, b"\x00\x00")
    assert auts[6:] == mac_s
    assert term.card.sqn_state == after  # a refusal changes nothing


@pytest.mark.parametrize("ts", SETS, ids=IDS)
def test_a_wrong_mac_is_9862_and_changes_nothing(ts: Vector) -> None:
    sqn = int(ts.sqn, 16)
    before = state_just_below(sqn)
    term = card_for(ts, before)
    bad = bytearray(autn(ts))
    bad[-1] ^= 0x01
    assert term.raw(auth_apdu(b(ts.rand), bytes(bad))) == b"\x98\x62"
    assert term.card.sqn_state == before


def test_a_new_card_resynchronises_a_far_sqn_then_accepts() -> None:
    """A new card (all-zero state) meets test set 1's SQN, 2^42 ahead: too far (Delta), so
    AUTS; the AuC continues above SQN_MS and the next vector is accepted."""
    ts = SETS[0]
    term = card_for(ts, SqnState())
    data, status = term.send(auth_apdu(b(ts.rand), autn(ts)))
    assert status == b"\x90\x00" and data[:2] == b"\xdc\x0e"
    sqn_ms = int.from_bytes(xor(data[2:8], b(ts.f5_star)), "big")
    assert sqn_ms == 0
    m = Milenage(b(ts.k), b(ts.opc))
    rand = bytes(range(16))
    next_sqn = (sqn_ms + SLOTS + 3).to_bytes(6, "big")  # SEQ+1, IND 3: the AuC's next vector
    out = m.f2345(rand)
    fresh = xor(next_sqn, out.ak) + b"\x80\x00" + m.f1(rand, next_sqn, b"\x80\x00")
    data, status = term.send(auth_apdu(rand, fresh))
    assert status == b"\x90\x00" and data == b"\xdb\x08" + out.res + b"\x10" + out.ck + b"\x10" + out.ik

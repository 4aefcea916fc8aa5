"""Milenage against 3GPP TS 35.208 test set 1 (the carrier's attach check rests on it)."""

from board.virtual.modem.milenage import f2345, opc_from_op, res

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
OP = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def test_opc_derivation_matches_test_set_1() -> None:
    assert opc_from_op(K, OP) == OPC


def test_f2_to_f5_match_test_set_1() -> None:
    r, ck, ik, ak = f2345(K, OPC, RAND)
    assert r.hex() == "a54211d5e3ba50bf"
    assert ck.hex() == "b40ba9a3c58b2a05bbf0d987b21bf8cb"
    assert ik.hex() == "f769bcd751044604127672711c6d3441"
    assert ak.hex() == "aa689c648370"


def test_a_single_flipped_key_bit_changes_res() -> None:
    bad = bytes([K[0] ^ 1]) + K[1:]
    assert res(bad, OPC, RAND) != res(K, OPC, RAND)

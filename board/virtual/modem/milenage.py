"""3GPP Milenage (TS 35.206) f1-f5 and f1*/f5*: what the virtual carrier uses to authenticate a SIM.

The carrier's HSS computes the expected response XRES from the Ki/OPc it holds for an
IMSI; the virtual modem computes RES from the Ki/OPc *loaded in its vSIM slot*. They
match only if the profile reached the modem intact, so a corrupted or forged profile
fails to attach exactly as it would on a real network. Only AES-128 is needed
(``cryptography``'s AES in ECB mode on one block is the Rijndael E_K of the spec).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
R1, R2, R3, R4, R5 = 8, 0, 4, 8, 12
"""Rotation constants r1..r5 in bytes (TS 35.206 §4.1: 64, 0, 32, 64, 96 bits)."""
C1, C2, C3, C4, C5 = 0, 1, 2, 4, 8
"""Constants c1..c5: 128-bit values whose last byte is 0, 1, 2, 4, 8 (TS 35.206 §4.1)."""


def _aes(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # one AES block is the spec's E_K
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, r: int) -> bytes:
    return x[r:] + x[:r]


def _const(c: int) -> bytes:
    return bytes(BLOCK - 1) + bytes([c])


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP): operators store OPc per SIM so OP itself is never on a card."""
    return _xor(op, _aes(k, op))


def f2345(k: bytes, opc: bytes, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Return (RES, CK, IK, AK) for one challenge RAND."""
    if len(k) != BLOCK or len(opc) != BLOCK or len(rand) != BLOCK:
        raise ValueError("Milenage needs 16-byte K, OPc and RAND")
    temp = _aes(k, _xor(rand, opc))
    def out(r: int, c: int) -> bytes:
        return _xor(_aes(k, _xor(_rot(_xor(temp, opc), r), _const(c))), opc)
    out2 = out(R2, C2)
    return out2[8:16], out(R3, C3), out(R4, C4), out2[0:6]


def res(k: bytes, opc: bytes, rand: bytes) -> bytes:
    """RES (f2), the 8-byte answer a SIM gives to the network's challenge."""
    return f2345(k, opc, rand)[0]


def f1_both(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> tuple[bytes, bytes]:
    """(MAC-A, MAC-S): f1 and f1* of TS 35.206 §4.1, one OUT1 block for both."""
    if len(sqn) != 6 or len(amf) != 2:
        raise ValueError("Milenage f1 needs a 6-byte SQN and a 2-byte AMF")
    temp = _aes(k, _xor(rand, opc))
    in1 = (sqn + amf) * 2
    out1 = _xor(_aes(k, _xor(_xor(temp, _rot(_xor(in1, opc), R1)), _const(C1))), opc)
    return out1[:8], out1[8:]


def f5_star(k: bytes, opc: bytes, rand: bytes) -> bytes:
    """AK* (f5*): conceals SQN_MS in AUTS (TS 33.102 §6.3.3)."""
    temp = _aes(k, _xor(rand, opc))
    return _xor(_aes(k, _xor(_rot(_xor(temp, opc), R5), _const(C5))), opc)[:6]

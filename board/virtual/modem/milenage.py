"""3GPP Milenage (TS 35.206) f2-f5: what the virtual carrier uses to authenticate a SIM.

The carrier's HSS computes the expected response XRES from the Ki/OPc it holds for an
IMSI; the virtual modem computes RES from the Ki/OPc *loaded in its vSIM slot*. They
match only if the profile reached the modem intact, so a corrupted or forged profile
fails to attach exactly as it would on a real network. Only AES-128 is needed
(``cryptography``'s AES in ECB mode on one block is the Rijndael E_K of the spec).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
R2, R3, R4, R5 = 0, 4, 8, 12
"""Rotation constants r2..r5 in bytes (TS 35.206 §4.1: 0, 32, 64, 96 bits)."""
C2, C3, C4, C5 = 1, 2, 4, 8
"""Constants c2..c5: 128-bit values whose last byte is 1, 2, 4, 8 (TS 35.206 §4.1)."""


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

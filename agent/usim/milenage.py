"""MILENAGE (3GPP TS 35.206): the algorithm set the host-side USIM authenticates with.

The card's side of 3G/EPS authentication needs all seven functions: f1 (MAC-A, to check
the network's AUTN), f1* (MAC-S, to sign a resynchronisation), f2 (RES), f3 (CK), f4 (IK),
f5 (AK, to unmask the SQN in AUTN) and f5* (AK*, to mask SQN_MS in AUTS). This is the
agent's own implementation, written from TS 35.206 section 4 and checked against the test
sets of TS 35.208 (tests/unit/test_usim_milenage.py); the lab carrier has its own,
independent one, so the two meet only through the standard.

E_K is one block of AES-128 (Rijndael with a 128-bit block and key), which
``cryptography``'s AES in ECB mode over a single 16-byte block computes, in 38.0.4 as today.

Keys never appear in an error: a wrong length is reported by its number only.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
"""K, OPc, RAND and every intermediate value are 128 bits (TS 35.206 section 3)."""
SQN_LEN = 6
"""SQN and AK are 48 bits (TS 33.102 6.3)."""
AMF_LEN = 2
"""AMF is 16 bits (TS 33.102 6.3)."""

ROT = {1: 8, 2: 0, 3: 4, 4: 8, 5: 12}
"""r1..r5 in bytes: 64, 0, 32, 64, 96 bits (TS 35.206 4.1, the default constants)."""
CONST = {1: 0, 2: 1, 3: 2, 4: 4, 5: 8}
"""c1..c5: 128-bit values that are zero but for the last byte, 0, 1, 2, 4, 8 (TS 35.206 4.1)."""


def _aes(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # one AES block is the spec's E_K
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, r: int) -> bytes:
    """Cyclic left rotation by r bytes (the spec's rot(x, r) with r a multiple of 8 bits)."""
    return x[r:] + x[:r]


def _c(i: int) -> bytes:
    return bytes(BLOCK - 1) + bytes([CONST[i]])


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        # the length only: the value may be a key
        raise ValueError(f"MILENAGE: {name} must be {length} bytes, got {len(value)}")


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc = OP xor E_K(OP) (TS 35.206 4.1): operators provision OPc so OP stays at home."""
    _check("K", k, BLOCK)
    _check("OP", op, BLOCK)
    return _xor(op, _aes(k, op))


@dataclass(frozen=True)
class Vectors:
    """The outputs of f2..f5 and f5* for one RAND: what the card derives from a challenge.

    ``repr`` shows lengths only; CK and IK are session keys."""

    res: bytes
    ck: bytes
    ik: bytes
    ak: bytes
    ak_star: bytes

    def __repr__(self) -> str:
        return "Vectors(<redacted>)"


class Milenage:
    """MILENAGE bound to one subscriber's K and OPc (both 16 bytes).

    The object holds the keys and nothing prints them: ``repr`` names the class only.
    """

    __slots__ = ("_k", "_opc")

    def __init__(self, k: bytes, opc: bytes) -> None:
        _check("K", k, BLOCK)
        _check("OPc", opc, BLOCK)
        self._k = bytes(k)
        self._opc = bytes(opc)

    def __repr__(self) -> str:
        return "Milenage(k=<redacted>, opc=<redacted>)"

    __str__ = __repr__

    def _temp(self, rand: bytes) -> bytes:
        _check("RAND", rand, BLOCK)
        return _aes(self._k, _xor(rand, self._opc))

    def _out(self, temp: bytes, i: int) -> bytes:
        """OUTi for i in 2..5: E_K(rot(TEMP xor OPc, ri) xor ci) xor OPc."""
        return _xor(_aes(self._k, _xor(_rot(_xor(temp, self._opc), ROT[i]), _c(i))), self._opc)

    def _out1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc, IN1 = SQN||AMF||SQN||AMF."""
        _check("SQN", sqn, SQN_LEN)
        _check("AMF", amf, AMF_LEN)
        temp = self._temp(rand)
        in1 = (sqn + amf) * 2
        return _xor(_aes(self._k, _xor(_xor(temp, _rot(_xor(in1, self._opc), ROT[1])), _c(1))), self._opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-A: the network's signature over SQN and AMF, carried in AUTN."""
        return self._out1(rand, sqn, amf)[:8]

    def f1_star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-S: the card's signature over SQN_MS in AUTS (AMF is then all zeros)."""
        return self._out1(rand, sqn, amf)[8:]

    def f2345(self, rand: bytes) -> Vectors:
        """RES (f2), CK (f3), IK (f4), AK (f5) and AK* (f5*) for one RAND."""
        temp = self._temp(rand)
        out2 = self._out(temp, 2)
        return Vectors(res=out2[8:], ck=self._out(temp, 3), ik=self._out(temp, 4),
                       ak=out2[:6], ak_star=self._out(temp, 5)[:6])

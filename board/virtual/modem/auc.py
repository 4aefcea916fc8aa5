"""The lab carrier's authentication centre: EPS AKA vectors, resynchronisation, the RES check.

A remote-SIM module holds no key: it passes the network's RAND and AUTN to the card the
host serves and hands the card's RES back. So the carrier needs what a real HSS/AuC has:
a vector per attach (RAND, AUTN = SQN xor AK || AMF || MAC-A, XRES) from the subscriber's
Ki/OPc (``milenage.py``, written apart from the agent's USIM), a sequence number that
only moves forward, and the resynchronisation of TS 33.102 6.3.5 when the card answers
AUTS. ``Auc`` is that; ``AkaCarrier`` is a ``NullCarrier`` that admits only a subscriber
the AuC has just authenticated (tests; the lab carrier holds an ``Auc`` of its own).

SQN = SEQ || IND with a 5-bit IND (TS 33.102 C.3.2, the array the card keeps): every
vector takes the next SEQ and the next IND slot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from board.virtual.modem import milenage
from board.virtual.modem.model import NullCarrier

LOGGER = logging.getLogger(__name__)

IND_BITS = 5
"""IND length: 32 slots, as the card's array (agent/usim/sqn.py says why 5)."""
AMF_EPS = bytes.fromhex("8000")
"""AMF with the separation bit (bit 0) set: an E-UTRAN vector (TS 33.401 6.1.1)."""
AMF_RESYNC = bytes(2)
"""MAC-S in AUTS is computed over a dummy AMF of all zeros (TS 33.102 6.3.3)."""
VECTORS_KEPT = 4
"""Outstanding vectors kept per subscriber: an MME holds a batch of a few (1-5)."""

EMM_ILLEGAL_UE = 3
"""EMM cause #3: authentication failed (TS 24.301 annex A)."""

KeyLookup = Callable[[str], tuple[bytes, bytes] | None]


@dataclass(frozen=True)
class AuthVector:
    """What the network sends (RAND, AUTN) and what it expects back (XRES)."""

    rand: bytes
    autn: bytes
    xres: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "AuthVector(<rand>, <autn>, <xres>)"


@dataclass
class _Subscriber:
    seq: int = 0
    ind: int = 0
    outstanding: dict[bytes, bytes] = field(default_factory=dict)


class Auc:
    """Vectors for the subscribers whose keys ``keys(imsi)`` returns (Ki, OPc)."""

    def __init__(self, keys: KeyLookup) -> None:
        self._keys = keys
        self._subs: dict[str, _Subscriber] = {}
        self._authenticated: set[str] = set()

    def _sub(self, imsi: str) -> _Subscriber:
        return self._subs.setdefault(imsi, _Subscriber())

    def sqn_of(self, imsi: str) -> int:
        """The SQN of the last vector issued (0 before any)."""
        sub = self._sub(imsi)
        return sub.seq << IND_BITS | sub.ind

    def vector(self, imsi: str) -> AuthVector | None:
        """A fresh vector, or None for an IMSI the carrier does not know."""
        keys = self._keys(imsi)
        if keys is None:
            return None
        ki, opc = keys
        sub = self._sub(imsi)
        sub.seq += 1
        sub.ind = (sub.ind + 1) % (1 << IND_BITS)
        sqn = (sub.seq << IND_BITS | sub.ind).to_bytes(6, "big")
        rand = os.urandom(16)
        res, _, _, ak = milenage.f2345(ki, opc, rand)
        mac_a, _ = milenage.f1_both(ki, opc, rand, sqn, AMF_EPS)
        autn = bytes(x ^ y for x, y in zip(sqn, ak, strict=True)) + AMF_EPS + mac_a
        sub.outstanding[rand] = res
        while len(sub.outstanding) > VECTORS_KEPT:
            sub.outstanding.pop(next(iter(sub.outstanding)))
        return AuthVector(rand, autn, res)

    def confirm(self, imsi: str, rand: bytes, res: bytes) -> bool:
        """The UE's RES for the vector of ``rand``: True (and the subscriber counts as
        authenticated for the next attach) if it is that vector's XRES. A vector is used once."""
        expected = self._sub(imsi).outstanding.pop(rand, None)
        if expected is None or expected != res:
            LOGGER.warning("AuC: RES for IMSI %s does not match", imsi)
            return False
        self._authenticated.add(imsi)
        return True

    def take_authenticated(self, imsi: str) -> bool:
        """Was ``imsi`` just authenticated? One attach per authentication."""
        if imsi in self._authenticated:
            self._authenticated.discard(imsi)
            return True
        return False

    def resync(self, imsi: str, rand: bytes, auts: bytes) -> bool:
        """The card's AUTS for ``rand``: recover SQN_MS with f5*, check MAC-S with f1*, and
        continue above SQN_MS (TS 33.102 6.3.5, C.3.4: SEQ_HE = SEQ_MS). False if forged."""
        keys = self._keys(imsi)
        if keys is None or len(auts) != 14:
            return False
        ki, opc = keys
        sqn_ms = bytes(x ^ y for x, y in zip(auts[:6], milenage.f5_star(ki, opc, rand), strict=True))
        if milenage.f1_both(ki, opc, rand, sqn_ms, AMF_RESYNC)[1] != auts[6:]:
            LOGGER.warning("AuC: AUTS for IMSI %s fails its MAC-S: not resynchronised", imsi)
            return False
        sub = self._sub(imsi)
        value = int.from_bytes(sqn_ms, "big")
        sub.seq = max(sub.seq, value >> IND_BITS)
        sub.outstanding.clear()
        LOGGER.info("AuC: IMSI %s resynchronised", imsi)
        return True


class AkaCarrier(NullCarrier):
    """A carrier that attaches a subscriber only after its AuC authenticated it (a remote-SIM
    modem's attach: ``attach(imsi, plmn, None)``); a vSIM modem's challenge is refused,
    since its RES would come from keys in the modem."""

    def __init__(self, keys: KeyLookup) -> None:
        super().__init__()
        self.auc = Auc(keys)
        self.rejected: list[str] = []

    def attach(self, imsi: str, plmn: str, challenge: Any) -> int | None:
        if challenge is None and self.auc.take_authenticated(imsi):
            return super().attach(imsi, plmn, challenge)
        self.rejected.append(imsi)
        return EMM_ILLEGAL_UE


"""AUTHENTICATE in 3G/EPS security context (3GPP TS 31.102 7.1.2.1, TS 33.102 6.3.3).

The terminal sends RAND and AUTN = SQN xor AK || AMF || MAC-A. The card computes AK =
f5(RAND), unmasks SQN, checks MAC-A = f1(SQN, RAND, AMF), then checks SQN against its
state (``sqn.py``). Three outcomes:

- MAC-A wrong: status word 9862 and no data; the state does not change.
- SQN not acceptable: 'DC' 0E AUTS, AUTS = (SQN_MS xor AK*) || MAC-S, where AK* =
  f5*(RAND) and MAC-S = f1*(SQN_MS, RAND, AMF = 0000) (TS 33.102 6.3.3: the AMF in the
  resynchronisation token is a dummy of zeros).
- success: 'DB' 08 RES 10 CK 10 IK, and the SQN's slot moves up.

EPS AKA uses this same context (TS 33.401 6.1.1: the USIM sees no difference; the ME
derives K_ASME from CK and IK). The GSM context (P2 '80') needs service 27, which this
card does not offer, so it answers 9864, as do the other contexts.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.usim import sw
from agent.usim.milenage import AMF_LEN, BLOCK, SQN_LEN, Milenage
from agent.usim.sqn import SqnState

CONTEXT_3G = 0x81
"""P2: specific reference data (b8) and the 3G context (b3-b1 = 001), 31.102 7.1.2.1."""
SPECIFIC_REFERENCE = 0x80
"""P2 b8: the key is the application's own; with b8 = 0 the command names no usable key."""
DATA_LENGTH = 1 + BLOCK + 1 + BLOCK
"""Lc of the 3G context: L(RAND) RAND L(AUTN) AUTN."""
MAC_LEN = 8
SUCCESS_TAG, SYNC_FAILURE_TAG = 0xDB, 0xDC
RESYNC_AMF = bytes(AMF_LEN)


@dataclass(frozen=True)
class AuthOutcome:
    """What the card answers and the SQN state after it (unchanged unless success)."""

    reply: bytes
    sw: bytes
    state: SqnState
    result: str
    """"success", "sync_failure", "mac_failure" or "refused" (a malformed command):
    what a log line may say, with no value of the exchange."""
    reason: str = ""
    """Why a sync failure: ``SqnCheck.reason`` ("replayed", "too_far", "too_old")."""

    def __repr__(self) -> str:
        return f"AuthOutcome(result={self.result!r}, reason={self.reason!r}, sw={self.sw.hex()})"


def authenticate(milenage: Milenage, state: SqnState, p1: int, p2: int, data: bytes) -> AuthOutcome:
    def refused(status: bytes) -> AuthOutcome:
        return AuthOutcome(b"", status, state, "refused")

    if p1 != 0 or not p2 & SPECIFIC_REFERENCE:
        return refused(sw.INCORRECT_P1P2)
    if p2 != CONTEXT_3G:
        return refused(sw.AUTH_CONTEXT_NOT_SUPPORTED)
    if len(data) != DATA_LENGTH:
        return refused(sw.WRONG_LENGTH)
    if data[0] != BLOCK or data[1 + BLOCK] != BLOCK:
        return refused(sw.WRONG_DATA)
    rand, autn = data[1:1 + BLOCK], data[2 + BLOCK:]
    masked, amf, mac = autn[:SQN_LEN], autn[SQN_LEN:SQN_LEN + AMF_LEN], autn[SQN_LEN + AMF_LEN:]
    out = milenage.f2345(rand)
    sqn = bytes(a ^ b for a, b in zip(masked, out.ak, strict=True))
    if milenage.f1(rand, sqn, amf) != mac:
        return AuthOutcome(b"", sw.AUTH_MAC_FAILURE, state, "mac_failure")
    check = state.check(int.from_bytes(sqn, "big"))
    if not check.accepted:
        sqn_ms = state.sqn_ms.to_bytes(SQN_LEN, "big")
        auts = bytes(a ^ b for a, b in zip(sqn_ms, out.ak_star, strict=True))
        auts += milenage.f1_star(rand, sqn_ms, RESYNC_AMF)
        return AuthOutcome(bytes([SYNC_FAILURE_TAG, len(auts)]) + auts, sw.OK, state, "sync_failure", check.reason)
    reply = bytes([SUCCESS_TAG, len(out.res)]) + out.res + bytes([BLOCK]) + out.ck + bytes([BLOCK]) + out.ik
    return AuthOutcome(reply, sw.OK, state.accept(int.from_bytes(sqn, "big")), "success")

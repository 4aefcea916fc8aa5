"""The card's sequence-number state (3GPP TS 33.102 6.3 and Annex C), as one value.

Why an array: a network hands out authentication vectors in batches, and several
serving nodes may hold unused ones at once, so vectors reach the card out of order.
Annex C.1.1.2 splits SQN into SEQ (43 bits) and IND (5 bits); the card keeps, for each
IND slot, the highest SEQ it accepted there (C.2.2), and accepts a SQN = SEQ||IND iff

1. SEQ > the SEQ stored in slot IND (freshness: each vector is used once),
2. SEQ - SEQ_MS <= DELTA, SEQ_MS being the highest SEQ in any slot (C.2.1: a SQN far
   ahead would exhaust the number space: the network must resynchronise instead),
3. SEQ_MS - SEQ < AGE_LIMIT (C.2.2's optional limit L: a vector much older than the
   newest one seen is refused even in an unused slot).

A refusal is a synchronisation failure: the card answers AUTS, which carries SQN_MS (the
highest SQN it accepted) so the network's AuC can continue above it.

The state is a frozen value that serialises to JSON (``to_dict``/``from_dict``): the
platform stores it with the profile, since a pooled SIM moves between routers
(docs/remote-sim.md says how it follows the SIM). ``merge`` is the per-slot maximum,
the one safe way to combine two routers' views: a slot only ever grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError

IND_BITS = 5
"""Length of IND: 32 slots, the array size Annex C's profile is written for and the one
Milenage-based AuCs use (osmo-hlr's default ind_bitlen is 5; open5gs steps SQN by 32)."""
SLOTS = 1 << IND_BITS
SEQ_BITS = 48 - IND_BITS
"""SQN is 48 bits (TS 33.102 6.3); SEQ is what is left after IND."""
SEQ_MAX = (1 << SEQ_BITS) - 1
DELTA = 1 << 28
"""C.2.1's wrap-around limit Δ: 2^28, Annex C's suggested value. A network that jumps
further ahead than this is answered with AUTS instead of letting SEQ run out."""
AGE_LIMIT = 1 << 5
"""C.2.2's limit L on how far below SEQ_MS an accepted SEQ may lie. The check is optional
and L the operator's choice; 32 SEQ steps is far more than the vectors any MME keeps for
one subscriber (a batch is 1-5), so a real out-of-order vector always passes while a
vector replayed from long ago does not."""
STATE_VERSION = 1
"""The serialised form's version: a platform that stores it can tell forms apart."""


class SqnStateError(AgentError):
    """A serialised SQN state that does not fit its form; the message names the field."""


@dataclass(frozen=True)
class SqnCheck:
    """Whether a received SQN is acceptable, and why not (``reason``) when it is not."""

    accepted: bool
    reason: str
    """"fresh", or why refused: "replayed" (SEQ not above its slot), "too_far" (rule 2),
    "too_old" (rule 3)."""


def split(sqn: int) -> tuple[int, int]:
    """SQN -> (SEQ, IND)."""
    return sqn >> IND_BITS, sqn & (SLOTS - 1)


@dataclass(frozen=True)
class SqnState:
    """The SEQ accepted last in each IND slot (all zero on a new card)."""

    seq: tuple[int, ...] = (0,) * SLOTS

    def __post_init__(self) -> None:
        if len(self.seq) != SLOTS or not all(isinstance(s, int) and 0 <= s <= SEQ_MAX for s in self.seq):
            raise SqnStateError(f"seq must be {SLOTS} integers in 0..2^{SEQ_BITS}-1")

    @property
    def seq_ms(self) -> int:
        """The highest SEQ accepted in any slot."""
        return max(self.seq)

    @property
    def sqn_ms(self) -> int:
        """The highest SQN accepted (SEQ_MS||IND of its slot): what AUTS reports."""
        ind = self.seq.index(self.seq_ms)
        return (self.seq_ms << IND_BITS) | ind

    def check(self, sqn: int) -> SqnCheck:
        seq, ind = split(sqn)
        if seq <= self.seq[ind]:
            return SqnCheck(False, "replayed")
        if seq - self.seq_ms > DELTA:
            return SqnCheck(False, "too_far")
        if self.seq_ms - seq >= AGE_LIMIT:
            return SqnCheck(False, "too_old")
        return SqnCheck(True, "fresh")

    def accept(self, sqn: int) -> SqnState:
        """The state after accepting ``sqn`` (call only when ``check`` accepted it)."""
        seq, ind = split(sqn)
        slots = list(self.seq)
        slots[ind] = seq
        return SqnState(tuple(slots))

    def merge(self, other: SqnState) -> SqnState:
        """Per-slot maximum: the state that refuses everything either state refuses."""
        return SqnState(tuple(max(a, b) for a, b in zip(self.seq, other.seq, strict=True)))

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "ind_bits": IND_BITS, "seq": list(self.seq)}

    @classmethod
    def from_dict(cls, d: Any) -> SqnState:
        if not isinstance(d, dict):
            raise SqnStateError("an SQN state is an object")
        if d.get("version") != STATE_VERSION:
            raise SqnStateError(f"version must be {STATE_VERSION}")
        if d.get("ind_bits") != IND_BITS:
            raise SqnStateError(f"ind_bits must be {IND_BITS}")
        seq = d.get("seq")
        if not isinstance(seq, list) or any(isinstance(s, bool) for s in seq):
            raise SqnStateError("seq must be a list of integers")
        return cls(tuple(seq))

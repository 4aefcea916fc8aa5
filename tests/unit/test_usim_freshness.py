"""Which SQN the card accepts, against a brute-force oracle (TS 33.102 Annex C; issue 29).

The oracle keeps every SQN the card ever accepted, not one SEQ per slot, and decides from
the list as Annex C words it: replayed when a vector of the same IND slot with a SEQ as
high or higher was accepted; too far when SEQ is more than DELTA above the highest SEQ
accepted in any slot; too old when it is AGE_LIMIT or more below it. Random runs of
vectors near each other (out of order across slots, replays, the edges of DELTA and
AGE_LIMIT) must get the same verdict, the same reason and the same SQN_MS for AUTS."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.usim.sqn import AGE_LIMIT, DELTA, IND_BITS, SEQ_MAX, SLOTS, SqnState, split


class Oracle:
    def __init__(self) -> None:
        self.accepted: list[tuple[int, int]] = []  # (seq, ind), in order

    def highest(self) -> tuple[int, int]:
        """(SEQ_MS, its IND): the highest SEQ; of equal ones, the lowest slot (0 on a new card)."""
        if not self.accepted:
            return 0, 0
        top = max(seq for seq, _ in self.accepted)
        return top, min(ind for seq, ind in self.accepted if seq == top)

    def verdict(self, sqn: int) -> str:
        seq, ind = sqn >> IND_BITS, sqn % SLOTS
        if seq == 0 or any(s >= seq for s, i in self.accepted if i == ind):
            return "replayed"
        top = self.highest()[0]
        if seq > top + DELTA:
            return "too_far"
        if top - seq >= AGE_LIMIT:
            return "too_old"
        return "fresh"


BASE = 1_000_000
offsets = st.one_of(st.integers(-AGE_LIMIT - 3, AGE_LIMIT + 3),
                    st.sampled_from([DELTA - 1, DELTA, DELTA + 1, DELTA + 2]))
vectors = st.lists(st.tuples(offsets, st.integers(0, SLOTS - 1)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(vectors)
def test_the_card_accepts_exactly_what_annex_c_accepts(run: list[tuple[int, int]]) -> None:
    state, oracle = SqnState().accept((BASE << IND_BITS) | 7), Oracle()
    oracle.accepted.append((BASE, 7))
    for offset, ind in run:
        top = oracle.highest()[0]
        seq = max(0, min(SEQ_MAX, top + offset))
        sqn = (seq << IND_BITS) | ind
        check = state.check(sqn)
        expected = oracle.verdict(sqn)
        assert (check.accepted, check.reason) == (expected == "fresh", expected), (seq, ind)
        if check.accepted:
            state = state.accept(sqn)
            oracle.accepted.append((seq, ind))
        top_seq, top_ind = oracle.highest()
        assert (state.seq_ms, state.sqn_ms) == (top_seq, (top_seq << IND_BITS) | top_ind)


def test_a_new_card_accepts_the_first_vectors_of_any_slot_and_never_seq_0() -> None:
    new = SqnState()
    assert new.check((1 << IND_BITS) | 31).accepted and new.check(DELTA << IND_BITS).accepted
    assert new.check(((DELTA + 1) << IND_BITS) | 3).reason == "too_far"
    assert new.check(5).reason == "replayed"  # SEQ 0 in slot 5: what the slot already holds


def test_sqn_ms_names_the_slot_of_the_highest_seq() -> None:
    state = SqnState().accept((9 << IND_BITS) | 20).accept((9 << IND_BITS) | 31).accept((4 << IND_BITS) | 2)
    assert state.sqn_ms == (9 << IND_BITS) | 20 and split(state.sqn_ms) == (9, 20)

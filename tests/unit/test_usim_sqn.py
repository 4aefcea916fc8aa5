"""The USIM's SQN array (TS 33.102 Annex C): what it accepts and refuses, how two
routers' states combine, and the serialised form the platform stores."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.usim.sqn import AGE_LIMIT, DELTA, IND_BITS, SEQ_MAX, SLOTS, SqnState, SqnStateError


def sqn(seq: int, ind: int) -> int:
    return (seq << IND_BITS) | ind


def test_each_slot_accepts_a_higher_seq_once() -> None:
    state = SqnState()
    assert state.check(sqn(1, 0)).accepted
    state = state.accept(sqn(1, 0))
    assert state.check(sqn(1, 0)).reason == "replayed"
    assert state.check(sqn(2, 0)).accepted


def test_vectors_out_of_order_pass_through_their_own_slots() -> None:
    """Two MMEs hold vectors 5..8 and 9..12 (one SEQ step each, IND cycling); the later
    batch is used first: the earlier one is still accepted, each vector once."""
    state = SqnState((4,) * SLOTS)
    for seq in range(9, 13):
        assert state.check(sqn(seq, seq % SLOTS)).accepted
        state = state.accept(sqn(seq, seq % SLOTS))
    for seq in range(5, 9):
        assert state.check(sqn(seq, seq % SLOTS)).accepted, seq
        state = state.accept(sqn(seq, seq % SLOTS))
    assert all(not state.check(sqn(seq, seq % SLOTS)).accepted for seq in range(5, 13))


def test_too_far_ahead_is_refused_at_delta() -> None:
    state = SqnState((100,) * SLOTS)
    assert state.check(sqn(100 + DELTA, 1)).accepted
    assert state.check(sqn(100 + DELTA + 1, 1)).reason == "too_far"


def test_too_old_is_refused_at_the_age_limit() -> None:
    slots = [0] * SLOTS
    slots[0] = 1000
    state = SqnState(tuple(slots))
    assert state.check(sqn(1000 - AGE_LIMIT + 1, 5)).accepted
    assert state.check(sqn(1000 - AGE_LIMIT, 5)).reason == "too_old"


def test_sqn_ms_is_the_highest_accepted_with_its_ind() -> None:
    state = SqnState().accept(sqn(7, 3)).accept(sqn(9, 20)).accept(sqn(8, 4))
    assert state.sqn_ms == sqn(9, 20)
    assert SqnState().sqn_ms == 0


def test_merge_refuses_what_either_refuses() -> None:
    a = SqnState().accept(sqn(10, 1))
    b = SqnState().accept(sqn(20, 2))
    both = a.merge(b)
    assert not both.check(sqn(10, 1)).accepted and not both.check(sqn(20, 2)).accepted
    assert both.check(sqn(21, 1)).accepted


def test_round_trip_through_json() -> None:
    state = SqnState().accept(sqn(12345, 7)).accept(sqn(SEQ_MAX, 31))
    form = json.loads(json.dumps(state.to_dict()))
    assert form["version"] == 1 and form["ind_bits"] == IND_BITS and len(form["seq"]) == SLOTS
    assert SqnState.from_dict(form) == state


@pytest.mark.parametrize("bad", [
    None, [], {"version": 2, "ind_bits": 5, "seq": [0] * 32}, {"version": 1, "ind_bits": 4, "seq": [0] * 32},
    {"version": 1, "ind_bits": 5, "seq": [0] * 31}, {"version": 1, "ind_bits": 5, "seq": [-1] + [0] * 31},
    {"version": 1, "ind_bits": 5, "seq": [SEQ_MAX + 1] + [0] * 31},
    {"version": 1, "ind_bits": 5, "seq": [True] + [0] * 31}, {"version": 1, "ind_bits": 5, "seq": "0" * 32},
    {"version": 1, "ind_bits": 5, "seq": [1.5] + [0] * 31},
])
def test_a_bad_serialised_state_is_a_typed_error(bad: object) -> None:
    with pytest.raises(SqnStateError):
        SqnState.from_dict(bad)


states = st.lists(st.integers(0, SEQ_MAX), min_size=SLOTS, max_size=SLOTS).map(lambda s: SqnState(tuple(s)))


@settings(max_examples=200, deadline=None)
@given(states, states, st.integers(0, (1 << 48) - 1))
def test_merge_is_a_join(a: SqnState, b: SqnState, received: int) -> None:
    """Commutative, idempotent, above both: the cloud may merge reports in any order,
    twice, and never end below what a router accepted; a SQN the merge accepts is one
    both routers would accept on freshness."""
    assert a.merge(b) == b.merge(a)
    assert a.merge(a) == a
    m = a.merge(b)
    assert all(x >= y for x, y in zip(m.seq, a.seq, strict=True))
    if m.check(received).accepted:
        assert a.check(received).reason != "replayed" and b.check(received).reason != "replayed"


@settings(max_examples=200, deadline=None)
@given(states, st.integers(0, (1 << 48) - 1))
def test_accepting_never_lowers_a_slot(state: SqnState, received: int) -> None:
    if state.check(received).accepted:
        after = state.accept(received)
        assert all(x >= y for x, y in zip(after.seq, state.seq, strict=True))
        assert not after.check(received).accepted


@pytest.mark.parametrize(("bad", "message"), [
    (None, "an SQN state is an object"),
    ({"version": 2, "ind_bits": 5, "seq": [0] * 32}, "version must be 1"),
    ({"version": 1, "ind_bits": 4, "seq": [0] * 32}, "ind_bits must be 5"),
    ({"version": 1, "ind_bits": 5, "seq": "0" * 32}, "seq must be a list of integers"),
    ({"version": 1, "ind_bits": 5, "seq": [True] + [0] * 31}, "seq must be a list of integers"),
    ({"version": 1, "ind_bits": 5, "seq": [0] * 31}, f"seq must be {SLOTS} integers in 0..2^43-1"),
])
def test_a_bad_serialised_state_names_the_field_it_breaks(bad: object, message: str) -> None:
    """What the platform is told when the state it stored for a SIM does not read."""
    with pytest.raises(SqnStateError) as caught:
        SqnState.from_dict(bad)
    assert str(caught.value) == message

"""The usage journal's bookkeeping checked against what a user is billed for (issue 29):
both directions' bytes, the key a record is kept and merged under, the IMSI and interval a
record carries after a restart, and the shape a record read back must have.

The backlog merge is compared with a brute-force oracle: whatever the order of SIMs, days
and regions, and wherever the merge falls, the bytes per (ICCID, IMSI, day, zone, region)
are the sums of what was added, in both directions, and each record's interval spans its
group's."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clock import JST, FakeClock
from agent.recordlog import RecordLog
from agent.usage.counters import Counters
from agent.usage.journal import BODY_KEYS, TRICKLE_BYTES, UsageJournal, make_body, valid_body
from agent.usage.meter import UsageDelta

SIMS = [("8981000000000000001", "440101234567890"), ("8981000000000000002", "440109876543210"),
        ("8981000000000000003", "310150123456789"), ("8981000000000000001", "310150000000001")]
"""Three SIMs, the first also under a second IMSI (a multi-IMSI SIM abroad): each IMSI is
its own subscriber to bill, so a key that left it out would merge two of them."""
DAY0 = datetime(2026, 3, 1, tzinfo=JST).timestamp()
MCCS = ["440", "310"]

Key = tuple[str, str, str, str, tuple[str, ...]]


def delta(sim: int, day: int, mcc: str, rx: int, tx: int, second: int) -> UsageDelta:
    """Usage on SIM ``sim`` on day ``day`` (JST), one second long ending at ``second``."""
    iccid, imsi = SIMS[sim]
    end = DAY0 + day * 86400 + 3600 + second
    name = datetime.fromtimestamp(end, JST).date().isoformat()
    return UsageDelta(iccid, imsi, mcc, name, name[:7], "+09:00", end - 1, end, rx, tx)


def key_of(body: dict[str, Any]) -> Key:
    return body["iccid"], body["imsi"], body["day"], body["tz"], tuple(sorted(body["mcc"]))


def totals(bodies: list[dict[str, Any]]) -> dict[Key, tuple[int, int, float, float]]:
    """Per key: rx, tx, earliest start, latest end (seconds)."""
    out: dict[Key, tuple[int, int, float, float]] = {}
    for b in bodies:
        rx, tx, start, end = out.get(key_of(b), (0, 0, float("inf"), float("-inf")))
        out[key_of(b)] = (rx + b["rx_bytes"], tx + b["tx_bytes"],
                          min(start, datetime.fromisoformat(b["start"]).timestamp()),
                          max(end, datetime.fromisoformat(b["end"]).timestamp()))
    return out


def oracle(deltas: list[UsageDelta]) -> dict[Key, tuple[int, int, float, float]]:
    """The brute-force answer: every delta summed under its own key."""
    out: dict[Key, list[Any]] = defaultdict(lambda: [0, 0, float("inf"), float("-inf")])
    for d in deltas:
        acc = out[(d.iccid, d.imsi, d.day, d.tz, (d.mcc,))]
        acc[0] += d.rx_bytes
        acc[1] += d.tx_bytes
        acc[2] = min(acc[2], d.start)
        acc[3] = max(acc[3], d.end)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


usage = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.sampled_from(MCCS),
                           st.integers(0, 10**9), st.integers(0, 10**9)), min_size=1, max_size=40)


@settings(max_examples=120, deadline=None)
@given(records=usage, offered=st.integers(0, 5), max_pending=st.integers(2, 8))
def test_backlog_merge_keeps_every_key_and_both_directions_exact(tmp_path_factory: pytest.TempPathFactory,
                                                                 records: list[tuple[int, int, str, int, int]],
                                                                 offered: int, max_pending: int) -> None:
    """Offline for days: records pile up past ``max_pending`` and the never-offered ones are
    merged. Per key the bytes both ways and the interval equal the oracle's (so no record
    mixes SIMs, days or regions); what was offered is unchanged; seqs only increase; the
    backlog stays bounded; and the file reopens to the same records."""
    path = tmp_path_factory.mktemp("j") / "usage.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0, max_pending=max_pending)
    added: list[UsageDelta] = []
    seen_offered: list[tuple[int, dict[str, Any]]] = []
    for i, (sim, day, mcc, rx, tx) in enumerate(records):
        d = delta(sim, day, mcc, rx, tx, i)
        added.append(d)
        clock.advance(1)
        journal.add([d], Counters(3, i, i, 0, 0, boot_id="b"), clock.wall())  # one record per add
        if i + 1 == offered:
            seen_offered = journal.pending(offered)  # the link took these: never merged after
    pending = journal.pending(10**6)
    bodies = [b for _, b in pending]
    assert totals(bodies) == oracle(added)
    assert all(valid_body(b) for b in bodies)
    seqs = [s for s, _ in pending]
    assert seqs == sorted(set(seqs))
    assert pending[:len(seen_offered)] == seen_offered
    # bounded: past max_pending the unoffered records are one per key
    assert len(pending) <= max(max_pending, len(seen_offered) + len(oracle(added)))
    journal.close()
    assert UsageJournal(path, clock=clock).pending(10**6) == pending


def test_a_merged_backlog_sums_uplink_and_downlink_separately(tmp_path: Path) -> None:
    """The plainest case of the property above, with numbers to read: four records of one
    SIM on one day, one more than max_pending, merged into one (under the last seq) that
    carries 4 x rx down and 4 x tx up over the four seconds."""
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=0, max_pending=3)
    for i in range(4):
        clock.advance(1)
        journal.add([delta(0, 0, "440", 1000, 7, i)], Counters(3, i, i, 0, 0, boot_id="b"), clock.wall())
    (seq, body), = journal.pending(10)
    assert (seq, body["rx_bytes"], body["tx_bytes"]) == (4, 4000, 28)
    assert (body["start"], body["end"]) == ("2026-03-01T00:59:59.000+09:00", "2026-03-01T01:00:03.000+09:00")


@pytest.mark.parametrize("compacted", [False, True])
def test_a_restart_keeps_each_records_imsi_and_interval(tmp_path: Path, compacted: bool) -> None:
    """After a restart every pending record is exactly what it was: above all its IMSI
    (usage billed under another SIM's IMSI is billed to the wrong subscriber) and its start
    and end, whether replayed from flush records or from a compacted file."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0, compact_at_bytes=0 if compacted else 1 << 30)
    for i, (sim, day, mcc) in enumerate([(0, 0, "440"), (1, 0, "440"), (2, 1, "310"), (0, 1, "440"), (1, 2, "310")]):
        clock.advance(1)
        journal.add([delta(sim, day, mcc, 1000 * (i + 1), 10 * (i + 1), 100 * i)],
                    Counters(3, i, i, 0, 0, boot_id="b"), clock.wall())
    if compacted:
        journal.ack(1)  # frees a record: the file is rewritten as state + "U" records
    before = journal.pending(100)
    journal.close()
    after = UsageJournal(path, clock=clock).pending(100)
    assert after == before
    assert [(b["iccid"], b["imsi"]) for _, b in after] == [SIMS[s] for s in ([1, 2, 0, 1] if compacted else
                                                                               [0, 1, 2, 0, 1])]
    assert after[-1][1]["start"] == "2026-03-03T01:06:39.000+09:00" and after[-1][1]["end"].endswith("01:06:40.000+09:00")


GOOD = make_body(("8981000000000000001", "440101234567890", "2026-03-01", "+09:00"), ["440"], 10, 20,
                 int(DAY0 * 1000), int(DAY0 * 1000) + 1000)

BAD: dict[str, dict[str, Any]] = {
    "negative rx": {**GOOD, "rx_bytes": -1},
    "negative tx": {**GOOD, "tx_bytes": -5},
    "boolean rx": {**GOOD, "rx_bytes": True},
    "boolean tx": {**GOOD, "tx_bytes": False},
    "float rx": {**GOOD, "rx_bytes": 10.0},
    "string tx": {**GOOD, "tx_bytes": "20"},
    "extra key": {**GOOD, "note": "x"},
    "missing key": {k: v for k, v in GOOD.items() if k != "tz"},
    "numeric iccid": {**GOOD, "iccid": 8981000000000000001},
    "numeric imsi": {**GOOD, "imsi": 440101234567890},
    "mcc not a list": {**GOOD, "mcc": "440"},
    "numeric mcc": {**GOOD, "mcc": [440]},
    "day not a date": {**GOOD, "day": "2026-13-01"},
    "month of another day": {**GOOD, "month": "2026-02"},
    "start not a time": {**GOOD, "start": "noon"},
    "end not a time": {**GOOD, "end": "later"},
    "not an object": ["iccid", "imsi"],  # type: ignore[dict-item]
}


def test_a_good_body_is_valid() -> None:
    assert set(GOOD) == BODY_KEYS and valid_body(GOOD)


@pytest.mark.parametrize("case", list(BAD))
def test_a_body_of_the_wrong_shape_is_refused(case: str) -> None:
    assert not valid_body(BAD[case])


@pytest.mark.parametrize("case", list(BAD))
def test_a_checksummed_record_of_the_wrong_shape_is_skipped_on_replay(tmp_path: Path, case: str) -> None:
    """A record whose CRC is right but whose body is not the cloud's shape (a bug, a
    downgrade) is never offered: negative or boolean counts, extra keys and the rest."""
    path = tmp_path / "u.log"
    log = RecordLog(path)
    log.append(json.dumps(["U", 1, GOOD]).encode())
    log.append(json.dumps(["U", 2, BAD[case]]).encode())
    log.flush()
    journal = UsageJournal(path, clock=FakeClock(epoch=DAY0))
    assert journal.pending(10) == [(1, GOOD)] and journal.skipped_records == 1


# -- flush, offer, ack, compaction and crashes against the oracle ------------------------------

step = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 2), st.sampled_from(MCCS),
              st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("idle"), st.integers(1, 90)),      # seconds pass; a sample with no usage
    st.tuples(st.just("send"), st.integers(0, 4)),       # the link offers up to n, the cloud acks them
    st.tuples(st.just("flush"),), st.tuples(st.just("compact"),),
    st.tuples(st.just("crash"),),                        # SIGKILL: memory gone, the file reopened
    st.tuples(st.just("restart"),),                      # a clean stop and start
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(step, max_size=30), interval=st.sampled_from([0.0, 30.0]),
       compact_at=st.sampled_from([0, 400, 1 << 30]), max_pending=st.sampled_from([2, 5000]),
       flush_bytes=st.sampled_from([1_500_000, 8 << 20]))
def test_what_the_cloud_is_billed_is_what_was_made_durable_whatever_happens(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]], interval: float,
        compact_at: int, max_pending: int, flush_bytes: int) -> None:
    """The journal's whole life against the brute-force oracle: usage added (any SIM, day,
    region, both directions), flushes by time, bytes and hand, offers and cumulative acks,
    compactions, crashes that lose only what was never durable, and clean restarts. The
    cloud takes each seq once and checks that a re-offered seq carries the same record;
    in the end it holds, per (ICCID, IMSI, day, zone, region), exactly the bytes both ways
    and the interval of every delta that was made durable, and the journal reopens from
    the baseline of its last durable flush."""
    path = tmp_path_factory.mktemp("j") / "usage.log"
    clock = FakeClock(epoch=DAY0)

    def open_journal() -> UsageJournal:
        return UsageJournal(path, clock=clock, flush_interval_s=interval, compact_at_bytes=compact_at,
                            max_pending=max_pending, flush_bytes=flush_bytes)

    journal = open_journal()
    durable: list[UsageDelta] = []      # the oracle's input: deltas known to be on disk
    in_memory: list[UsageDelta] = []    # added since the last durable flush
    durable_base: Counters | None = None
    cloud: dict[int, dict[str, Any]] = {}
    reading = 0

    def feed(deltas: list[UsageDelta]) -> None:
        nonlocal reading, durable_base
        reading += 1
        base = Counters(3, reading, 2 * reading, 0, 0, boot_id="b")
        in_memory.extend(deltas)
        journal.add(deltas, base, clock.wall())
        if journal.baseline() == base:  # the add flushed: everything so far is durable
            durable.extend(in_memory)
            in_memory.clear()
            durable_base = base

    def flushed() -> None:
        nonlocal durable_base
        if journal.baseline() is not None:
            durable.extend(in_memory)
            in_memory.clear()
            durable_base = journal.baseline()

    for i, (kind, *args) in enumerate(steps):
        clock.advance(1)
        if kind == "add":
            sim, day, mcc, rx, tx = args
            feed([delta(sim, day, mcc, rx, tx, i)])
        elif kind == "idle":
            clock.advance(args[0])
            feed([])
        elif kind == "send":
            offered = journal.pending(args[0])
            for seq, body in offered:
                assert cloud.setdefault(seq, body) == body  # a seq never carries another record
            if offered:
                journal.ack(offered[-1][0])
        elif kind == "flush":
            journal.flush()
            flushed()
        elif kind == "compact":
            journal.compact()
        elif kind == "crash":
            in_memory.clear()  # lost with the process (the meter recounts them from the baseline)
            journal = open_journal()
            assert journal.baseline() == durable_base
        else:
            journal.close()
            flushed()
            journal = open_journal()
            assert journal.baseline() == durable_base
    journal.close()
    flushed()
    journal = open_journal()
    for seq, body in journal.pending(10**6):
        assert cloud.setdefault(seq, body) == body
    assert totals(list(cloud.values())) == oracle(durable)
    assert journal.baseline() == durable_base


# -- when a record is written, offered and forgotten: each rule one step either side -------------


def base_of(n: int, boot: str = "b") -> Counters:
    return Counters(3, n, n, 0, 0, boot_id=boot)


def fresh(tmp_path: Path, **kw: Any) -> tuple[UsageJournal, FakeClock]:
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(tmp_path / "u.log", clock=clock, **kw)
    journal.add([], base_of(0), clock.wall())  # the first baseline is made durable at once
    assert journal.baseline() == base_of(0)
    return journal, clock


def test_the_interval_flushes_at_the_second_not_before(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=60)
    clock.advance(59)
    journal.add([delta(0, 0, "440", 10, 1, 0)], base_of(1), clock.wall())
    assert journal.baseline() == base_of(0) and journal.pending(10) == []
    clock.advance(1)
    journal.add([], base_of(2), clock.wall())
    assert journal.baseline() == base_of(2)
    ((_, body),) = journal.pending(10)
    assert (body["rx_bytes"], body["tx_bytes"]) == (10, 1)


def test_the_byte_threshold_counts_both_directions_and_flushes_at_the_byte(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=3600, flush_bytes=5000)
    journal.add([delta(0, 0, "440", 4000, 999, 0)], base_of(1), clock.wall())
    assert journal.pending(10) == []
    journal.add([delta(0, 0, "440", 0, 1, 1)], base_of(2), clock.wall())
    assert [(b["rx_bytes"], b["tx_bytes"]) for _, b in journal.pending(10)] == [(4000, 1000)]


def test_a_trickle_waits_for_its_own_interval_and_real_usage_does_not(tmp_path: Path) -> None:
    """Below TRICKLE_BYTES (both directions together) the minute is not enough; at
    TRICKLE_BYTES it is."""
    for rx, tx, flushed_at_minute in [(TRICKLE_BYTES - 100, 99, False), (TRICKLE_BYTES - 100, 100, True)]:
        journal, clock = fresh(tmp_path / str(tx), flush_interval_s=60, trickle_flush_s=900)
        clock.advance(60)
        journal.add([delta(0, 0, "440", rx, tx, 0)], base_of(1), clock.wall())
        assert bool(journal.pending(10)) is flushed_at_minute
        clock.advance(839)
        journal.add([], base_of(2), clock.wall())
        assert bool(journal.pending(10)) is flushed_at_minute
        clock.advance(1)
        journal.add([], base_of(3), clock.wall())
        assert len(journal.pending(10)) == 1


def test_a_flush_with_nothing_new_writes_nothing_and_an_ack_alone_is_made_durable(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100 * i, i, i)], base_of(i), clock.wall())
    size = (tmp_path / "u.log").stat().st_size
    journal.flush()
    assert (tmp_path / "u.log").stat().st_size == size  # flash wear: nothing to say, nothing written
    journal.ack(2)
    journal.flush()
    assert (tmp_path / "u.log").stat().st_size > size
    # a crash now (no close): the ack is on disk, so record 1 and 2 are not offered again
    assert [s for s, _ in UsageJournal(tmp_path / "u.log", clock=clock).pending(10)] == [3]


def test_acks_are_cumulative_never_go_back_and_are_clamped_to_what_exists(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100 * i, i, i)], base_of(i), clock.wall())
    journal.ack(2)
    journal.ack(1)  # a late, smaller ack changes nothing
    assert [s for s, _ in journal.pending(10)] == [3]
    journal.ack(10**6)  # beyond the last seq: only what exists is acked
    assert journal.pending(10) == []
    journal.add([delta(1, 0, "440", 7, 8, 9)], base_of(9), clock.wall())
    ((seq, body),) = journal.pending(10)
    assert (seq, body["imsi"], body["rx_bytes"], body["tx_bytes"]) == (4, SIMS[1][1], 7, 8)
    journal.close()
    assert UsageJournal(tmp_path / "u.log", clock=clock).pending(10) == [(4, body)]


def test_pending_gives_at_most_the_limit_oldest_first_as_copies(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100 * i, i, i)], base_of(i), clock.wall())
    assert journal.pending(0) == [] and journal.pending(-1) == []
    first_two = journal.pending(2)
    assert [s for s, _ in first_two] == [1, 2]
    first_two[0][1]["rx_bytes"] = 0  # what the link does with its copy is not the journal's
    assert journal.pending(1)[0][1]["rx_bytes"] == 100


def test_an_ack_of_another_epoch_is_ignored_and_this_epochs_is_applied(tmp_path: Path) -> None:
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100 * i, i, i)], base_of(i), clock.wall())
    epoch, start = journal.epoch_of(1)
    assert start == 1 and epoch
    journal.ack_epoch(3, epoch + "-other")
    assert [s for s, _ in journal.pending(10)] == [1, 2, 3]
    journal.ack_epoch(2, epoch)
    assert [s for s, _ in journal.pending(10)] == [3]


def test_the_backlog_is_merged_only_past_max_pending(tmp_path: Path) -> None:
    """Nothing offered yet (pending() would offer): max_pending records stay apart, one
    more and they are merged under the last seq."""
    merged = []
    for count in (3, 4):
        journal, clock = fresh(tmp_path / str(count), flush_interval_s=0, max_pending=3)
        for i in range(1, count + 1):
            journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
        merged.append([(s, b["rx_bytes"], b["tx_bytes"]) for s, b in journal.pending(10)])
    assert merged == [[(1, 100, 1), (2, 100, 1), (3, 100, 1)], [(4, 400, 4)]]


def test_records_an_earlier_process_may_have_offered_are_never_merged(tmp_path: Path) -> None:
    """After a restart, the previous process's records may be in the cloud's hands already
    (offered, not yet acked): merging them into a new record would bill them twice. Only
    this process's never-offered records are merged."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    first = UsageJournal(path, clock=clock, flush_interval_s=0)
    for i in range(1, 4):
        first.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    earlier = first.pending(10)
    second = UsageJournal(path, clock=clock, flush_interval_s=0, max_pending=3)  # first was SIGKILLed
    for i in range(4, 7):
        second.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    pending = second.pending(10)
    assert pending[:3] == earlier
    assert [(s, b["rx_bytes"]) for s, b in pending[3:]] == [(6, 300)]


def test_the_boot_of_the_baseline_survives_a_restart(tmp_path: Path) -> None:
    """Baselines of two boots in one file: a reopened journal resumes from the last one,
    boot id included (a meter compares it to tell a reboot from a resumed count)."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    journal.add([delta(0, 0, "440", 100, 1, 1)], base_of(50, boot="boot-1"), clock.wall())
    journal.add([delta(0, 0, "440", 100, 1, 2)], base_of(7, boot="boot-2"), clock.wall())
    clock.advance(5)
    journal.add([delta(0, 0, "440", 100, 1, 3)], base_of(9, boot="boot-2"), clock.wall())
    reopened = UsageJournal(path, clock=clock)
    assert (reopened.baseline(), reopened.baseline_wall()) == (base_of(9, boot="boot-2"), clock.wall())
    assert len(reopened.pending(10)) == 3


def test_a_record_whose_write_failed_is_offered_once_the_retry_writes_it_and_not_before(tmp_path: Path) -> None:
    """Flash refuses a flush: the record stays queued and is not offered. The link's next
    pending() retries the write: now it is offered, with its baseline and the ack made
    before it durable; a later flush that fails again offers nothing of its own."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    for i in range(1, 3):
        journal.add([delta(0, 0, "440", 100 * i, i, i)], base_of(i), clock.wall())
    journal.ack(1)

    def broken(flash_ok: bool) -> None:
        if flash_ok:
            state.unlink()
            (tmp_path / "away").rename(state)
        else:
            state.rename(tmp_path / "away")
            state.write_bytes(b"")  # a file where the directory was: every write fails

    broken(False)
    journal.add([delta(1, 0, "440", 300, 3, 3)], base_of(3), clock.wall())  # flush fails: logged
    assert [s for s, _ in journal.pending(10)] == [2] and journal.baseline() == base_of(2)
    broken(True)
    assert [(s, b["imsi"], b["tx_bytes"]) for s, b in journal.pending(10)] == [(2, SIMS[0][1], 2), (3, SIMS[1][1], 3)]
    assert journal.baseline() == base_of(3)
    broken(False)
    journal.add([delta(2, 0, "440", 400, 4, 4)], base_of(4), clock.wall())  # fails again
    assert [s for s, _ in journal.pending(10)] == [2, 3] and journal.baseline() == base_of(3)
    broken(True)
    journal.close()
    reopened = UsageJournal(path, clock=clock)
    assert [s for s, _ in reopened.pending(10)] == [2, 3, 4] and reopened.baseline() == base_of(4)


def test_an_ack_of_the_new_epoch_never_forgets_the_old_epochs_records(tmp_path: Path) -> None:
    """A torn tail begins a new epoch while a record of the old one is still unsent. The
    cloud's ack of the new epoch must not forget it (acks are cumulative in the file): it
    is ignored until the old epoch's record is acked in its own epoch."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    old, _ = journal.epoch_of(1)
    journal.ack_epoch(2, old)
    journal.flush()  # the ack made durable
    with path.open("ab") as f:
        f.write(b"\x00\x17torn")  # power lost half way through an append
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    for i in range(4, 6):
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    new, new_start = journal.epoch_of(4)
    assert new != old and new_start == 4 and journal.epoch_of(3) == (old, 1)
    journal.ack_epoch(5, new)
    assert [s for s, _ in journal.pending(10)] == [3, 4, 5]
    journal.ack_epoch(3, old)
    assert [s for s, _ in journal.pending(10)] == [4, 5]
    journal.ack_epoch(5, new)
    assert journal.pending(10) == []
    journal.ack_epoch(5, new)  # a repeated ack with nothing pending changes nothing
    assert journal.pending(10) == []


def test_after_everything_is_acked_and_compacted_a_restart_numbers_on_from_its_wall_time(tmp_path: Path) -> None:
    """A compacted file of nothing pending holds only the state: a restart must number the
    next record after the last one ever used (a reused seq is dropped by the cloud as a
    duplicate: usage lost) and resume from the baseline's wall time (the meter dates the
    next interval from it)."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0, compact_at_bytes=0)
    for i in range(1, 4):
        clock.advance(7)
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    wall = clock.wall()
    journal.ack(3)
    clock.advance(100)
    reopened = UsageJournal(path, clock=clock, flush_interval_s=0)
    assert (reopened.pending(10), reopened.baseline(), reopened.baseline_wall()) == ([], base_of(3), wall)
    reopened.add([delta(1, 0, "440", 5, 6, 9)], base_of(9), clock.wall())
    assert [(s, b["rx_bytes"], b["tx_bytes"]) for s, b in reopened.pending(10)] == [(4, 5, 6)]


def test_an_ack_one_past_the_last_record_never_swallows_the_next(tmp_path: Path) -> None:
    path = tmp_path / "u.log"
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    journal.ack(4)  # one past the last seq: clamped to 3
    journal.add([delta(1, 0, "440", 5, 6, 9)], base_of(9), clock.wall())
    journal.close()
    assert [(s, b["rx_bytes"]) for s, b in UsageJournal(path, clock=clock).pending(10)] == [(4, 5)]


def test_two_records_under_one_seq_are_never_both_offered(tmp_path: Path) -> None:
    """seq is the cloud's idempotency key: a file holding a second record under a seq
    already read (checksums right) keeps the first and skips the second."""
    path = tmp_path / "u.log"
    log = RecordLog(path)
    other = {**GOOD, "rx_bytes": 999}
    for seq, body in [(1, GOOD), (2, GOOD), (2, other)]:
        log.append(json.dumps(["U", seq, body]).encode())
    log.flush()
    journal = UsageJournal(path, clock=FakeClock(epoch=DAY0))
    assert journal.pending(10) == [(1, GOOD), (2, GOOD)] and journal.skipped_records == 1


def test_a_compaction_keeps_each_pending_record_in_its_own_epoch(tmp_path: Path) -> None:
    """After a torn tail began a new epoch, compacting the file while a record of the old
    epoch is still pending keeps that record in the old epoch: sent under another epoch,
    the cloud would take it for new usage and bill it twice."""
    path = tmp_path / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    for i in range(1, 3):
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    old, _ = journal.epoch_of(1)
    with path.open("ab") as f:
        f.write(b"\x00\x17torn")
    journal = UsageJournal(path, clock=clock, flush_interval_s=0, compact_at_bytes=0)
    journal.add([delta(0, 0, "440", 100, 1, 3)], base_of(3), clock.wall())
    new, _ = journal.epoch_of(3)
    journal.ack_epoch(1, old)  # frees record 1: the file is compacted
    journal.close()
    reopened = UsageJournal(path, clock=clock)
    assert [(s, reopened.epoch_of(s)) for s, _ in reopened.pending(10)] == [(2, (old, 1)), (3, (new, 3))]


def test_an_ack_after_a_recovered_write_failure_is_made_durable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "u.log"
    clock = FakeClock(epoch=DAY0)
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)
    journal.add([delta(0, 0, "440", 100, 1, 1)], base_of(1), clock.wall())
    state.rename(tmp_path / "away")
    state.write_bytes(b"")
    journal.add([delta(0, 0, "440", 200, 2, 2)], base_of(2), clock.wall())  # fails, queued
    state.unlink()
    (tmp_path / "away").rename(state)
    assert [s for s, _ in journal.pending(10)] == [1, 2]  # the retry wrote it
    journal.ack(1)
    journal.flush()  # nothing new but the ack: written
    assert [s for s, _ in UsageJournal(path, clock=clock).pending(10)] == [2]


def test_a_record_states_its_interval_in_the_plans_zone() -> None:
    """A plan billed in UTC: the record's start and end carry +00:00, like its tz (a JST
    offset there would put the interval nine hours off the day it is billed to)."""
    body = make_body(("8981000000000000003", "310150123456789", "2026-03-01", "+00:00"), ["310"], 1, 2,
                     int(DAY0 * 1000), int(DAY0 * 1000) + 1500)
    assert (body["start"], body["end"]) == ("2026-02-28T15:00:00.000+00:00", "2026-02-28T15:00:01.500+00:00")


def test_after_a_restart_the_byte_threshold_still_holds_to_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "u.log"
    first, clock = fresh(tmp_path, flush_interval_s=3600, flush_bytes=5000)
    first.close()
    journal = UsageJournal(path, clock=clock, flush_interval_s=3600, flush_bytes=5000)
    journal.add([delta(0, 0, "440", 4000, 999, 0)], base_of(1), clock.wall())
    assert journal.pending(10) == []
    journal.add([delta(0, 0, "440", 0, 1, 1)], base_of(2), clock.wall())
    assert [(b["rx_bytes"], b["tx_bytes"]) for _, b in journal.pending(10)] == [(4000, 1000)]


def test_after_a_restart_a_record_whose_write_failed_is_not_offered(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "u.log"
    clock = FakeClock(epoch=DAY0)
    first = UsageJournal(path, clock=clock, flush_interval_s=0)
    first.add([delta(0, 0, "440", 100, 1, 1)], base_of(1), clock.wall())
    journal = UsageJournal(path, clock=clock, flush_interval_s=0)  # the first was SIGKILLed
    state.rename(tmp_path / "away")
    state.write_bytes(b"")
    journal.add([delta(0, 0, "440", 200, 2, 2)], base_of(2), clock.wall())  # fails, queued
    assert [s for s, _ in journal.pending(10)] == [1]


def test_one_boot_record_per_boot_on_flash(tmp_path: Path) -> None:
    """Flash wear: the boot id is written once per boot (and per file), not with every flush."""
    journal, clock = fresh(tmp_path, flush_interval_s=0)
    for i in range(1, 4):
        journal.add([delta(0, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    journal.add([delta(0, 0, "440", 100, 1, 4)], base_of(4, boot="c"), clock.wall())
    boots = [json.loads(p)[1] for p in RecordLog(tmp_path / "u.log").records if json.loads(p)[0] == "B"]
    assert boots == ["b", "c"]


def test_offline_with_nothing_acked_the_file_is_only_appended_to(tmp_path: Path) -> None:
    """Flash wear: a rewrite is worth it only when acks freed something. Offline for long,
    past the compaction size, every byte is written once (no rewrite per flush)."""
    journal, clock = fresh(tmp_path, flush_interval_s=0, compact_at_bytes=0)
    for i in range(1, 6):
        journal.add([delta(i % 3, 0, "440", 100, 1, i)], base_of(i), clock.wall())
    assert journal.bytes_written == (tmp_path / "u.log").stat().st_size
    journal.ack(2)  # now something is freed: rewritten to the state and the three left
    assert journal.bytes_written > (tmp_path / "u.log").stat().st_size

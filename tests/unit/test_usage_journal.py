"""UsageJournal: durable, exact, never inventing bytes, a ReliableSource for "usage"."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from agent.clock import JST, FakeClock
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal, valid_body
from agent.usage.meter import UsageMeter

MIDNIGHT = datetime(2026, 3, 1, tzinfo=JST).timestamp()
ICCID, IMSI = "8981000000000000001", "440101234567890"


def base(n: int, ifindex: int = 3) -> Counters:
    return Counters(ifindex, n, n // 10, 0, 0, boot_id="boot-a")


def drive(journal: UsageJournal, clock: FakeClock, steps: int, per_step: int = 1000,
          meter: UsageMeter | None = None, start: int = 0) -> UsageMeter:
    """Feed ``steps`` one-second samples of ``per_step`` rx bytes through a meter."""
    if meter is None:
        meter = UsageMeter(clock, header_bytes=0, boot_id="boot-a")
        meter.set_active_sim(ICCID, IMSI, "440")
        meter.sample(base(start))
        journal.add([], meter.baseline(), meter.baseline_wall())  # first baseline: durable at once
    n = meter.baseline().rx_bytes if meter.baseline() else start
    for _ in range(steps):
        clock.advance(1)
        n += per_step
        deltas = meter.sample(base(n))
        journal.add(deltas, meter.baseline(), meter.baseline_wall())
    return meter


def totals(journal: UsageJournal) -> tuple[int, int]:
    bodies = [b for _, b in journal.pending(10**6)]
    return sum(b["rx_bytes"] for b in bodies), sum(b["tx_bytes"] for b in bodies)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=MIDNIGHT - 100)


def test_flush_interval_and_body_shape(tmp_path: Path, clock: FakeClock) -> None:
    j2 = UsageJournal(tmp_path / "v.log", clock=clock, flush_interval_s=10)
    m = drive(j2, clock, 9)
    assert j2.pending(10) == [] and j2.baseline() == base(0)  # only the first baseline so far
    drive(j2, clock, 1, meter=m)
    (seq, body), = j2.pending(10)
    assert seq == 1 and valid_body(body)
    assert body == {"iccid": ICCID, "imsi": IMSI, "day": "2026-02-28", "month": "2026-02", "tz": "+09:00",
                    "mcc": ["440"], "rx_bytes": 10_000, "tx_bytes": 1000,
                    "start": "2026-02-28T23:58:20.000+09:00", "end": "2026-02-28T23:58:30.000+09:00"}
    assert j2.baseline() == m.baseline()


def test_flush_bytes_threshold(tmp_path: Path, clock: FakeClock) -> None:
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=3600, flush_bytes=5000)
    drive(j, clock, 5)
    assert len(j.pending(10)) == 1 and totals(j) == (5000, 500)


def test_split_across_midnight_gives_two_day_records(tmp_path: Path, clock: FakeClock) -> None:
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=3600)
    drive(j, clock, 200)
    j.flush("switch")
    days = {b["day"]: b["rx_bytes"] for _, b in j.pending(10)}
    assert days == {"2026-02-28": 100_000, "2026-03-01": 100_000}


def test_restart_resumes_from_baseline_without_double_count(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "u.log"
    j = UsageJournal(path, clock=clock, flush_interval_s=5)
    drive(j, clock, 12)  # flushed at 5 and 10; 2 s in memory only ("SIGKILL" now)
    assert totals(UsageJournal(path, clock=clock))[0] == 10_000
    j2 = UsageJournal(path, clock=clock, flush_interval_s=5)
    meter = UsageMeter(clock, header_bytes=0, boot_id="boot-a")
    meter.set_active_sim(ICCID, IMSI, "440")
    meter.seed(j2.baseline(), j2.baseline_wall())
    # kernel counters kept running: 12 000 now, then 8 more seconds
    clock.advance(1)
    j2.add(meter.sample(base(13_000)), meter.baseline(), meter.baseline_wall())
    drive(j2, clock, 7, meter=meter)
    j2.close()
    assert totals(UsageJournal(path, clock=clock))[0] == 20_000


def test_ack_compacts_and_state_survives(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "u.log"
    j = UsageJournal(path, clock=clock, flush_interval_s=1, compact_at_bytes=200)
    drive(j, clock, 10)
    seqs = [s for s, _ in j.pending(100)]
    assert seqs == list(range(1, 11))
    size_before = path.stat().st_size
    j.ack(7)
    assert [s for s, _ in j.pending(100)] == [8, 9, 10]
    assert path.stat().st_size < size_before
    reopened = UsageJournal(path, clock=clock, flush_interval_s=1)
    assert [s for s, _ in reopened.pending(100)] == [8, 9, 10]
    assert reopened.baseline() == j.baseline()
    drive(reopened, clock, 1, meter=UsageMeter(clock, header_bytes=0, boot_id="boot-a"))
    reopened.flush()
    assert next(s for s, _ in UsageJournal(path, clock=clock).pending(100)) == 8


def test_backlog_merges_only_unoffered(tmp_path: Path, clock: FakeClock) -> None:
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=1, max_pending=20)
    drive(j, clock, 5)
    offered = j.pending(3)
    drive(j, clock, 30)
    pend = j.pending(1000)
    assert pend[:3] == offered  # what was offered keeps its seq and content
    assert len(pend) < 20
    assert sum(b["rx_bytes"] for _, b in pend) == 35_000
    assert [s for s, _ in pend] == sorted({s for s, _ in pend})
    assert pend[-1][0] == 35  # seqs are never reused: the merged body keeps the last one


def test_switch_flush_mcc_and_two_sims(tmp_path: Path, clock: FakeClock) -> None:
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=3600)
    meter = drive(j, clock, 3)
    meter.set_active_sim(ICCID, IMSI, "441")  # same SIM roams to another MCC the same day
    drive(j, clock, 2, meter=meter)
    j.flush("switch")
    meter.set_active_sim("8981000000000000002", "310150123456789", "310")
    drive(j, clock, 4, meter=meter)
    j.close()
    bodies = [b for _, b in UsageJournal(tmp_path / "u.log", clock=clock).pending(10)]
    # issue 10: one record per region, so each region is billed its own bytes
    assert [(b["iccid"][-1], b["mcc"], b["rx_bytes"]) for b in bodies] == [("1", ["440"], 3000), ("1", ["441"], 2000),
                                                                         ("2", ["310"], 4000)]


def _flushed_journal(path: Path, clock: FakeClock) -> list[int]:
    """A journal of several flushes (with a compaction); returns the file size after each."""
    j = UsageJournal(path, clock=clock, flush_interval_s=2, compact_at_bytes=300)
    meter = drive(j, clock, 4)
    j.ack(1)
    sizes = []
    for _ in range(4):
        drive(j, clock, 2, meter=meter)
        sizes.append(path.stat().st_size)
    return sizes


def test_truncated_at_every_offset_never_invents(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "u.log"
    _flushed_journal(path, clock)
    data = path.read_bytes()
    full = totals(UsageJournal(path, clock=clock))
    last_total = 0
    for cut in range(len(data) + 1):
        p = tmp_path / f"cut{cut}.log"
        p.write_bytes(data[:cut])
        j = UsageJournal(p, clock=clock)
        got = totals(j)
        assert got[0] <= full[0] and got[1] <= full[1]
        assert got[0] >= last_total or cut == 0  # a longer prefix never loses flushed bytes
        last_total = got[0]
        if j.baseline() is not None:
            # never invents: what is reported is consistent with the baseline it claims
            assert got[0] <= j.baseline().rx_bytes


@pytest.mark.slow  # about 30 s on a busy machine: make mutation leaves it out (tools/mutation_select.py)
def test_bit_flips_never_invent(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "u.log"
    _flushed_journal(path, clock)
    data = path.read_bytes()
    full = totals(UsageJournal(path, clock=clock))
    for pos in range(len(data)):
        for bit in (0, 3, 7):
            p = tmp_path / "flip.log"
            flipped = bytearray(data)
            flipped[pos] ^= 1 << bit
            p.write_bytes(bytes(flipped))
            got = totals(UsageJournal(p, clock=clock))
            assert got[0] <= full[0] and got[1] <= full[1]


def test_corrupt_but_crc_valid_record_is_skipped(tmp_path: Path, clock: FakeClock) -> None:
    from agent.recordlog import RecordLog
    path = tmp_path / "u.log"
    log = RecordLog(path)
    log.append(json.dumps(["U", 1, {"iccid": "x"}]).encode())
    log.append(b"not json")
    log.flush()
    j = UsageJournal(path, clock=clock)
    assert j.pending(10) == [] and j.skipped_records == 2


def test_flash_wear_per_flush_is_small(tmp_path: Path, clock: FakeClock) -> None:
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=60)
    drive(j, clock, 60 * 10, per_step=625_000)  # 10 minutes at 5 Mbit/s
    j.ack(j.pending(1000)[-1][0])
    # 8 MiB byte-threshold flushes every ~13 s at this rate; a day must stay under 1 MB
    assert j.bytes_written * 6 * 24 < 1_000_000


def test_write_failure_is_logged_retried_and_not_offered_early(tmp_path: Path, clock: FakeClock, caplog) -> None:
    """Flash gone read-only/full: the daemon keeps running, nothing is offered before it
    is durable, and the retry writes every byte exactly once."""
    state = tmp_path / "state"
    state.mkdir()
    j = UsageJournal(state / "u.log", clock=clock, flush_interval_s=2)
    meter = drive(j, clock, 2)
    assert totals(j) == (2000, 200)
    moved = tmp_path / "state.away"
    state.rename(moved)
    state.write_bytes(b"")  # a file where the directory was: every open fails (ENOTDIR)
    drive(j, clock, 2, meter=meter)  # flush fails inside add(): logged, not raised
    assert "flush failed" in caplog.text
    assert totals(j) == (2000, 200)  # the failed record is not offered
    state.unlink()
    moved.rename(state)
    drive(j, clock, 2, meter=meter)
    assert totals(j) == (6000, 600)
    assert totals(UsageJournal(state / "u.log", clock=clock)) == (6000, 600)


def test_ack_survives_clean_shutdown(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "u.log"
    j = UsageJournal(path, clock=clock, flush_interval_s=2)
    drive(j, clock, 6)
    j.ack(j.pending(10)[-2][0])
    j.close()  # no new usage, but the ack must be durable
    assert [s for s, _ in UsageJournal(path, clock=clock).pending(10)] == [3]


def test_a_trickle_is_flushed_every_15_minutes_not_every_minute(tmp_path: Path) -> None:
    """Issue 10: every record is later a message on the user's SIM."""
    from agent.usage.journal import TRICKLE_BYTES, TRICKLE_FLUSH_S

    clock = FakeClock(epoch=MIDNIGHT + 12 * 3600)  # noon: no day boundary in the way
    j = UsageJournal(tmp_path / "u.log", clock=clock, flush_interval_s=60, trickle_flush_s=TRICKLE_FLUSH_S)
    meter = drive(j, clock, 1)
    first = len(j.pending(1000))
    rx = meter.baseline().rx_bytes  # type: ignore[union-attr]
    for _ in range(int(TRICKLE_FLUSH_S // 60) - 1):  # keep-alive-sized usage each minute
        clock.advance(60)
        rx += 300
        j.add(meter.sample(base(rx)), meter.baseline(), clock.wall())  # type: ignore[arg-type]
    assert len(j.pending(1000)) == first  # no record for a trickle yet
    clock.advance(60)
    rx += 300
    j.add(meter.sample(base(rx)), meter.baseline(), clock.wall())  # type: ignore[arg-type]
    assert len(j.pending(1000)) == first + 1  # one record for the quarter hour
    clock.advance(60)
    rx += TRICKLE_BYTES
    j.add(meter.sample(base(rx)), meter.baseline(), clock.wall())  # type: ignore[arg-type]
    assert len(j.pending(1000)) == first + 2  # real usage: the minute again
    j.close()

"""Sequence epochs end to end (issue 20, finding 8): a journal that begins again at seq 1
is never taken for the one the cloud already holds.

The attack needs no attacker: a bit flip or a torn write in the first frame of the usage
journal (or the event outbox) drops the whole file on the next open, and the records
start again at seq 1. The reference cloud's high-water mark for the device's usage stream
is far above that: before epochs it discarded the new records as duplicates, acknowledged
them, and the device forgot them. Billed usage, lost without a trace.

Here the real CloudLink, mosquitto with TLS and the reference cloud's ingest: a first
life sends usage, the journal's first frame is corrupted, a second life sends more, and
the cloud's totals must equal every byte of both lives.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agent.clock import JST, FakeClock
from agent.cloud.link import CloudLink
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import ICCID, until

IMSI = "440100000100001"
BOOT = "boot-a"


def corrupt_first_frame(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # the first frame's magic: everything after it is unreadable too
    path.write_bytes(bytes(data))


async def one_life(pki: LabPki, broker: Broker, state: Path, clock: FakeClock, seconds: int, per_second: int,
                   ) -> tuple[int, str]:
    """Meter ``seconds`` of traffic into a journal drained by a real link; wait until the
    cloud acknowledged all of it. Returns (bytes counted, the journal's epoch)."""
    journal = UsageJournal(state / "usage.journal", clock=clock, flush_interval_s=1)
    meter = UsageMeter(clock, header_bytes=0, boot_id=BOOT)
    meter.set_active_sim(ICCID, IMSI, "440")
    rx = 10_000_000  # the kernel's counter: the first reading is the baseline, not usage
    meter.sample(Counters(3, rx, 0, 0, 0, boot_id=BOOT))
    journal.add([], meter.baseline(), meter.baseline_wall())
    link = CloudLink(device_config(pki, broker), state_dir=state / "link", sources=[journal])
    await link.start()
    try:
        assert await link.wait_connected(5)
        for _ in range(seconds):
            clock.advance(1)
            rx += per_second
            journal.add(meter.sample(Counters(3, rx, 0, 0, 0, boot_id=BOOT)), meter.baseline(), meter.baseline_wall())
            link.kick()
        await until(lambda: not journal.pending(10**6), 15)
        return seconds * per_second, journal.epoch_of(1)[0]
    finally:
        await link.stop()


def test_a_journal_reset_by_a_corrupt_first_frame_is_still_billed(broker: Broker, pki: LabPki,
                                                                 cloud: ReferenceCloud, tmp_path: Path) -> None:
    clock = FakeClock(epoch=datetime(2026, 3, 1, 12, tzinfo=JST).timestamp())
    state = tmp_path / "agent"
    first, epoch_a = run(one_life(pki, broker, state, clock, 30, 1000))
    assert cloud.totals()[ICCID]["rx_bytes"] == first
    corrupt_first_frame(state / "usage.journal")
    corrupt_first_frame(state / "link" / "events.outbox")
    second, epoch_b = run(one_life(pki, broker, state, clock, 10, 777))
    assert epoch_b != epoch_a
    assert cloud.totals()[ICCID]["rx_bytes"] == first + second, "every byte of both lives is billed, once"
    usage_marks = {k: v.upto for k, v in cloud.streams.items() if k.startswith("dev-a/usage")}
    assert set(usage_marks) == {f"dev-a/usage/{epoch_a}", f"dev-a/usage/{epoch_b}"}
    assert usage_marks[f"dev-a/usage/{epoch_b}"] < usage_marks[f"dev-a/usage/{epoch_a}"], \
        "the second life's seqs started below the first's mark, and still counted"

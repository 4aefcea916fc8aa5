"""The usage journal on a real file system that fills in the middle of a write (issue 20,
finding 7).

A tmpfs of a few pages is mounted; a filler file takes every free page, so the next
journal append fits only in the slack of its last page: the kernel takes part of the
frame (os.write returns a short count) and refuses the rest with ENOSPC. Before the fix
that part was fsynced and counted, and on the next open the torn frame hid every record
appended after it: billed usage lost silently. Now the record is not counted until all of
it is on disk, the partial frame is cut off, and once space is back everything (the
refused record and those after it) is there, to the byte.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.clock import JST, FakeClock
from agent.recordlog import RecordLog
from agent.usage.counters import Counters
from agent.usage.journal import UsageJournal
from agent.usage.meter import UsageMeter
from tests.conftest import need_root

PAGE = 4096
TMPFS_BYTES = 8 * PAGE
"""Small enough to fill at once, big enough for a journal of a few dozen records."""
MIN_FRAME = 40
"""No journal frame is smaller (10-byte header and a compact JSON record): a last page
with less slack than this cannot take a whole frame."""
ICCID, IMSI = "8981000000000000001", "440101234567890"


@pytest.fixture
def flash(tmp_path: Path) -> Iterator[Path]:
    need_root()
    mnt = tmp_path / "flash"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Take every free page of the file system; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (PAGE, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def slack(path: Path) -> int:
    return -path.stat().st_size % PAGE


def test_record_log_on_a_filling_tmpfs_never_hides_later_records(flash: Path) -> None:
    path = flash / "events.outbox"
    log = RecordLog(path)
    log.append(b"a" * (PAGE - 10 - 20))  # the file ends 20 bytes short of a page boundary
    log.flush()
    assert slack(path) == 20
    filler = fill(flash)
    log.append(b"b" * 200)  # 20 bytes fit, the rest does not
    with pytest.raises(Exception, match="cannot append"):
        log.flush()
    assert path.stat().st_size == PAGE - 20, "the partial frame was cut off"
    filler.unlink()
    log.append(b"c" * 50)
    log.flush()
    reopened = RecordLog(path)
    assert [r[:1] for r in reopened.records] == [b"a", b"b", b"c"] and reopened.dropped_tail == 0


def test_usage_journal_on_a_filling_tmpfs_loses_no_billed_byte(flash: Path) -> None:
    clock = FakeClock(epoch=datetime(2026, 3, 1, 12, tzinfo=JST).timestamp())
    path = flash / "usage.journal"
    journal = UsageJournal(path, clock=clock, flush_interval_s=1)
    meter = UsageMeter(clock, header_bytes=0, boot_id="boot-a")
    meter.set_active_sim(ICCID, IMSI, "440")
    rx = 0

    def second(nbytes: int) -> None:
        nonlocal rx
        clock.advance(1)
        rx += nbytes
        journal.add(meter.sample(Counters(3, rx, 0, 0, 0, boot_id="boot-a")), meter.baseline(), meter.baseline_wall())

    meter.sample(Counters(3, 0, 0, 0, 0, boot_id="boot-a"))
    journal.add([], meter.baseline(), meter.baseline_wall())
    while slack(path) >= MIN_FRAME:  # one flush per second: grow until the last page is nearly full
        second(1000)
    counted_before = rx
    filler = fill(flash)
    second(7)  # its flush meets a full disk: logged and retried, never counted
    assert sum(b["rx_bytes"] for _, b in journal.pending(10**6)) == counted_before
    assert slack(path) < MIN_FRAME, "the cut-back left the last page as it was"
    filler.unlink()
    second(11)  # space is back: the refused record and the new one are written
    assert sum(b["rx_bytes"] for _, b in journal.pending(10**6)) == rx
    reopened = UsageJournal(path, clock=clock)
    assert sum(b["rx_bytes"] for _, b in reopened.pending(10**6)) == rx == counted_before + 18

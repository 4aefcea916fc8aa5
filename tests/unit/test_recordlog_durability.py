"""What "durable" means for the one journal format (issue 20, findings 7 and 20): every
byte of a record on disk before it counts, a short write continued or cut back, no temp
file left behind by a failed atomic write, and a new journal's name made durable too.

os.write is patched here to behave as a nearly full disk does: it takes part of a
buffer and returns how much. tests/integration/test_journal_full_disk.py does the same on
a real tmpfs that fills in the middle of a write."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from agent import store
from agent.errors import JournalError
from agent.recordlog import RecordLog

REAL_WRITE = os.write
RECORDS = [b"first record", b"second record " * 20, b"third"]


class ShortDisk:
    """os.write that takes at most ``chunk`` bytes per call; after ``room`` bytes in all it
    raises ENOSPC, as a file system with that much space left does."""

    def __init__(self, chunk: int, room: int | None = None):
        self.chunk = chunk
        self.room = room
        self.calls = 0

    def __call__(self, fd: int, data: Any) -> int:
        self.calls += 1
        if self.room is not None and self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        take = min(len(data), self.chunk, self.room if self.room is not None else len(data))
        written = REAL_WRITE(fd, bytes(data[:take]))
        if self.room is not None:
            self.room -= written
        return written


def test_a_short_write_is_continued_until_every_byte_is_on_disk(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordLog(tmp_path / "j.log")
    disk = ShortDisk(chunk=7)
    monkeypatch.setattr(os, "write", disk)
    for payload in RECORDS:
        log.append(payload)
    log.flush()
    monkeypatch.setattr(os, "write", REAL_WRITE)
    assert disk.calls > 1, "the patched disk really did take the frames in pieces"
    reopened = RecordLog(tmp_path / "j.log")
    assert reopened.records == RECORDS and reopened.dropped_tail == 0


def test_a_write_the_disk_refuses_half_way_is_not_counted_and_later_records_survive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.log"
    log = RecordLog(path)
    log.append(b"durable before the disk filled")
    log.flush()
    size = path.stat().st_size
    monkeypatch.setattr(os, "write", ShortDisk(chunk=1 << 20, room=9))  # part of a header fits
    log.append(b"billed usage that does not fit")
    with pytest.raises(JournalError):
        log.flush()
    monkeypatch.setattr(os, "write", REAL_WRITE)
    assert path.stat().st_size == size, "the partial frame was cut off again"
    assert log.unflushed == 1, "the refused record is still queued, not counted as durable"
    log.append(b"appended after space came back")
    log.flush()
    assert RecordLog(path).records == [b"durable before the disk filled", b"billed usage that does not fit",
                                       b"appended after space came back"]


def test_a_partial_frame_that_could_not_be_cut_back_is_cut_before_the_next_append(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.log"
    log = RecordLog(path)
    log.append(b"one")
    log.flush()
    monkeypatch.setattr(os, "write", ShortDisk(chunk=1 << 20, room=5))
    monkeypatch.setattr(os, "ftruncate", lambda fd, n: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")))
    log.append(b"two")
    with pytest.raises(JournalError):
        log.flush()
    monkeypatch.undo()
    log.flush()
    assert RecordLog(path).records == [b"one", b"two"]


def test_the_first_append_makes_the_new_files_name_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real = store.fsync_dir
    monkeypatch.setattr(store, "fsync_dir", lambda p: (synced.append(Path(p)), real(p)))
    log = RecordLog(tmp_path / "new.log")
    log.append(b"x")
    log.flush()
    assert synced == [tmp_path]
    log.append(b"y")
    log.flush()
    assert synced == [tmp_path], "once per process, not per append"


@pytest.mark.parametrize("fails", ["write", "fsync", "replace"])
def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    fails: str) -> None:
    target = tmp_path / "replay.json"
    target.write_bytes(b"old")

    def refuse(*_: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, fails, refuse)
    with pytest.raises(OSError):
        store.atomic_write(target, b"new state")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.json"]
    assert target.read_bytes() == b"old"


def test_write_all_refuses_a_write_that_takes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.setattr(os, "write", lambda fd, data: 0)
        with pytest.raises(OSError) as err:
            store.write_all(fd, b"abc")
        assert err.value.errno == errno.ENOSPC
    finally:
        os.close(fd)

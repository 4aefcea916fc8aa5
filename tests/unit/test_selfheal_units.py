"""Issue 9, the pure parts: exit codes, how failures map to them, the status file keeping
``failed``, outage causes that grow clearer, and storage that cannot be written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agent import recordlog
from agent.clock import FakeClock, OffsetFileClock
from agent.core import exitcodes, failure
from agent.core.status import StatusFile
from agent.errors import ConfigError, JournalError, ModemError, PortClosed
from agent.health.outage import OutageLog
from agent.modem.recovery import RecoveryFailed
from agent.recordlog import RecordLog


def test_exit_codes_are_sysexits() -> None:
    assert (exitcodes.OK, exitcodes.FAILURE, exitcodes.MODEM_LOST, exitcodes.STATE_UNWRITABLE,
            exitcodes.STATE_IO, exitcodes.ALREADY_RUNNING, exitcodes.CONFIG_INVALID) == (0, 1, 69, 73, 74, 75, 78)


@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError("bad"), exitcodes.CONFIG_INVALID),
    (RecoveryFailed("gone"), exitcodes.MODEM_LOST),
    (PortClosed("cannot open /dev/ttyUSB2"), exitcodes.MODEM_LOST),
    # while serving, state that fails is restarted (74); 73 is preflight's, before start-up
    (JournalError("cannot append"), exitcodes.STATE_IO),
    (OSError(errno.EROFS, "read-only"), exitcodes.STATE_IO),
    (OSError(errno.ENOSPC, "full"), exitcodes.STATE_IO),
    (PermissionError(errno.EACCES, "denied"), exitcodes.STATE_IO),
    (ModemError("not registered after 90 s"), exitcodes.FAILURE),
    (RuntimeError("bug"), exitcodes.FAILURE),
])
def test_failures_map_to_codes(exc: BaseException, code: int) -> None:
    assert failure.code_for(exc) == code


def test_give_up_keeps_the_first_reason_in_the_status_file(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "status.json")
    give_up = failure.GiveUp(status)
    assert not give_up.failed and give_up.code == exitcodes.OK
    give_up(exitcodes.MODEM_LOST, "modem: no answer after the ladder")
    give_up(exitcodes.FAILURE, "task sample died")  # a consequence: not the reason
    assert give_up.code == exitcodes.MODEM_LOST
    assert status.data["state"] == "failed" and status.data["exit_code"] == 69
    assert status.data["error"] == "modem: no answer after the ladder"


def test_outage_cause_amended_and_backdated_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)
    log.start("no_data", "pdn_deactivated: nw_pdn_deact")
    log.amend_cause("no_data", "pdn_rejected: ESM cause #33")
    clock.advance(7)
    log.end("no_data")
    log.start("broker_unreachable", "broker_unreachable", ago=15)
    clock.advance(5)
    log.end("broker_unreachable")
    again = OutageLog(tmp_path, clock)
    data, broker = again.unreported()
    assert data["cause"] == "pdn_rejected: ESM cause #33" and data["duration_s"] == 7
    assert broker["kind"] == "broker_unreachable" and broker["duration_s"] == 20
    assert broker["end"] - broker["start"] == 20


def test_outage_log_on_unwritable_storage_keeps_events_and_never_raises(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    log = OutageLog(tmp_path, clock)

    def full(path: Path) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recordlog.store, "open_private_append", full)
    log.start("no_service", "no_signal")  # would have crashed the health task before
    clock.advance(3)
    log.end("no_service")
    monkeypatch.undo()
    log.start("no_data", "pdn_deactivated")  # storage back: everything queued is written
    reopened = OutageLog(tmp_path, clock)
    (closed,) = [o for o in reopened.unreported() if o["kind"] == "no_service"]
    assert closed["cause"] == "no_signal" and closed["duration_s"] == 3


def test_torn_append_on_a_full_disk_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC midway through a write leaves a torn frame; it must not hide later records."""
    log = RecordLog(tmp_path / "r.log")
    log.append(b"first")
    log.flush()
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recordlog.os, "write", half_then_enospc)
    log.append(b"second")
    with pytest.raises(JournalError):
        log.flush()
    monkeypatch.undo()
    log.append(b"third")
    log.flush()
    assert RecordLog(tmp_path / "r.log").records == [b"first", b"second", b"third"]


def test_offset_clock_steps_only_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "offset.json"
    clock = OffsetFileClock(str(path))
    base = clock.wall()
    path.write_text('{"offset_s": -3600}')
    clock._read_at = float("-inf")  # re-read now rather than in half a second
    assert -3601 < clock.wall() - base < -3599
    path.unlink()
    clock._read_at = float("-inf")
    assert abs(clock.wall() - base) < 1


def test_a_second_agent_on_the_same_state_is_refused_with_75(tmp_path: Path) -> None:
    """One lock (agent/pidlock.py, taken by run.py); its refusal maps to ALREADY_RUNNING."""
    from agent.errors import AlreadyRunning
    from agent.pidlock import PidLock

    first = PidLock.in_dir(tmp_path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as info:
            PidLock.in_dir(tmp_path).acquire()
        assert failure.code_for(info.value) == exitcodes.ALREADY_RUNNING
    finally:
        first.release()
    again = PidLock.in_dir(tmp_path)
    again.acquire()  # released with its holder
    again.release()

"""The PID lock: a second agent on the same state directory stops with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.core.exitcodes import ExitCode
from agent.errors import AlreadyRunning
from agent.pidlock import PidLock
from tests.conftest import REPO
from tests.packaging.identity import provisioned


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with PidLock.in_dir(tmp_path) as lock:
        assert (tmp_path / "agent.lock").read_text() == f"{os.getpid()}\n"
        assert (tmp_path / "agent.lock").stat().st_mode & 0o777 == 0o600
        with pytest.raises(AlreadyRunning) as info:
            PidLock.in_dir(tmp_path).acquire()  # flock is per open file: refused in-process too
        assert info.value.pid == os.getpid() and str(os.getpid()) in str(info.value)
        lock.release()
        PidLock.in_dir(tmp_path).acquire()  # released: free again


def test_lock_dies_with_its_holder(tmp_path: Path) -> None:
    """A SIGKILLed holder leaves the file behind but not the lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from agent.pidlock import PidLock
            PidLock.in_dir({str(tmp_path)!r}).acquire()
            print("held", flush=True)
            time.sleep(60)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(AlreadyRunning, match=str(holder.pid)):
            PidLock.in_dir(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    PidLock.in_dir(tmp_path).acquire()


def test_daemon_refuses_to_start_twice(tmp_path: Path) -> None:
    """``pocket-agent run`` on a locked state directory exits ALREADY_RUNNING, naming the holder
    (a provisioned identity: the start-up checks come first and must pass)."""
    unit = provisioned(tmp_path)
    unit.state_dir.mkdir(mode=0o700)
    with PidLock.in_dir(unit.state_dir):
        done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(unit.config)], cwd=REPO,
                              check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.ALREADY_RUNNING, done.stderr
    assert f"locked by process {os.getpid()}" in done.stderr


def test_invalid_configuration_exits_config_invalid(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('device_id = 5\n')
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg)], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.CONFIG_INVALID == 78, done.stderr

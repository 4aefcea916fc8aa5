"""Every way the config file is wrong ends in exit 78 with one line saying why (issue 20,
finding 15): a file that cannot be read (a directory, not permitted, not UTF-8) and a
number that would make a loop spin (0, negative, NaN, infinite) or wait for ever.
Before, the first three came out as Python tracebacks (exit 1, restarted by systemd
and procd in a loop) and the numbers were only type-checked."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent import config
from agent.core.exitcodes import ExitCode
from agent.errors import ConfigError
from agent.faces.cli import run as run_cli
from tests.unit.test_config import REQUIRED

REPO = Path(__file__).resolve().parents[2]


def pocket_agent_run(config_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(config_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def with_line(table: str, line: str) -> str:
    """REQUIRED with ``line`` added to ``[table]`` (created before [cloud] if need be)."""
    if table == "cloud":
        return REQUIRED.replace("[cloud]\n", f"[cloud]\n{line}\n")
    return REQUIRED.replace("[cloud]", f"[{table}]\n{line}\n[cloud]")


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.mkdir(), "Is a directory"),
    (lambda p: p.write_bytes(REQUIRED.encode() + b'\ntz = "\xff\xfe"\n'), "is not UTF-8"),
    (lambda p: p.write_text(with_line("health", "sample_interval_s = nan")), "'sample_interval_s' must be between"),
    (lambda p: p.write_text(with_line("usage", "flush_interval_s = 0")), "'flush_interval_s' must be between"),
])
def test_the_daemon_exits_78_with_one_line(tmp_path: Path, make, needle: str) -> None:
    path = tmp_path / "agent.toml"
    make(path)
    done = pocket_agent_run(path)
    assert done.returncode == ExitCode.CONFIG_INVALID == 78, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_a_config_it_may_not_read_is_exit_78_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(REQUIRED)

    def denied(self: Path, *args: object, **kwargs: object) -> str:  # root reads anything: refuse as EACCES would
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with caplog.at_level(logging.ERROR):
        code = run_cli.main(argparse.Namespace(config=str(path), user=None, check=False))
    assert code == 78
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot start: configuration: cannot read config file {path}: Permission denied (uid {os.geteuid()})"]


@pytest.mark.parametrize("table, line", [
    ("health", "sample_interval_s = 0"),
    ("health", "sample_interval_s = -1"),
    ("health", "radio_interval_s = inf"),
    ("usage", "report_interval_s = -0.5"),
    ("usage", "heartbeat_s = nan"),
    ("usage", "flush_interval_s = 1e9"),
    ("cloud", "port = 0"),
    ("cloud", "port = 70000"),
    ("cloud", "keepalive_s = 0"),
])
def test_numbers_outside_their_bounds_are_refused(tmp_path: Path, table: str, line: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(with_line(table, line))
    with pytest.raises(ConfigError, match=f"'{line.split()[0]}' must be between"):
        config.load(path)


def test_the_bounds_admit_the_defaults_and_the_labs_fast_cadences(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(with_line("usage", "report_interval_s = 1.5\nflush_interval_s = 1.5\nheartbeat_s = 90"))
    cfg = config.load(path)
    assert (cfg.report_interval_s, cfg.flush_interval_s, cfg.heartbeat_s) == (1.5, 1.5, 90.0)
    assert cfg.sample_interval_s == config.SAMPLE_INTERVAL_S


def test_the_board_profile_is_read_the_same_way(tmp_path: Path) -> None:
    from agent.boardprofile import load_profile

    (tmp_path / "profile.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read board profile .*: Is a directory"):
        load_profile(tmp_path / "profile.toml")

"""No core dump can carry a staged SIM's Ki and OPc (issue 20, finding 17).

The agent makes itself non-dumpable (prctl PR_SET_DUMPABLE 0) with a core size limit of
0 before it reads any key, and the packaged units say the same for the moments before
Python runs (systemd LimitCORE=0, procd limits core). Checked in a child process, as the
daemon runs: a crash there would make no core file, and no other process of the agent's
user could ptrace it or read its memory."""

from __future__ import annotations

import argparse
import configparser
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from agent import hardening
from agent.core.exitcodes import ExitCode
from agent.faces.cli import run as run_cli
from tests.conftest import REPO

CHILD = """
import resource
from agent import hardening
before = hardening.dumpable()
ok = hardening.no_core_dumps()
print(before, ok, hardening.dumpable(), resource.getrlimit(resource.RLIMIT_CORE))
"""


def test_the_agent_makes_itself_non_dumpable() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip().split(maxsplit=3) == ["True", "True", "False", "(0, 0)"], done.stdout + done.stderr


def test_run_hardens_before_it_reads_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(hardening, "no_core_dumps", lambda: order.append("hardened") or True)
    real_load = run_cli.config_mod.load
    monkeypatch.setattr(run_cli.config_mod, "load", lambda path: (order.append("config"), real_load(path))[1])
    args = argparse.Namespace(config=str(tmp_path / "missing.toml"), user=None, check=False)
    assert run_cli.main(args) == ExitCode.CONFIG_INVALID
    assert order == ["hardened", "config"]


def test_a_failing_prctl_is_logged_and_tolerated(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def refused(option: int, arg: int = 0) -> int:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(hardening, "_prctl", refused)
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    monkeypatch.setattr(resource, "setrlimit", lambda *a: None)  # leave the test process's limit alone
    assert hardening.no_core_dumps() is False
    assert "PR_SET_DUMPABLE" in caplog.text
    assert resource.getrlimit(resource.RLIMIT_CORE) == (soft, hard)


def test_the_systemd_unit_allows_no_core_file() -> None:
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "packaging/systemd/pocket-agent.service")
    assert unit["Service"]["LimitCORE"] == "0"

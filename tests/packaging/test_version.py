"""``pocket-agent --version`` names the release and the build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__, version
from tests.conftest import REPO


def test_version_from_a_checkout_names_the_git_build() -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "--version"], cwd=REPO, check=False, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                          text=True).stdout.strip()
    assert done.stdout.startswith(f"pocket-agent {__version__} (build git ")
    assert head in done.stdout


def test_build_stamp_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = tmp_path / "_build.txt"
    stamp.write_text("deb 0.1.0-1 git 646ba44 2026-11-27\n")
    monkeypatch.setattr(version, "BUILD_STAMP", stamp)
    assert version.describe() == f"{__version__} (build deb 0.1.0-1 git 646ba44 2026-11-27)"

"""Packages built once per test session, into a temporary directory (not build/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, need_tool


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_tool("dpkg-deb")
    out = tmp_path_factory.mktemp("packages")
    subprocess.run([sys.executable, str(REPO / "packaging/build.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    return {"deb": next(out.glob("*.deb")), "ipk": next(out.glob("*.ipk"))}

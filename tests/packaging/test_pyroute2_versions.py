"""The data interface under pyroute2 0.7.9, the version OpenWrt's stable branches package
(Debian 12 has 0.7.2): agent/net/link.py must not need the 0.9-only ``AsyncIPRoute``.

As for paho-mqtt (test_paho_versions.py): pyroute2 0.7.9 is installed with pip into a
cache directory under build/ once and put first on PYTHONPATH of a pytest subprocess that
runs the netlink tests on real namespaces and veth pairs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, _unavailable, need_root

PYROUTE2_OLD = "0.7.9"
CACHE = REPO / "build" / "test-cache" / f"pyroute2-{PYROUTE2_OLD}"


@pytest.fixture(scope="module")
def pyroute2_old() -> Path:
    if not (CACHE / "pyroute2" / "__init__.py").exists():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(CACHE),
                               f"pyroute2=={PYROUTE2_OLD}"], capture_output=True, text=True, timeout=300,
                              check=False)
        if done.returncode != 0:
            _unavailable(f"cannot install pyroute2 {PYROUTE2_OLD} from PyPI: {done.stderr.strip()[-300:]}")
    return CACHE


def test_wan_link_passes_its_tests_on_pyroute2_0_7(pyroute2_old: Path) -> None:
    need_root()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pyroute2_old), str(REPO)])}
    code = "import pyroute2, agent.net.link as l; print(pyroute2.__file__, l.AsyncIPRoute is None)"
    probe = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=True)
    path, old_api = probe.stdout.split()
    assert path.startswith(str(pyroute2_old)) and old_api == "True"  # really 0.7, really the blocking path
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/integration/test_netlink.py"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=240, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary

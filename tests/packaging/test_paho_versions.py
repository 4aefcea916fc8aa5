"""The cloud link under paho-mqtt 1.6.1, the version every stable OpenWrt branch and
Debian 12 ship (the decision in packaging/README.md: one adapter, both versions).

paho-mqtt 1.6.1 is installed with pip into a cache directory under build/ (once; later
runs reuse it) and put first on PYTHONPATH of a pytest subprocess that runs the cloud
link's own tests against a real mosquitto, so they exercise exactly what they exercise
under 2.x.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, _unavailable, need_tool

PAHO_1 = "1.6.1"
CACHE = REPO / "build" / "test-cache" / f"paho-mqtt-{PAHO_1}"
LINK_TESTS = ["tests/cloud/test_link.py", "tests/cloud/test_paho_compat.py", "tests/cloud/test_connect_once.py"]


@pytest.fixture(scope="module")
def paho_1() -> Path:
    if not (CACHE / "paho" / "mqtt" / "client.py").exists():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(CACHE),
                               f"paho-mqtt=={PAHO_1}"], capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            _unavailable(f"cannot install paho-mqtt {PAHO_1} from PyPI: {done.stderr.strip()[-300:]}")
    return CACHE


def test_cloud_link_passes_its_tests_on_paho_1_6_1(paho_1: Path) -> None:
    need_tool("mosquitto")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(paho_1), str(REPO)])}
    code = "import paho.mqtt, agent.cloud.paho_compat as c; print(paho.mqtt.__version__, c.PAHO_2)"
    probe = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60, check=True)
    assert probe.stdout.split() == [PAHO_1, "False"]  # really the old paho, really the 1.x path
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore::DeprecationWarning", *LINK_TESTS], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=240, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary


def test_every_agent_module_imports_on_paho_1_6_1(paho_1: Path) -> None:
    """The daemon as Debian 12 and OpenWrt would run it: every module of ``agent`` imports
    with paho-mqtt 1.6.1 (a 2.x-only import anywhere would stop the service at start)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(paho_1), str(REPO)])}
    code = ("import importlib, pkgutil, paho.mqtt, agent\n"
            "assert paho.mqtt.__version__ == '" + PAHO_1 + "', paho.mqtt.__version__\n"
            "names = [m.name for m in pkgutil.walk_packages(agent.__path__, 'agent.')\n"
            "         if not m.name.endswith('__main__')]  # importing it would run the CLI\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "print(len(names))")
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) > 50  # really walked the package

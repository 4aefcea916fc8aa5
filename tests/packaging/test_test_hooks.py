"""A packaged build ignores the lab's test hooks (issue 20, finding 19).

``POCKET_AGENT_CLOCK_OFFSET_FILE`` moves the agent's wall clock (expiry checks, billing
days, certificate validity) and ``POCKET_AGENT_SWAP_HOLD`` stalls a swap inside a phase.
The virtual board needs both; a router must honour neither, whatever its environment
says. The switch is the package build's stamp (``agent/_build.txt``), which the source
tree never has. Checked on the code exactly as the .deb installs it (unpacked with
dpkg-deb), beside the source tree, with the same environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent import testhooks
from tests.conftest import REPO, need_tool

PROBE = """
import json, logging
logging.basicConfig(level=logging.WARNING)
from agent import testhooks
from agent.core import swap
from agent.faces.cli import run
clock = run.lab_clock_hook()
print(json.dumps({"allowed": testhooks.allowed(), "hold": swap.hold_from_env(),
                  "clock_offset": None if clock is None else round(clock._system_wall() - __import__("time").time())}))
"""


def probe(code_dir: Path, tmp_path: Path) -> tuple[dict, str]:
    offset = tmp_path / "clock_offset.json"
    offset.write_text(json.dumps({"offset_s": 86400.0}))
    env = {**os.environ, "PYTHONPATH": str(code_dir), "POCKET_AGENT_CLOCK_OFFSET_FILE": str(offset),
           "POCKET_AGENT_SWAP_HOLD": "route:30"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout), done.stderr


def test_the_source_tree_honours_the_hooks(tmp_path: Path) -> None:
    assert not testhooks.BUILD_STAMP.exists(), "the source tree must never carry a package stamp"
    found, _ = probe(REPO, tmp_path)
    assert found == {"allowed": True, "hold": {"route": 30.0}, "clock_offset": 86400}


def test_a_packaged_build_ignores_them(packages: dict[str, Path], tmp_path: Path) -> None:
    need_tool("dpkg-deb")
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(packages["deb"]), str(root)], check=True, timeout=60)
    code = root / "usr/lib/pocket-agent"
    assert (code / "agent/_build.txt").exists()
    found, log = probe(code, tmp_path)
    assert found == {"allowed": False, "hold": {}, "clock_offset": None}
    for hook in testhooks.HOOKS:
        assert f"{hook} is set but ignored" in log

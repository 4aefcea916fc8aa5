"""The init script hands the state directory to the agent's user without following a link
planted in it (issue 20, finding 20).

The attack: the agent's user owns its state directory, so whoever runs as that user puts
a hard link to a root-owned file (or a symlink to one) in it; at the next start the init
script, running as root, used to ``chown -R`` the directory and so gave that file away.
Here the init script runs under the stubbed procd of tests/packaging (procd_stubs.sh) but
with the real ``chown`` and the real ``pocket-agent own-state``, as root, for the user
``nobody``: the planted links' targets stay root's, everything the agent should own
becomes its own, and the instance is still started (with no core file allowed).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from agent.cloud import keystore as ks
from agent.stateowner import give_tree
from tests.conftest import REPO, need_root
from tests.packaging.identity import provisioned

INIT = REPO / "packaging/openwrt/files/pocket-agent.init"
STUBS = Path(__file__).with_name("procd_stubs.sh")
NOBODY, NOGROUP = 65534, 65534


def plant(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A state directory as provisioning (root) left it, with an intruder's links in it."""
    outside = tmp_path / "etc"
    outside.mkdir()
    victims = {name: outside / name for name in ("shadow", "network", "secrets")}
    for path in victims.values():
        path.write_text("root's\n")
        path.chmod(0o600)
    (outside / "secrets").unlink()
    (outside / "secrets").mkdir()
    state = tmp_path / "flash" / "state"
    (state / "console").mkdir(parents=True)
    (state / "usage.journal").write_bytes(b"provisioned by root")
    (state / "console" / "technicians.json").write_text("{}")
    os.link(victims["shadow"], state / "shadow-link")          # a hard link: indistinguishable by name
    (state / "network-link").symlink_to(victims["network"])    # a symlink to a file
    (state / "console" / "dir-link").symlink_to(victims["secrets"])  # a symlink to a directory
    os.mkfifo(state / "fifo")
    return state, victims


def owner(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


LAUNCHER = """#!/bin/sh
# /usr/bin/pocket-agent for this host: the start-up checks (run --check --user nobody) are
# run for root, who owns this test's key store; own-state runs for nobody, for real.
[ "$1" = run ] && {{ for a; do shift; [ "$a" = nobody ] && a=root; set -- "$@" "$a"; done; }}
exec {python} -m agent "$@"
"""


def test_start_gives_the_state_to_the_agent_and_nothing_else(tmp_path: Path) -> None:
    need_root()
    state, victims = plant(tmp_path)
    unit = provisioned(tmp_path / "provisioned")
    launcher = tmp_path / "pocket-agent"
    launcher.write_text(LAUNCHER.format(python=sys.executable))
    launcher.chmod(0o755)
    script = (f'. "{STUBS}"; unset -f chown; . "{INIT}"; PROG="{launcher}"; '
              f'AGENT_TOML="{tmp_path}/agent.toml.generated"; BASE_TOML="{unit.config}"; '
              f'PROVISIONED="{unit.current(ks.CERT)}"; RUN_DIR="{tmp_path}/run"; '
              f'PROFILE_DIR="{REPO}/board/profiles"; VOLATILE_DIRS="/var /dev"; start_service')
    env = {**os.environ, "PYTHONPATH": str(REPO), "UCI_enabled": "1", "UCI_state_dir": str(state),
           "UCI_user": "nobody", "UCI_group": "nogroup"}
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                          check=False)
    calls = done.stdout.splitlines()
    for victim in victims.values():
        assert owner(victim) == (0, 0), f"{victim.name} was given away"
    for mine in (state, state / "console", state / "usage.journal", state / "console" / "technicians.json"):
        assert owner(mine) == (NOBODY, NOGROUP), mine
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert owner(state / "shadow-link") == (0, 0) and owner(state / "fifo") == (0, 0)
    assert calls and calls[-1] == "close_instance", done.stdout + done.stderr
    assert "set limits core=0 0" in calls


def test_the_walk_reports_what_it_left_alone(tmp_path: Path) -> None:
    need_root()
    state, _ = plant(tmp_path)
    done = give_tree(state, NOBODY, NOGROUP)
    assert done.changed == 4 and done.unchanged == 0
    left = sorted(line.split(":")[0].rsplit("/", 1)[-1] for line in done.skipped or [])
    assert left == ["dir-link", "fifo", "network-link", "shadow-link"]
    again = give_tree(state, NOBODY, NOGROUP)
    assert again.changed == 0 and again.unchanged == 4

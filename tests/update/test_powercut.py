"""SIGKILL at every step of install and rollback leaves exactly one working version.

Each step is run by a real process (powercut_child.py) that kills itself with SIGKILL
just before the step's durable action, once per step of the list its uninterrupted run
printed. After each kill: the link names one complete tree, or none (the package's own),
and that tree answers ``pocket-agent --version`` with the old or the new version; then a
new process finishes the work (``install.recover`` + the same call again) and the end
state is the one an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.update import boot, install, journal, machine, slots
from agent.update.manifest import parse

REPO = Path(__file__).resolve().parents[2]


def offer(state_dir: Path, manifest_file: Path) -> None:
    """The journal as the updater leaves it once the artifact is fetched and verified."""
    m = parse(json.loads(manifest_file.read_text()))
    state = machine.offered(journal.load(state_dir), m.to_dict(), m.version, m.rollout, m.sha256, m.floor)
    journal.save(state_dir, machine.advance(state, "fetched"))


def child(state_dir: Path, action: str, kill_at: str, artifact: Path | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "tests.update.powercut_child", str(state_dir), str(REPO), action, kill_at]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(argv + ([str(artifact)] if artifact else []), capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60, check=False)


def running_version(state_dir: Path) -> str:
    """What would run now: the linked tree's ``--version``, or the package's (this tree)."""
    tree = slots.current_tree(state_dir) or REPO
    out = subprocess.run(boot.child_argv(tree, ["--version"]), capture_output=True, text=True, timeout=60,
                         check=True)
    return out.stdout.split()[1]


def steps_of(state_dir_factory, action: str, prepare, artifact: Path | None = None) -> list[str]:
    state_dir = state_dir_factory("dry")
    prepare(state_dir)
    run = child(state_dir, action, "none", artifact)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


@pytest.fixture()
def dirs(tmp_path):
    def make(name: str) -> Path:
        return tmp_path / name / "state"
    return make


@pytest.fixture()
def two_releases(cut):
    """0.2.0 (committed first) and 0.3.0 (the update under test)."""
    return cut(version="0.2.0", rollout=1), cut(version="0.3.0", rollout=2)


def committed(state_dir: Path, release: tuple[Path, Path]) -> None:
    offer(state_dir, release[1])
    install.install(state_dir, release[0], REPO)
    install.commit(state_dir)
    install.reported(state_dir)


def test_sigkill_at_every_install_step_leaves_one_working_version(dirs, two_releases):
    old, new = two_releases

    def prepare(state_dir: Path) -> None:
        committed(state_dir, old)
        offer(state_dir, new[1])

    steps = steps_of(dirs, "install", prepare, new[0])
    assert steps == ["fetched#1", "unpack#1", "unpacked-fsynced#1", "unpacked#1", "link#1", "switched#1"]
    for n, step in enumerate(steps):
        state_dir = dirs(f"kill{n}")
        prepare(state_dir)
        killed = child(state_dir, "install", step, new[0])
        assert killed.returncode == -9, f"{step}: {killed.stderr}"
        assert running_version(state_dir) in ("0.2.0", "0.3.0"), step
        install.recover(state_dir)
        state = install.install(state_dir, new[0], REPO)
        assert state.phase == "trial" and running_version(state_dir) == "0.3.0", step
        assert state.previous_version == "0.2.0", step
        leftovers = {p.name for p in slots.releases_dir(state_dir).iterdir()}
        assert leftovers == {slots.tree_name("0.2.0", parse(json.loads(old[1].read_text())).sha256),
                             slots.current_tree(state_dir).name}, step


def test_sigkill_at_every_rollback_step_ends_on_the_old_version(dirs, two_releases):
    old, new = two_releases

    def prepare(state_dir: Path) -> None:
        committed(state_dir, old)
        offer(state_dir, new[1])
        install.install(state_dir, new[0], REPO)

    steps = steps_of(dirs, "rollback", prepare)
    assert steps == ["trial#1", "link#1", "rolled-back-link#1"]
    for n, step in enumerate(steps):
        state_dir = dirs(f"kill{n}")
        prepare(state_dir)
        assert child(state_dir, "rollback", step).returncode == -9
        assert running_version(state_dir) in ("0.2.0", "0.3.0"), step
        choice = boot.choose(state_dir, REPO, pid=12345)  # the next start, as the package's code
        state = journal.load(state_dir)
        assert state.phase == "rolled_back" or (state.phase == "trial" and choice.action == "trial"), step
        if state.phase == "trial":  # cut before the phase was written: the trial goes on
            state = install.rollback(state_dir, "crashed (exit 1)")
        assert state.phase == "rolled_back" and running_version(state_dir) == "0.2.0", step


def test_a_first_update_over_the_package_rolls_back_to_the_package(dirs, cut):
    artifact, manifest = cut(version="0.2.0")
    state_dir = dirs("first")
    offer(state_dir, manifest)
    install.install(state_dir, artifact, REPO)
    assert running_version(state_dir) == "0.2.0"
    install.rollback(state_dir, "never_serving")
    assert slots.current_tree(state_dir) is None and running_version(state_dir) == "0.1.0"
    assert not any(slots.releases_dir(state_dir).iterdir())


def test_a_crash_loop_is_rolled_back_by_the_start_count(dirs, cut):
    """The guard itself killed in every trial (a power cut each time): each start counts,
    and past MAX_ATTEMPTS the next start rolls back without trying the release again."""
    artifact, manifest = cut(version="0.2.0")
    state_dir = dirs("loop")
    offer(state_dir, manifest)
    install.install(state_dir, artifact, REPO)
    for pid in range(1, machine.MAX_ATTEMPTS + 1):
        assert boot.choose(state_dir, REPO, pid).action == "trial"
    assert boot.choose(state_dir, REPO, 99).action == "here"
    state = journal.load(state_dir)
    assert state.phase == "rolled_back" and state.reason.startswith("crash_loop")

"""Install beside, switch, commit, roll back: the machine's steps on disk, each one resumable.

Every function reads the journal, runs the steps from the phase it finds, and writes
each next phase before the step it names (machine.py): called again after a SIGKILL at
any point it finishes the same work, and at every point the ``current`` link names one
complete tree or none (the package's). ``on_step`` is called with each step's name just
before it runs, which is where tests/unit/test_update_powercut.py kills the process.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path

from agent.update import journal, machine, slots
from agent.update.machine import UpdateState
from agent.update.manifest import parse

LOGGER = logging.getLogger(__name__)


def new_tree(state_dir: Path, state: UpdateState) -> Path:
    """Where the release of ``state`` lives once unpacked."""
    manifest = parse(state.manifest)
    return slots.releases_dir(state_dir) / slots.tree_name(manifest.version, manifest.sha256)


def install(state_dir: Path, artifact: Path, own_tree: Path, on_step: slots.Step = slots._no_step) -> UpdateState:
    """From ``fetched`` (a verified artifact) to ``trial`` (the link names the new tree).

    ``own_tree`` is the running code's tree: the version to go back to when the link does
    not name a release yet."""
    state = journal.load(state_dir)
    tree = new_tree(state_dir, state)
    if state.phase == "fetched":
        on_step("fetched")
        slots.unpack(artifact, state_dir, tree.name, on_step)
        state = journal.save(state_dir, machine.advance(state, "unpacked"))
    if state.phase == "unpacked":
        previous = slots.current_tree(state_dir)
        on_step("unpacked")
        state = journal.save(state_dir, machine.switching(state, str(previous or ""),
                                                          slots.tree_version(previous or own_tree)))
    if state.phase == "switching":
        slots.switch(state_dir, tree, on_step)
        on_step("switched")
        state = journal.save(state_dir, replace(machine.advance(state, "trial"), attempts=0, trial_pid=0))
    return state


def recover(state_dir: Path) -> UpdateState:
    """What a start finds after a cut: ``switching`` resolved by looking at the link,
    ``rolling_back`` finished. Other phases need nothing before the agent runs."""
    state = journal.load(state_dir)
    if state.phase == "switching":
        target = slots.current_tree(state_dir)
        state = journal.save(state_dir, machine.resolve_switching(
            state, str(target or ""), str(new_tree(state_dir, state).resolve())))
    if state.phase == "rolling_back":
        state = rollback(state_dir, state.reason, state.log_tail)
    return state


def rollback(state_dir: Path, reason: str, log_tail: tuple[str, ...] = (),
             on_step: slots.Step = slots._no_step) -> UpdateState:
    """Back to the tree the link named before the switch (the package's when none), the
    failure kept in the journal for the report; the failed tree and artifact removed."""
    state = journal.load(state_dir)
    if state.phase in ("switching", "trial"):
        on_step("trial")
        state = journal.save(state_dir, machine.rolling_back(state, reason, log_tail))
    if state.phase == "rolling_back":
        previous = Path(state.previous) if state.previous and slots.is_tree(Path(state.previous)) else None
        slots.switch(state_dir, previous, on_step)
        on_step("rolled-back-link")
        state = journal.save(state_dir, machine.rolled_back(state))
        _tidy(state_dir, {previous} if previous else set())
        LOGGER.warning("update to %s rolled back (%s); running %s again", state.version, state.reason,
                       state.previous_version or "the installed package")
    return state


def commit(state_dir: Path) -> UpdateState:
    """The trial passed the health gate: the new version stays, the old trees go."""
    state = journal.load(state_dir)
    if state.phase == "trial":
        state = journal.save(state_dir, machine.advance(state, "committed"))
        current = slots.current_tree(state_dir)
        _tidy(state_dir, {current} if current else set())
        LOGGER.info("update to %s committed", state.version)
    return state


def reported(state_dir: Path) -> UpdateState:
    """The outcome (committed or rolled back) reached the platform: back to idle, keeping
    the floor and rollout seen."""
    state = journal.load(state_dir)
    if state.phase in ("committed", "rolled_back"):
        state = journal.save(state_dir, replace(machine.advance(state, "idle"), log_tail=()))
    return state


def _tidy(state_dir: Path, keep: set[Path]) -> None:
    """Release trees but ``keep``, and every artifact file, off the flash."""
    slots.prune(state_dir, keep)
    for artifact in journal.update_dir(state_dir).glob("artifact-*"):
        with contextlib.suppress(FileNotFoundError):
            artifact.unlink()

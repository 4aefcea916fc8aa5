"""The update's state on disk: one small JSON file, replaced atomically and fsync'd.

``agent.store.atomic_write_json`` (temp file, fsync, rename, fsync of the directory) is
the only way it is written, so a power cut leaves either the old phase or the new one,
never a torn file; machine.py says why that is enough.
"""

from __future__ import annotations

from pathlib import Path

from agent import store
from agent.update.machine import UpdateState

UPDATE_DIR = "update"
"""Under the state directory: the journal, the partial artifact and the versioned trees."""
JOURNAL = "state.json"


def update_dir(state_dir: Path) -> Path:
    return Path(state_dir) / UPDATE_DIR


def load(state_dir: Path) -> UpdateState:
    return UpdateState.from_dict(store.read_json(update_dir(state_dir) / JOURNAL))


def save(state_dir: Path, state: UpdateState) -> UpdateState:
    """Write ``state`` durably; returns it, so a step reads ``state = save(dir, next)``."""
    store.ensure_private_dir(update_dir(state_dir))
    store.atomic_write_json(update_dir(state_dir) / JOURNAL, state.to_dict())
    return state

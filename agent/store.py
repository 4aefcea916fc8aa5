"""Durable state on flash: one small module so every writer follows the same rules.

Rules (docs/architecture.md): one writer per file; whole-file state is replaced
atomically (write a temp file, fsync it, rename over, fsync the directory); private
files are created with mode 0600 *from the first byte* (``os.open`` with the mode and
``O_EXCL``), never chmod-ed after the fact, so a key is never world-readable even for
an instant.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
"""Keys, sealed-profile state and anti-replay counters: readable by the agent only."""

PUBLIC_MODE = 0o644
"""Status files that technicians and other daemons may read."""


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` or raise OSError.

    ``os.write`` may take only part of a buffer (a nearly full disk takes what fits in
    its last block and refuses the rest on the next call): the rest is written again
    until nothing is left, and a write that takes nothing at all is ENOSPC, never an
    endless loop. A caller that gets OSError knows some prefix may be on disk.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "write took no bytes")
        view = view[written:]


def atomic_write(path: Path | str, data: bytes, *, mode: int = PRIVATE_MODE) -> None:
    """Replace ``path`` with ``data`` so a reader sees either the old or the new file.

    The temp file is created with ``mode`` at open time (O_CREAT|O_EXCL), so private
    data never exists on disk with wider permissions. A write, fsync or rename that
    fails removes the temp file again (issue 20): a full disk must not fill up further
    with half-written copies of state, and a private half copy must not linger.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path | str, obj: Any, *, mode: int = PRIVATE_MODE) -> None:
    """Atomically replace ``path`` with ``obj`` as compact, sorted JSON."""
    atomic_write(path, json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), mode=mode)


def read_json(path: Path | str, default: Any = None) -> Any:
    """Read a JSON state file; a missing file gives ``default``.

    A corrupt file also gives ``default`` (logged): atomic_write never leaves a torn
    file, so corruption means flash trouble, and refusing to start would be worse.
    """
    try:
        return json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return default
    except (ValueError, OSError) as exc:
        LOGGER.error("state file %s unreadable (%s); starting from default", path, exc)
        return default


def open_private_append(path: Path | str) -> int:
    """Open (creating with 0600 if needed) a file for appending; returns a raw fd."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_MODE)


def ensure_private_dir(path: Path | str) -> Path:
    """Create a state directory readable by the agent only (0700)."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path

"""Versioned code trees beside each other and the one link that says which runs.

::

    <state_dir>/update/releases/0.2.0-1a2b3c4d/agent/...   a release, complete or absent
    <state_dir>/update/current -> releases/0.2.0-1a2b3c4d  the version that runs

Why the state directory and not /usr/lib/pocket-agent: the package's tree is root's and
read-only to the service (``ProtectSystem=strict``); the state directory is the one place
the agent may write that survives a reboot on Debian (/var/lib) and OpenWrt (the flash
overlay). The package's own tree stays untouched: with no ``current`` link it runs, and
it is always there to go back to (docs/update.md, "Where versions live").

Atomicity: a tree is unpacked under a temporary name, every file fsync'd, then renamed
into place (a rename is atomic, and the directory is fsync'd after it), so a name under
``releases/`` is always a complete tree. The link is switched by creating a new link under
a temporary name and renaming it over ``current``: POSIX rename replaces the old link in
one step, so a reader (the next start) sees the old target or the new one, never none.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from agent import store
from agent.errors import BadArtifact
from agent.update.journal import update_dir

LOGGER = logging.getLogger(__name__)

RELEASES = "releases"
LINK = "current"
MAX_MEMBERS = 2000
"""The agent's tree has about 200 files; an archive with ten times that is not a release
(and unpacking it would fill the flash)."""
MAX_UNPACKED_BYTES = 32 * 1024 * 1024
"""The tree is about 3 MB of sources; a tar that inflates past 32 MB is refused (a
decompression bomb) before it fills the state directory's file system."""
_VERSION_RE = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)

Step = Callable[[str], None]
"""Called with the name of each durable step just before it runs (tests kill there)."""


def _no_step(name: str) -> None:
    """The default: nothing happens between steps."""


def releases_dir(state_dir: Path) -> Path:
    return update_dir(state_dir) / RELEASES


def link_path(state_dir: Path) -> Path:
    return update_dir(state_dir) / LINK


def is_tree(path: Path) -> bool:
    """A code tree: a directory holding the ``agent`` package."""
    return (path / "agent" / "__init__.py").is_file()


def tree_version(tree: Path) -> str:
    """The ``__version__`` a tree declares ("" when it cannot be read)."""
    try:
        match = _VERSION_RE.search((tree / "agent" / "__init__.py").read_text())
    except OSError:
        return ""
    return match.group(1) if match else ""


def current_tree(state_dir: Path) -> Path | None:
    """The tree the link names, if the link exists and names a complete tree."""
    link = link_path(state_dir)
    if not link.is_symlink():
        return None
    target = (link.parent / os.readlink(link)).resolve()
    return target if is_tree(target) else None


def link_target(state_dir: Path) -> str:
    """The link's target as written ("" when there is no link): what the journal compares."""
    link = link_path(state_dir)
    return os.readlink(link) if link.is_symlink() else ""


def tree_name(version: str, sha256: str) -> str:
    """A release's directory name: its version and the start of its hash (two builds of one
    version never share a directory)."""
    return f"{version}-{sha256[:8]}"


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members if every one is a plain file or directory under ``agent/`` and
    the whole stays within the bounds; BadArtifact otherwise (no links, devices, ``..``)."""
    members, total = tar.getmembers(), 0
    if len(members) > MAX_MEMBERS:
        raise BadArtifact(f"artifact holds {len(members)} entries, more than {MAX_MEMBERS}")
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not parts or parts[0] not in ("agent", "."):
            raise BadArtifact(f"artifact entry {member.name[:80]!r} is outside the code tree")
        if not (member.isfile() or member.isdir()):
            raise BadArtifact(f"artifact entry {member.name[:80]!r} is not a file or directory")
        total += member.size
    if total > MAX_UNPACKED_BYTES:
        raise BadArtifact(f"artifact unpacks to {total} bytes, more than {MAX_UNPACKED_BYTES}")
    return members


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    store.fsync_dir(root)


def unpack(artifact: Path, state_dir: Path, name: str, on_step: Step = _no_step) -> Path:
    """The artifact unpacked to ``releases/<name>``, complete, durable; returns its path.

    A tree of that name left by an earlier attempt is replaced (it may be another build
    that failed its trial); a temporary left by a cut is removed first."""
    releases = store.ensure_private_dir(releases_dir(state_dir))
    final, tmp = releases / name, releases / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    on_step("unpack")
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            members = _safe_members(tar)
            tmp.mkdir(mode=0o700)
            for member in members:
                target = tmp / member.name
                if member.isdir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has a body
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadArtifact(f"artifact does not unpack: {exc}") from None
    except BaseException:  # a full disk (OSError) or a stop: no half tree stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not is_tree(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadArtifact("artifact holds no agent package")
    _fsync_tree(tmp)
    on_step("unpacked-fsynced")
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    store.fsync_dir(releases)
    return final


def switch(state_dir: Path, tree: Path | None, on_step: Step = _no_step) -> None:
    """Make ``tree`` the one that runs (None: the package's own), in one atomic step."""
    link = link_path(state_dir)
    on_step("link")
    if tree is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
    else:
        tmp = link.with_name(f".{LINK}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.path.relpath(tree, link.parent), tmp)
        os.replace(tmp, link)
    store.fsync_dir(link.parent)


def prune(state_dir: Path, keep: set[Path]) -> list[str]:
    """Remove every release tree but ``keep`` (and any temporary a cut left); returns the
    names removed. Runs after a commit or a rollback, so flash holds at most two trees."""
    releases = releases_dir(state_dir)
    if not releases.is_dir():
        return []
    kept = {p.resolve() for p in keep}
    removed = []
    for entry in sorted(releases.iterdir()):
        if entry.resolve() not in kept:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed

"""The device's identity on flash: keys, CSR, certificate and pins, switched atomically.

Why generations and a symlink: an identity is several files (TLS key, sealing key, CSR,
certificate, pinned CA and platform key, the agent config) that must change *together*.
A power cut between two renames would leave a key beside a certificate for another
key, and the router would never connect again. So every change builds a complete new
generation directory and then flips one symlink::

    <key_dir>/                 0700
      current -> gen-000002    the identity in use (replaced by rename: atomic)
      previous -> gen-000001   kept by renewal until the new certificate has connected
      pending -> gen-000003    renewal: key + CSR waiting for its certificate
      gen-000002/              0700, complete by construction:
        tls.key sealing.key    0600, created with that mode (O_CREAT|O_EXCL), never chmod-ed
        sealing.pub csr.pem cert.pem ca.pem platform.pub agent.toml   0644
        identity.json          the record, written last: what every other file must be
      .staging-<pid>-<n>/      a generation being built (removed by recover() if left over)

A ``gen-*`` directory appears only by renaming a staging directory whose record was
already written and fsync-ed, so a generation that exists is complete; a crash leaves
staging debris or an unreferenced generation, and ``recover()`` removes both. Files
that do not change are hard-linked into the new generation (same inode, same mode),
so a key is written exactly once and never copied.

One process at a time: ``KeyStore.lock()`` takes an flock on ``<key_dir>/.lock``.

Who owns it (docs/layout.md): the service user, so the daemon reads its keys and renewal
writes the next generation without root. Provisioning runs as root and passes that
``owner``: every directory, file, pointer and the lock it creates is handed to the owner
(``fchown`` on the open descriptor before the first byte is written, so a key is never
readable by anyone but root and then the owner); ``adopt()`` hands over a store an older
version left owned by root. Renewal runs as the owner and passes none.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import store
from agent.errors import ConfigError
from agent.layout import Owner

LOGGER = logging.getLogger(__name__)

DIR_MODE = 0o700
"""Key directory and every generation: only the agent may list or enter them."""

RECORD = "identity.json"
CURRENT, PREVIOUS, PENDING = "current", "previous", "pending"
POINTERS = (CURRENT, PREVIOUS, PENDING)
GEN_RE = re.compile(r"^gen-(\d{6})$")
STAGING_PREFIX = ".staging-"
RECORD_VERSION = 1

TLS_KEY, SEALING_KEY, SEALING_PUB = "tls.key", "sealing.key", "sealing.pub"
CSR, CERT, CA, PLATFORM_PUB, AGENT_CONFIG = "csr.pem", "cert.pem", "ca.pem", "platform.pub", "agent.toml"
RELEASE_PUB = "release.pub"
"""The release key's public half (docs/update.md), when provisioning pinned one."""
PRIVATE_FILES = (TLS_KEY, SEALING_KEY)

_counter = itertools.count()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Generation:
    """One complete identity directory and its record."""

    path: Path
    record: dict[str, Any]

    @property
    def number(self) -> int:
        m = GEN_RE.match(self.path.name)
        return int(m.group(1)) if m else 0

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.record.get("files", {})

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()


def _chown_to(owner: Owner | None) -> tuple[int, int] | None:
    """(uid, gid) to hand new entries to, or None when they already are the process's own."""
    if owner is None or (owner.uid, owner.gid) == (os.geteuid(), os.getegid()):
        return None
    return owner.uid, owner.gid


class Staging:
    """A generation being built. ``KeyStore.seal()`` turns it into a ``gen-*``."""

    def __init__(self, path: Path, owner: Owner | None = None):
        self.path = path
        self.files: dict[str, str] = {}
        self.owner = owner

    def write_private(self, name: str, data: bytes) -> Path:
        """A private key: created 0600 by open(2) itself, so it is never readable by others."""
        return self._write(name, data, store.PRIVATE_MODE)

    def write_public(self, name: str, data: bytes) -> Path:
        return self._write(name, data, store.PUBLIC_MODE)

    def _write(self, name: str, data: bytes, mode: int) -> Path:
        path = self.path / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            ids = _chown_to(self.owner)
            if ids is not None:  # before the first byte: the key is only ever root's, then the owner's
                os.fchown(fd, *ids)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.files[name] = sha256(data)
        return path

    def link_from(self, gen: Generation, name: str) -> None:
        """Carry a file over unchanged (hard link: no second copy of a key ever exists)."""
        os.link(gen.file(name), self.path / name)
        self.files[name] = gen.record["files"][name]


class KeyStore:
    """See the module docstring."""

    def __init__(self, key_dir: Path | str, owner: Owner | None = None):
        self.dir = Path(key_dir)
        self.owner = owner
        """Who new entries belong to (provisioning as root: the service user); None: the caller."""

    def _own(self, path: Path) -> None:
        """Hand a directory or symlink this process just made to the owner (lchown: never a target)."""
        ids = _chown_to(self.owner)
        if ids is not None:
            os.lchown(path, *ids)

    def adopt(self) -> list[str]:
        """Give every entry of the store to the owner (a store an older version left to root).
        Modes are not touched: ownership moves, nothing becomes readable by anyone else."""
        ids = _chown_to(self.owner)
        if ids is None or not self.dir.is_dir():
            return []
        changed = []
        for path in [self.dir, *sorted(self.dir.rglob("*"))]:
            st = path.lstat()
            if (st.st_uid, st.st_gid) != ids:
                os.lchown(path, *ids)
                changed.append(str(path.relative_to(self.dir)))
        if changed:
            LOGGER.info("key store %s handed to %s: %d entries", self.dir, self.owner.name if self.owner else "?",
                        len(changed))
        return changed

    # --- setup and locking ---------------------------------------------------------

    def ensure_dir(self) -> None:
        """Create the key directory 0700 (mkdir's mode, not a chmod); refuse a wider one."""
        try:
            if not self.dir.is_dir():
                self.dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                self._own(self.dir)
        except OSError as exc:
            raise ConfigError(f"cannot create key directory {self.dir}: {exc}") from None
        mode = self.dir.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"key directory {self.dir} has mode {mode:o}; it must be 0700 "
                              "(fix the board image, keys are never put in a shared directory)")

    @contextmanager
    def lock(self, *, blocking: bool = True) -> Iterator[None]:
        """Exclusive for the whole run: provisioning and renewal on one device must not
        interleave. Non-blocking (renewal, inside the daemon's event loop) raises BlockingIOError."""
        self.ensure_dir()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, store.PRIVATE_MODE)
        try:
            ids = _chown_to(self.owner)
            if ids is not None:  # renewal (as the owner) must be able to take the same lock
                os.fchown(fd, *ids)
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            yield
        finally:
            os.close(fd)

    # --- reading ---------------------------------------------------------------------

    def pointer(self, name: str) -> Generation | None:
        link = self.dir / name
        try:
            target = os.readlink(link)
        except (FileNotFoundError, OSError):
            return None
        return self._load(self.dir / target)

    def current(self) -> Generation | None:
        return self.pointer(CURRENT)

    def _load(self, path: Path) -> Generation | None:
        try:
            record = json.loads((path / RECORD).read_bytes())
        except (OSError, ValueError):
            LOGGER.error("identity generation %s has no readable record", path)
            return None
        return Generation(path, record)

    def generations(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if GEN_RE.match(p.name))

    # --- writing ---------------------------------------------------------------------

    def stage(self) -> Staging:
        path = self.dir / f"{STAGING_PREFIX}{os.getpid()}-{next(_counter)}"
        os.mkdir(path, DIR_MODE)
        self._own(path)
        return Staging(path, self.owner)

    def seal(self, staging: Staging, record: dict[str, Any]) -> Generation:
        """Write the record last, then make the directory a generation by one rename."""
        full = {**record, "version": RECORD_VERSION, "files": dict(sorted(staging.files.items()))}
        staging.write_public(RECORD, json.dumps(full, indent=1, sort_keys=True).encode() + b"\n")
        store.fsync_dir(staging.path)
        numbers = [int(GEN_RE.match(p.name).group(1)) for p in self.generations()]  # type: ignore[union-attr]
        target = self.dir / f"gen-{max(numbers, default=0) + 1:06d}"
        os.rename(staging.path, target)
        store.fsync_dir(self.dir)
        return Generation(target, full)

    def point(self, name: str, gen: Generation | None) -> None:
        """Atomically set (or remove) a pointer: symlink to a temp name, rename over."""
        link = self.dir / name
        if gen is None:
            try:
                os.unlink(link)
            except FileNotFoundError:
                return
            store.fsync_dir(self.dir)
        else:
            replace_symlink(link, gen.path.name, _chown_to(self.owner))

    def commit(self, gen: Generation, *, keep_previous: bool) -> None:
        """Make ``gen`` current. With ``keep_previous`` (renewal) the old one stays reachable as
        "previous"; without (provisioning) the old one and any renewal staged from it are void."""
        old = self.current()
        if keep_previous and old is not None and old.path != gen.path:
            self.point(PREVIOUS, old)
        self.point(CURRENT, gen)
        if not keep_previous:
            self.point(PREVIOUS, None)
            self.point(PENDING, None)
        self.prune()

    def recover(self) -> list[str]:
        """Remove what an interrupted run left: staging directories, temp pointers and
        generations no pointer names. Returns what was removed (for the log)."""
        if not self.dir.is_dir():
            return []
        keep = {os.readlink(self.dir / p) for p in POINTERS if (self.dir / p).is_symlink()}
        removed = []
        for entry in self.dir.iterdir():
            name = entry.name
            stale_gen = GEN_RE.match(name) and name not in keep
            if name.startswith(STAGING_PREFIX) or stale_gen:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(name)
            elif name.startswith(".") and name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
                removed.append(name)
        for p in POINTERS:  # a pointer whose generation is gone (should not happen) is dropped
            link = self.dir / p
            if link.is_symlink() and not link.exists():
                link.unlink()
                removed.append(p)
        if removed:
            store.fsync_dir(self.dir)
            LOGGER.info("key store %s: removed leftovers of an interrupted run: %s", self.dir, removed)
        return removed

    prune = recover
    """After a commit, what is no longer pointed at is exactly what recovery removes."""


def link_config(config_path: Path, key_dir: Path) -> None:
    """Make ``config_path`` a symlink to ``<key_dir>/current/agent.toml`` (atomically), so the
    agent's configuration switches with the identity it describes."""
    target = Path(key_dir).resolve() / CURRENT / AGENT_CONFIG
    config_path = Path(config_path)
    if config_path.is_symlink() and Path(os.readlink(config_path)) == target:
        return
    config_path.parent.mkdir(parents=True, exist_ok=True)
    replace_symlink(config_path, str(target))


def replace_symlink(link: Path, target: str, ids: tuple[int, int] | None = None) -> None:
    """Point ``link`` at ``target`` atomically: a new symlink under a temp name, renamed over
    (owned by ``ids`` when given: a pointer inside the key store belongs to its owner)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    if ids is not None:
        os.lchown(tmp, *ids)
    os.replace(tmp, link)
    store.fsync_dir(link.parent)

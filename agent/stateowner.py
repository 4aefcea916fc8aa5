"""Give the state directory to the agent's user without following anything planted in it.

The OpenWrt init script runs as root at every start and used to ``chown -R`` the state
directory to the agent's user (issue 20, finding 20). That directory belongs to the
agent's user, so whoever runs as that user (the agent, or anything that took it over)
can put there a hard link to ``/etc/shadow`` or a symlink to ``/etc/config/network``;
``chown -R`` as root then gives that file to them (BusyBox's chown follows symlinks it
meets inside the tree unless told -h, and nothing can tell a hard link from the file).

This walk works on file descriptors, never on paths a second time: each entry is looked
at with ``lstat`` relative to its directory's fd; only directories and regular files are
opened (``O_NOFOLLOW``: a symlink swapped in meanwhile is refused), the opened inode is
checked to be the one looked at, on the same file system as the top, and, for a file,
to have no other name anywhere (``st_nlink == 1``: a hard link to a file outside has at
least two); the ownership is then changed on that fd (``fchown``), so no rename in
between can redirect it. Symlinks, sockets, FIFOs and device nodes are left as they are.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

LOGGER = logging.getLogger(__name__)

MAX_DEPTH = 16
"""The agent's state is two levels deep (console/, identity/); a deeper tree was not made
by the agent and is not walked further."""

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""Never follow a symlink, never block on a FIFO swapped in, never take a terminal."""


@dataclass
class Outcome:
    """What the walk did: entries given to the user, already theirs, and left alone."""

    changed: int = 0
    unchanged: int = 0
    skipped: list[str] | None = None

    def skip(self, path: str, why: str) -> None:
        self.skipped = [*(self.skipped or []), f"{path}: {why}"]
        LOGGER.warning("state directory: %s left as it is (%s)", path, why)


def give_tree(top: Path | str, uid: int, gid: int) -> Outcome:
    """Make ``top`` (a directory, mode 0700) and everything in it owned by uid:gid, as the
    module docstring says. OSError if ``top`` itself is not a directory."""
    out = Outcome()
    fd = os.open(top, OPEN_FLAGS | os.O_DIRECTORY)
    try:
        top_stat = os.fstat(fd)
        _walk(fd, str(top), top_stat.st_dev, uid, gid, out, depth=0)
        os.fchmod(fd, 0o700)
        _own(fd, top_stat, uid, gid, out)
    finally:
        os.close(fd)
    return out


def _walk(dir_fd: int, where: str, dev: int, uid: int, gid: int, out: Outcome, depth: int) -> None:
    for name in os.listdir(dir_fd):
        path = f"{where}/{name}"
        try:
            seen = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed meanwhile
        if not (stat.S_ISDIR(seen.st_mode) or stat.S_ISREG(seen.st_mode)):
            out.skip(path, "not a file or directory")
            continue
        if seen.st_dev != dev:
            out.skip(path, "another file system")
            continue
        try:
            fd = os.open(name, OPEN_FLAGS | (os.O_DIRECTORY if stat.S_ISDIR(seen.st_mode) else 0), dir_fd=dir_fd)
        except OSError as exc:  # ELOOP: swapped for a symlink; ENOTDIR; ENOENT
            out.skip(path, f"changed while looked at ({exc.strerror})")
            continue
        try:
            _entry(fd, seen, path, dev, uid, gid, out, depth)
        finally:
            os.close(fd)


def _entry(fd: int, seen: os.stat_result, path: str, dev: int, uid: int, gid: int, out: Outcome,
           depth: int) -> None:
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino) or stat.S_IFMT(st.st_mode) != stat.S_IFMT(seen.st_mode):
        out.skip(path, "changed while looked at")
        return
    if stat.S_ISREG(st.st_mode) and st.st_nlink != 1:
        out.skip(path, f"{st.st_nlink} names: a hard link")
        return
    if stat.S_ISDIR(st.st_mode):
        if depth + 1 >= MAX_DEPTH:
            out.skip(path, f"deeper than {MAX_DEPTH} levels")
            return
        _walk(fd, path, dev, uid, gid, out, depth + 1)
    _own(fd, st, uid, gid, out)


def _own(fd: int, st: os.stat_result, uid: int, gid: int, out: Outcome) -> None:
    if (st.st_uid, st.st_gid) == (uid, gid):
        out.unchanged += 1
        return
    os.fchown(fd, uid, gid)
    out.changed += 1

"""One agent per state directory: an ``flock`` on a lock file, so two instances never
drive the same modem or append to the same usage journal.

``flock`` rather than a PID file checked with ``kill(pid, 0)``: the kernel drops the lock
when the holder dies, however it dies (SIGKILL, OOM killer, power loss of a tmpfs), so a
stale file never blocks a restart and a recycled PID never fakes a live holder. The file
keeps the holder's PID only to make the error message useful. It is never unlinked:
unlinking a locked file lets a third process lock a new inode under the same name.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Self

from agent.errors import AlreadyRunning

LOGGER = logging.getLogger(__name__)

LOCK_NAME = "agent.lock"
"""The lock file's name inside the state directory."""
LOCK_MODE = 0o600
"""Only the agent's user needs to read the PID inside."""


class PidLock:
    """``with PidLock(path): ...`` holds the lock for the block; ``acquire()`` raises
    :class:`AlreadyRunning` naming the holder's PID when another process has it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None

    @classmethod
    def in_dir(cls, directory: Path | str) -> PidLock:
        return cls(Path(directory) / LOCK_NAME)

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise AlreadyRunning(f"{self.path} is locked by {who}: another pocket-agent is running "
                                 f"on this state directory", pid=holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        LOGGER.debug("holding %s", self.path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None

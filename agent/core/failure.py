"""How the daemon gives up: an honest exit code and the reason kept in its status file.

The supervisor calls ``give_up`` from wherever it decides it cannot go on (the recovery
ladder failed, a task crashed, start-up failed); the first reason wins, because later
failures are usually consequences of the first. ``code_for`` maps what start-up raised to
the code a service manager acts on (agent/core/exitcodes.py).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from agent.core import exitcodes
from agent.errors import AgentError, ConfigError, JournalError, PortClosed
from agent.modem.recovery import RecoveryFailed

LOGGER = logging.getLogger(__name__)

STATE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
"""Errors of a state directory that cannot be written (permissions, read-only or full
flash): a restart cannot help until the storage is fixed."""


LOCK_NAME = "agent.lock"
"""In the state directory: held (flock) for the daemon's life, so a second agent on the
same state (and the same modem) refuses to start instead of corrupting the journal."""


class AlreadyRunning(AgentError):
    """Another agent holds the state directory's lock."""


def hold_state_lock(state_dir: Path) -> int:
    """Take the state directory's lock for the life of the process; returns its fd (kept
    open on purpose: the kernel releases it when the process ends, however it ends)."""
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise AlreadyRunning(f"another agent holds {state_dir / LOCK_NAME}") from exc
    return fd


def code_for(exc: BaseException) -> int:
    """The exit code for a failure ``exc`` raised while starting or serving."""
    if isinstance(exc, ConfigError):
        return exitcodes.CONFIG_INVALID
    if isinstance(exc, AlreadyRunning):
        return exitcodes.ALREADY_RUNNING
    if isinstance(exc, (RecoveryFailed, PortClosed)):
        return exitcodes.MODEM_LOST
    if isinstance(exc, JournalError) or (isinstance(exc, OSError) and exc.errno in STATE_ERRNOS):
        return exitcodes.STATE_UNWRITABLE
    return exitcodes.FAILURE


class GiveUp:
    """The daemon's decision to stop with a failure; remembers the first one."""

    def __init__(self, status: Any):
        self.status = status
        self.code = exitcodes.OK
        self.reason: str | None = None

    def __call__(self, code: int, reason: str) -> None:
        if self.code != exitcodes.OK:
            LOGGER.info("also failing (%s), keeping the first reason", reason)
            return
        self.code, self.reason = code, reason
        LOGGER.error("giving up with exit code %d: %s", code, reason)
        self.status.update(state="failed", error=reason, exit_code=code)

    @property
    def failed(self) -> bool:
        return self.code != exitcodes.OK

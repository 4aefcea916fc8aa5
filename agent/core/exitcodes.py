"""The daemon's exit codes: what a service manager should do when the agent stops.

The values are BSD ``sysexits.h`` codes, which systemd (``systemd.exec(5)``, "Process
exit codes") and procd's respawn logic already know how to read:

- a configuration error will fail again on every restart, so the systemd unit lists it in
  ``RestartPreventExitStatus=`` and a restart loop does not wear the flash with logs;
- a lost modem, an unwritable state directory or a lock held by another instance may
  clear up (USB re-enumerates, a full disk is cleaned, the other instance stops), so
  ``Restart=on-failure`` restarts after ``RestartSec``.

Keep each code distinct: a field log or ``systemctl status`` then says why the agent
stopped without reading its log.
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Stopped on request (SIGTERM/SIGINT) after a clean shutdown."""
    FAILURE = 1
    """Could not serve for a reason not listed below (systemd: restart)."""
    MODEM_LOST = 69
    """EX_UNAVAILABLE: the modem did not answer even after the recovery ladder (restart)."""
    STATE_UNWRITABLE = 73
    """EX_CANTCREAT: the state directory or journal cannot be written (restart)."""
    ALREADY_RUNNING = 75
    """EX_TEMPFAIL: another instance holds the PID lock on the same state directory."""
    CONFIG_INVALID = 78
    """EX_CONFIG: the configuration or board profile is invalid; do not restart."""


NO_RESTART = (ExitCode.CONFIG_INVALID,)
"""Codes a service manager must not restart on (systemd RestartPreventExitStatus=)."""


OK, FAILURE, MODEM_LOST = ExitCode.OK, ExitCode.FAILURE, ExitCode.MODEM_LOST
STATE_UNWRITABLE, ALREADY_RUNNING, CONFIG_INVALID = (ExitCode.STATE_UNWRITABLE, ExitCode.ALREADY_RUNNING,
                                                     ExitCode.CONFIG_INVALID)
"""The same codes as plain names (``exitcodes.MODEM_LOST``)."""

STATE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
"""Errors of a state directory that cannot be written (permissions, read-only or full
flash): a restart cannot help until the storage is fixed."""


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for the error that stopped the daemon (the one mapping)."""
    from agent.errors import AlreadyRunning, ConfigError, JournalError, PortClosed
    from agent.modem.recovery import RecoveryFailed

    if isinstance(exc, ConfigError):
        return ExitCode.CONFIG_INVALID
    if isinstance(exc, AlreadyRunning):
        return ExitCode.ALREADY_RUNNING
    if isinstance(exc, (RecoveryFailed, PortClosed)):
        # the modem itself is gone; "not registered" and other network trouble is not (FAILURE)
        return ExitCode.MODEM_LOST
    if isinstance(exc, (JournalError, PermissionError)) or (isinstance(exc, OSError) and exc.errno in STATE_ERRNOS):
        return ExitCode.STATE_UNWRITABLE
    return ExitCode.FAILURE

"""The daemon's exit codes: what a service manager should do when the agent stops.

The values are BSD ``sysexits.h`` codes, which systemd (``systemd.exec(5)``, "Process
exit codes") and procd's respawn logic already know how to read:

- a configuration error (a bad file, a key that is missing, readable by others or for
  another certificate, a board the agent cannot serve on) and a state directory or key
  store the service cannot write, found before start-up, will fail again on every restart, so the systemd unit
  lists them in ``RestartPreventExitStatus=``: the unit stays failed with its reason in
  ``systemctl status`` instead of a restart loop hiding it (agent/preflight.py finds them
  before anything else starts);
- a lost modem, state that failed while serving (full flash), another failure or a lock
  held by another instance may clear up (USB re-enumerates, flash frees, the other
  instance stops), so ``Restart=on-failure`` restarts them,
  forever, after a delay that grows in the agent (agent/respawn.py).

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
    """EX_CANTCREAT: found before start-up (agent/preflight.py): the state directory or the
    key store the configuration names cannot be written by the service (owner, mode,
    read-only mount). Not restarted: the next start would find the same."""
    STATE_IO = 74
    """EX_IOERR: the journal or other state failed *while serving* (flash full, an I/O
    error). Restarted with the growing delay: flash frees up (logs rotate, a tmpfs is
    emptied) and a router far from anyone must come back by itself (docs/self-healing.md)."""
    ALREADY_RUNNING = 75
    """EX_TEMPFAIL: another instance holds the PID lock on the same state directory."""
    CONFIG_INVALID = 78
    """EX_CONFIG: the configuration, board profile or key store is wrong, or the board cannot
    serve (agent/preflight.py says which, in one line); do not restart."""


NO_RESTART = (ExitCode.STATE_UNWRITABLE, ExitCode.CONFIG_INVALID)
"""Codes a service manager must not restart on (systemd RestartPreventExitStatus=)."""


OK, FAILURE, MODEM_LOST = ExitCode.OK, ExitCode.FAILURE, ExitCode.MODEM_LOST
STATE_UNWRITABLE, STATE_IO, ALREADY_RUNNING, CONFIG_INVALID = (
    ExitCode.STATE_UNWRITABLE, ExitCode.STATE_IO, ExitCode.ALREADY_RUNNING, ExitCode.CONFIG_INVALID)
"""The same codes as plain names (``exitcodes.MODEM_LOST``)."""

STATE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO})
"""Errors of state that stopped being writable while serving (permissions changed,
read-only remount, full flash, a failing chip)."""


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
        return ExitCode.STATE_IO
    return ExitCode.FAILURE

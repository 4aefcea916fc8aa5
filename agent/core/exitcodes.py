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


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for the error that stopped the daemon."""
    from agent.errors import AlreadyRunning, ConfigError, JournalError, ModemError

    if isinstance(exc, ConfigError):
        return ExitCode.CONFIG_INVALID
    if isinstance(exc, ModemError):
        return ExitCode.MODEM_LOST
    if isinstance(exc, (JournalError, PermissionError)):
        return ExitCode.STATE_UNWRITABLE
    if isinstance(exc, AlreadyRunning):
        return ExitCode.ALREADY_RUNNING
    return ExitCode.FAILURE

"""The daemon's exit codes: what a service manager (systemd, procd) is told when it stops.

A daemon that gives up must say so with a non-zero code, or ``Restart=on-failure`` (and
procd's respawn) treat it as a clean stop and leave the router offline. The values are
BSD ``sysexits.h``'s, so they mean the same to systemd's ``RestartPreventExitStatus=``,
to a shell script and to a technician reading ``journalctl``. The systemd unit
(packaging/) uses the same names and values.
"""

from __future__ import annotations

OK = 0
"""Stopped because it was asked to (SIGTERM/SIGINT): nothing to restart."""

FAILURE = 1
"""Any other failure, a crashed task included: restart, the next run may well serve."""

MODEM_LOST = 69
"""EX_UNAVAILABLE: the modem did not answer after the whole recovery ladder (retry,
reopen, radio off/on, power cycle). A restart re-opens the port from scratch, which is
the one step left; the service manager's restart delay paces it."""

STATE_UNWRITABLE = 73
"""EX_CANTCREAT: the state directory cannot be created or written at start-up, so usage
could not be journaled; restarting helps only once the storage is back."""

ALREADY_RUNNING = 75
"""EX_TEMPFAIL: another agent holds the modem or the state directory; try again later."""

CONFIG_INVALID = 78
"""EX_CONFIG: the configuration file or the board profile is invalid; a restart cannot
fix it (``RestartPreventExitStatus=78``)."""

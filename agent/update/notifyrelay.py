"""sd_notify for a release on trial: its messages relayed through the trial guard.

The unit keeps ``NotifyAccess=main`` (``all`` would raise its ``systemd-analyze security``
exposure to 2.0, above the goal of tests/packaging): systemd then takes READY=1,
STATUS= and WATCHDOG=1 only from the main process, which during a trial is the guard
(agent/update/boot.py), not the release. So the guard binds a datagram socket of its own,
gives the release its path as ``$NOTIFY_SOCKET`` (and drops ``$WATCHDOG_PID``, which names
the guard), and sends each datagram on to systemd's socket as it arrives, less one field:
``STOPPING=1``. A release stopped by its guard (a failed trial) says it while the guard
is about to exec the previous version, not to exit; told it, systemd would wait for the
main process to exit and kill it at ``TimeoutStopSec=``. When systemd itself stops the
unit it needs no telling, and a release that gives up by itself is followed by its
guard's exit at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path

from agent.sdnotify import _address

LOGGER = logging.getLogger(__name__)

MAX_DATAGRAM = 4096
"""sd_notify messages are a few fields of one line each; systemd itself reads up to 4 KiB
plus credentials per message for anything but file-descriptor stores."""


def without_stopping(datagram: bytes) -> bytes:
    """The datagram without its ``STOPPING=1`` line (module docstring)."""
    return b"\n".join(line for line in datagram.split(b"\n") if line.strip() != b"STOPPING=1")


class NotifyRelay:
    """A bound socket at ``path`` whose datagrams go on to ``target`` (``$NOTIFY_SOCKET``)."""

    def __init__(self, path: Path, target: str):
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._in = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._in.bind(str(path))
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._target = _address(target)
        self._thread = threading.Thread(target=self._run, name="notify-relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self._in.recv(MAX_DATAGRAM)
            except OSError:
                return
            data = without_stopping(data)
            if not data:
                continue
            try:
                self._out.sendto(data, socket.MSG_DONTWAIT, self._target)
            except OSError as exc:  # a service manager that went away must not stop the trial
                LOGGER.debug("sd_notify relay: %s", exc)

    def child_env(self) -> dict[str, str]:
        """What the release's environment says instead of the guard's."""
        return {"NOTIFY_SOCKET": str(self.path)}

    def close(self) -> None:
        for sock in (self._in, self._out):
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

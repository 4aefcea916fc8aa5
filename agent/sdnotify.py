"""Talk to the service manager: systemd's notify protocol, and a watchdog tied to progress.

The protocol (``sd_notify(3)``) is one datagram of ``KEY=VALUE`` lines sent to the unix
socket named by ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract
namespace (its first byte is NUL on the wire). Nothing else is needed, so the agent
speaks it with the standard library and carries no libsystemd binding.

Without ``$NOTIFY_SOCKET`` (procd, a shell, the tests) every call is a no-op, so the
daemon runs the same everywhere.

The watchdog (``WatchdogSec=`` in the unit) must prove that the daemon *works*, not that
a timer fires: :class:`ProgressWatchdog` pings only when the main loop marked progress
since the previous ping. A loop stuck on a blocking call or an await that never returns
stops marking, the pings stop, and systemd kills and restarts the agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

LOGGER = logging.getLogger(__name__)

PING_FRACTION = 0.5
"""Ping every half of ``WATCHDOG_USEC``: ``sd_watchdog_enabled(3)`` recommends it, so one
late ping (a slow sample on a loaded router) does not trip the watchdog."""

def _address(name: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` to a socket address: ``@name`` is the abstract ``\\0name``."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """The sending side of ``sd_notify``. Never raises: a service manager that went away
    must not take the daemon with it (the failure is logged once at debug level)."""

    def __init__(self, socket_name: str | None):
        self.socket_name = socket_name or None
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram, e.g. ``send(READY=1, STATUS="serving")``; True if sent."""
        if not self.socket_name:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                sock.connect(_address(self.socket_name))
                self._sock = sock
            # MSG_DONTWAIT: a service manager that stopped reading must not block the loop.
            self._sock.send(message, socket.MSG_DONTWAIT)
        except OSError as exc:
            LOGGER.debug("sd_notify %s failed: %s", list(fields), exc)
            self.close()
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings the service manager asks for, or None if it asks for none.

    ``WATCHDOG_USEC`` is the timeout; ``WATCHDOG_PID``, when set, names the process it is
    meant for (a child that inherited the environment must not ping for its parent).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    target = env.get("WATCHDOG_PID", "")
    if target and target != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6 * PING_FRACTION


class ProgressWatchdog:
    """Pings the watchdog only when the daemon's main loop made progress since the last ping.

    The sample loop calls :meth:`mark` once per pass that read the counters; :meth:`run`
    wakes every ``interval`` seconds and sends ``WATCHDOG=1`` if a mark arrived in between.
    Missed pings are counted and logged so a field log shows the stall before the restart.

    Before :meth:`serving` (READY=1) it pings unconditionally: the start-up waits
    (registration up to 90 s, an assignment up to 120 s) are each bounded by their own
    timeout and the whole by ``TimeoutStartSec=``, while the sample loop that marks
    progress only starts at the end of start-up.
    """

    def __init__(self, notifier: Notifier, interval: float | None):
        self.notifier = notifier
        self.interval = interval
        self.ready = False
        self.served_at: float | None = None
        """time.monotonic() at READY=1 (agent/respawn.py: how long the run served)."""
        self.pings = 0
        self.missed = 0
        self._marks = 0
        self._seen = 0

    def mark(self) -> None:
        """The main loop completed a pass (cheap: called every sample)."""
        self._marks += 1

    def serving(self, status: str | None = None) -> None:
        """Start-up is over: say READY=1, and from now on ping only on progress."""
        self.ready = True
        self.served_at = time.monotonic()
        self._seen = self._marks
        self.notifier.ready(status)

    def tick(self) -> bool:
        """One ping decision; True if a ping was sent."""
        progressed = self._marks != self._seen
        self._seen = self._marks
        if self.ready and not progressed:
            self.missed += 1
            LOGGER.warning("watchdog: no progress in the main loop for %.0f s: not pinging (%d missed)",
                           self.interval or 0, self.missed)
            return False
        self.missed = 0
        self.pings += 1
        return self.notifier.watchdog()

    async def run(self) -> None:
        """The pinger task; returns at once when no watchdog was asked for."""
        if not self.interval or not self.notifier.enabled:
            return
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    def stopping(self, status: str | None = None) -> None:
        self.notifier.stopping(status)

"""Talk to the service manager: systemd's notify protocol, and a watchdog tied to progress.

The protocol (``sd_notify(3)``) is one datagram of ``KEY=VALUE`` lines sent to the unix
socket named by ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract
namespace (its first byte is NUL on the wire). Nothing else is needed, so the agent
speaks it with the standard library and carries no libsystemd binding.

Without ``$NOTIFY_SOCKET`` (procd, a shell, the tests) every call is a no-op, so the
daemon runs the same everywhere.

``STATUS=`` is what ``systemctl status`` shows as ``Status:``: :class:`StatusLine` sends
it on every change an operator cares about (serving on which SIM, swapping, an outage and
the healing), at most once per ``STATUS_MIN_INTERVAL_S``.

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
from collections.abc import Callable, Mapping

LOGGER = logging.getLogger(__name__)

PING_FRACTION = 0.5
"""Ping every half of ``WATCHDOG_USEC``: ``sd_watchdog_enabled(3)`` recommends it, so one
late ping (a slow sample on a loaded router) does not trip the watchdog."""

STATUS_MIN_INTERVAL_S = 5.0
"""At most one STATUS= per 5 s. systemd keeps only the last text and an operator reads it
by hand, while a flapping modem can change the agent's state every second: that must not
become a stream of datagrams into PID 1. A change inside the interval is held and sent
when the interval is over (the latest text wins), so the line is never staler than that."""
STATUS_MAX_CHARS = 200
"""``systemctl status`` shows one line; a longer cause is cut (the journal has it whole)."""


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
        """Send one datagram, e.g. ``send(READY=1, STATUS="serving")``; True if sent.
        Each value is made one line first (``one_line``): a reason quoted from a config
        error or a modem must not add a field."""
        if not self.socket_name:
            return False
        message = "\n".join(f"{key}={one_line(str(value))}" for key, value in fields.items()).encode()
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

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def one_line(text: str) -> str:
    """``text`` safe as a STATUS= value: the protocol is one ``KEY=VALUE`` per line, so a
    newline in a cause (modem or cloud text) would smuggle in another field (``READY=1``,
    ``WATCHDOG=1``); every control character becomes a space, and the length is capped."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= STATUS_MAX_CHARS else flat[:STATUS_MAX_CHARS - 3] + "..."


class StatusLine:
    """The ``STATUS=`` text, sent when it changes and at most once per ``min_interval``.

    :meth:`offer` is called with the current text as often as the caller likes (the
    supervisor does on every status change and every status refresh); the same text
    twice sends nothing, a new text inside the interval is held until the interval is
    over and the next :meth:`offer` or :meth:`flush`. A state change the service manager
    acts on (``READY=1``, ``STOPPING=1``) goes out at once, with the text given:
    ``READY=1`` always names what the agent serves on; a bare ``STOPPING=1`` drops a
    held line (the unit is deactivating, the line would describe what is ending)."""

    def __init__(self, notifier: Notifier, min_interval: float = STATUS_MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.notifier = notifier
        self.min_interval = min_interval
        self.clock = clock
        self.sent: str | None = None
        """The text systemd shows now (the last one sent)."""
        self.pending: str | None = None
        """A newer text held back by the rate bound."""
        self._sent_at: float | None = None

    def offer(self, text: str | None, **fields: str | int) -> bool:
        """The current status (None: nothing to say), with ``fields`` to send at once;
        True if a datagram went out."""
        if text is not None:
            text = one_line(text)
            self.pending = None if text == self.sent else text
        if fields:  # READY=1 carries its line even when systemd shows it already
            if text is None:
                self.pending = None  # STOPPING=1: a line held back is moot once stopping
            return self._send(text, **fields)
        return self.flush()

    def flush(self) -> bool:
        """Send the held text if the interval since the last one is over."""
        if self.pending is None:
            return False
        if self._sent_at is not None and self.clock() - self._sent_at < self.min_interval:
            return False
        return self._send(self.pending)

    def _send(self, status: str | None, **fields: str | int) -> bool:
        if status is not None:
            fields["STATUS"] = status
        sent = self.notifier.send(**fields)
        if sent and status is not None:
            self.sent, self.pending, self._sent_at = status, None, self.clock()
        return sent


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
        self.line = StatusLine(notifier)
        """``systemctl status``'s line (the supervisor offers it every change)."""
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
        self.line.offer(status, READY=1)

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
        self.line.offer(status, STOPPING=1)

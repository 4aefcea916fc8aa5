"""The one clock: monotonic time for durations, wall time for calendar boundaries.

Routers often boot with no real-time clock, so wall time is only *trusted* once some
source vouched for it: the kernel's NTP discipline (``adjtimex`` says synchronised), the
network's time (``+CCLK?`` set from NITZ, read through the modem driver), or the cloud's
timestamp. A wall clock that merely reads a plausible year is not enough: an RTC that
kept the build date, or a clock restored from flash after a power cut, reads 2026 and
is still wrong by hours, which puts bytes on the wrong billing day.

A source that gives the time itself (the network, the cloud) may also correct it: the
clock then keeps an offset to the system clock rather than setting it (the agent must
not step the system clock under other programs). The daemon runs a ``Clock(strict=True)``:
only a source's word counts. Tools and tests with no source (``Clock()``) accept the
system clock when it reads a plausible year, as before. Logic modules take a ``Clock``
argument instead of calling ``time`` themselves, which is what lets tests inject a day
or month boundary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

LOGGER = logging.getLogger(__name__)

JST = timezone(timedelta(hours=9), "JST")
"""The plans' time zone (domain.md: JST day and month boundaries)."""

PLAUSIBLE_EPOCH = 1_704_067_200
"""2024-01-01T00:00:00Z: a wall clock earlier than this is an unset RTC, not real time
(necessary for trust, never sufficient)."""

STEP_LOG_S = 2.0
"""A vouched time differing from the system clock by more than this is logged: the
system clock was wrong (an RTC-less boot) and our offset now corrects it."""

SOURCES = ("ntp", "network", "cloud")

_STA_UNSYNC = 0x0040
"""adjtimex(2) status bit: the kernel's clock is not synchronised by an NTP daemon."""


class _Timex(ctypes.Structure):
    """struct timex (linux/timex.h), enough of it for the status word."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_pad", ctypes.c_int * 11)]


def kernel_ntp_synced() -> bool:
    """Whether an NTP daemon disciplines the kernel clock (adjtimex read-only query)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return state >= 0 and state != 5 and not tx.status & _STA_UNSYNC  # 5 = TIME_ERROR


class Clock:
    """Production clock. Subclass or use ``FakeClock`` in tests."""

    def __init__(self, strict: bool = False) -> None:
        self._offset = 0.0
        self._vouched_by: str | None = None
        self.strict = strict
        """Only a source's word makes wall time trusted (the daemon); else a plausible year does."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never jumps. For durations and timeouts."""
        return time.monotonic()

    def _system_wall(self) -> float:
        return time.time()

    def wall(self) -> float:
        """UNIX seconds (UTC), corrected by a vouched source. For calendar boundaries."""
        return self._system_wall() + self._offset

    def _kernel_synced(self) -> bool:
        """Whether the kernel's clock is NTP-disciplined (``FakeClock`` answers for a test)."""
        return kernel_ntp_synced()

    @property
    def trusted_by(self) -> str | None:
        """Which source vouched for the wall clock ("ntp", "network", "cloud"), or None."""
        if self._vouched_by is None and self._kernel_synced():
            self._vouched_by = "ntp"
        if self._vouched_by is None and not self.strict and self.wall() >= PLAUSIBLE_EPOCH:
            return "system"
        return self._vouched_by

    def wall_trusted(self) -> bool:
        """Whether ``wall()`` is believable: a source vouched for it (see the module doc)."""
        return self.trusted_by is not None and self.wall() >= PLAUSIBLE_EPOCH

    def vouch(self, source: str, true_wall: float | None = None) -> None:
        """A source says what time it is (``true_wall``, UNIX seconds) or that the system
        clock is right (None). An implausible time is refused (logged)."""
        if source not in SOURCES:
            raise ValueError(f"unknown time source {source!r}")
        if true_wall is not None:
            if true_wall < PLAUSIBLE_EPOCH:
                LOGGER.warning("time from %s (%.0f) is before 2024: not trusted", source, true_wall)
                return
            offset = true_wall - self._system_wall()
            if abs(offset - self._offset) > STEP_LOG_S:
                LOGGER.info("wall clock corrected by %+.1f s from %s", offset - self._offset, source)
            self._offset = offset
        if self._vouched_by is None:
            LOGGER.info("wall clock trusted (source: %s)", source)
        self._vouched_by = source

    def now(self, tz: timezone = JST) -> datetime:
        """Wall time as an aware datetime in ``tz``."""
        return datetime.fromtimestamp(self.wall(), tz)


class OffsetFileClock(Clock):
    """Wall time plus an offset read from a file: how the lab steps *the agent's* clock
    (``pocket-lab fault clock``) without touching the host's. The file holds
    ``{"offset_s": S}``; no file means no offset. Read at most every ``REREAD_S``."""

    REREAD_S = 0.5
    """A step is seen within half a second; the sampler calls wall() every second."""

    def __init__(self, path: str, strict: bool = True) -> None:
        super().__init__(strict=strict)
        self.path = path
        self._file_offset = 0.0
        self._read_at = float("-inf")

    def _system_wall(self) -> float:
        """The "system" clock as the lab's fault has stepped it; a source's vouching still
        corrects it as it would a real RTC."""
        now = time.monotonic()
        if now - self._read_at >= self.REREAD_S:
            self._read_at = now
            try:
                with open(self.path) as fh:
                    self._file_offset = float(json.load(fh).get("offset_s", 0.0))
            except (OSError, ValueError, AttributeError):
                self._file_offset = 0.0
        return time.time() + self._file_offset


@dataclass
class FakeClock(Clock):
    """A clock tests move by hand, trusted by the real rule (``Clock.trusted_by`` and
    ``wall_trusted``): only the system clock, the kernel's NTP state and the monotonic
    clock are the test's. ``trusted`` picks which rule: None, a tool's ``Clock()`` (a
    plausible year is enough, which is what most tests want); False, the daemon's
    ``Clock(strict=True)`` with nothing vouched yet (a source must ``vouch``); True, a
    strict clock whose kernel says NTP keeps it (trusted, but like the real one, never
    for a date before 2024)."""

    mono: float = 1000.0
    epoch: float = field(default=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    trusted: bool | None = None

    def __post_init__(self) -> None:
        Clock.__init__(self, strict=self.trusted is not None)

    def monotonic(self) -> float:
        return self.mono

    def _system_wall(self) -> float:
        return self.epoch

    def _kernel_synced(self) -> bool:
        return self.trusted is True

    def advance(self, seconds: float) -> None:
        """Move both clocks forward together."""
        self.mono += seconds
        self.epoch += seconds

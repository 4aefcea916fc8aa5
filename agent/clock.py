"""The one clock: monotonic time for durations, wall time for calendar boundaries.

Routers often boot with no real-time clock, so wall time is only *trusted* once some
source vouched for it (NTP, the network's ``+CCLK``/NITZ, or the cloud's timestamp).
Logic modules take a ``Clock`` argument instead of calling ``time`` themselves, which
is what lets tests inject a day or month boundary.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")
"""The plans' time zone (domain.md: JST day and month boundaries)."""

PLAUSIBLE_EPOCH = 1_704_067_200
"""2024-01-01T00:00:00Z: a wall clock earlier than this is an unset RTC, not real time."""


class Clock:
    """Production clock. Subclass or use ``FakeClock`` in tests."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never jumps. For durations and timeouts."""
        return time.monotonic()

    def wall(self) -> float:
        """UNIX seconds (UTC). For calendar boundaries and expiry."""
        return time.time()

    def wall_trusted(self) -> bool:
        """Whether ``wall()`` is believable (an unset RTC reads 1970 or the build date)."""
        return self.wall() >= PLAUSIBLE_EPOCH

    def now(self, tz: timezone = JST) -> datetime:
        """Wall time as an aware datetime in ``tz``."""
        return datetime.fromtimestamp(self.wall(), tz)


class OffsetFileClock(Clock):
    """Wall time plus an offset read from a file: how the lab steps *the agent's* clock
    (``pocket-lab fault clock``) without touching the host's. The file holds
    ``{"offset_s": S}``; no file means no offset. Read at most every ``REREAD_S``."""

    REREAD_S = 0.5
    """A step is seen within half a second; the sampler calls wall() every second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0.0
        self._read_at = float("-inf")

    def wall(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= self.REREAD_S:
            self._read_at = now
            try:
                with open(self.path) as fh:
                    self._offset = float(json.load(fh).get("offset_s", 0.0))
            except (OSError, ValueError, AttributeError):
                self._offset = 0.0
        return time.time() + self._offset


@dataclass
class FakeClock(Clock):
    """A clock tests move by hand."""

    mono: float = 1000.0
    epoch: float = field(default=1_767_225_600.0)  # 2026-01-01T00:00:00Z

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.epoch

    def advance(self, seconds: float) -> None:
        """Move both clocks forward together."""
        self.mono += seconds
        self.epoch += seconds

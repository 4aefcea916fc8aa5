"""Today's throughput in five-minute buckets, for the renter's page plot.

Why buckets and not samples: the page draws one day, and a day of one-second samples is
86,400 numbers; 288 five-minute averages are what a 300-pixel-wide plot can show, about
2 kB in memory, and cost one addition per reading. The day is the plan's calendar day
(JST by default), so the plot starts where the daily allowance starts.

Fed with the data interface's byte counters (the console view reads them every two
seconds already); a counter that goes backwards (an interface re-created, a modem reset)
contributes nothing for that interval, as the usage meter does.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

BUCKET_S = 300
"""Five minutes: 288 points a day, one per pixel or two of the page's plot."""
BUCKETS = 86400 // BUCKET_S


class DayGraph:
    """Bytes per bucket of the current local day; ``kbps()`` the averages so far."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.day: str | None = None
        self._bytes = [0] * BUCKETS
        self._last: tuple[float, int] | None = None
        self._upto = -1
        """The last bucket a reading fell in (the current one: averaged over its elapsed part)."""
        self._now_offset = 0.0

    def feed(self, wall: float, total_bytes: int) -> None:
        """One reading of the interface's rx+tx byte counter at ``wall``."""
        local = datetime.fromtimestamp(wall, self.tz)
        day = local.date().isoformat()
        if day != self.day:
            self.day, self._bytes, self._upto = day, [0] * BUCKETS, -1
        offset = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        index = min(BUCKETS - 1, int(offset // BUCKET_S))
        last, self._last = self._last, (wall, total_bytes)
        self._upto, self._now_offset = index, offset
        if last is None or wall <= last[0] or total_bytes < last[1] or wall - last[0] > 2 * BUCKET_S:
            return  # first reading, a clock step, a counter reset, or a long gap: nothing to spread
        self._bytes[index] += total_bytes - last[1]

    def kbps(self) -> list[float]:
        """Average kbit/s of each bucket from midnight to now (the last one over its elapsed part)."""
        out = []
        for i in range(self._upto + 1):
            span = BUCKET_S if i < self._upto else max(1.0, self._now_offset - i * BUCKET_S)
            out.append(round(self._bytes[i] * 8 / 1000 / span, 1))
        return out

"""The agent's own traffic: what its curiosity costs the user, per plan day, durable.

Every byte the agent puts on the SIM is billed to the user: the reflector echo, the
active check's download burst, MQTT (reports, keep-alives, TLS). ``OwnTraffic`` keeps a
per-day (plan zone) total by source, reported upstream and on the status, and the
active-check budget lives here too so a restart (or a crash loop) cannot spend the
day's budget twice: the ledger is written through ``agent.store`` (atomic, 0600) at
most every ``SAVE_EVERY_S`` and at once after every active check.

Sources: "reflector" (the prober's own count of datagrams, headers included),
"active_check" (bytes read plus headers estimated per segment), "mqtt" (the broker
connection's bytes as the kernel's conntrack counted them, when conntrack is there).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from agent import store
from agent.clock import JST, Clock
from agent.usage import calendar

LOGGER = logging.getLogger(__name__)

SAVE_EVERY_S = 300.0
"""Persist the ledger at most every 5 minutes (flash wear: ~300 small writes a day);
the active-check budget is saved at once after each check, since that is what a restart
must not forget."""

KEEP_DAYS = 7
"""Days of history kept in the file (the status and reports want today and yesterday)."""

OWN_SHARE = 0.01
"""Issue 22: the agent's own traffic (idle and active checks together) stays under 1 % of
the daily share of the SIM's plan."""

SMALLEST_DAILY_SHARE_BYTES = 100_000_000 // 3
"""The smallest plan in domain.md's table, 100 MB / 3 days: 33.3 MB a day."""

IDLE_OWN_BYTES_PER_DAY = 222_000
"""An idle router's own bytes a day at the carrier (tests/lab/test_lab_own_traffic.py's
last run, docs/usage.md): MQTT keep-alives, heartbeat reports, state. The check budget is
what is left of the 1 % after them."""

MAX_CHECK_BUDGET_BYTES = 4 * 1024 * 1024
"""4 MiB = 16 full active checks a day: the most any plan gets (a bigger plan's 1 % would
allow more; the detector never needs more)."""

DAILY_CHECK_BUDGET_BYTES = int(OWN_SHARE * SMALLEST_DAILY_SHARE_BYTES) - IDLE_OWN_BYTES_PER_DAY
"""111,333 bytes a day while the plan is unknown: sized for the smallest plan, so the
idle traffic and the checks together stay under its 333 kB (1 % of 33.3 MB). That is
less than one full check (256 KiB): a check is cut to the bytes left, and on a throttled
SIM its 3-s time cap moves ~48 kB at 128 kbps anyway. (Before issue 22 this was 4 MiB,
called "~0.1 %" of that plan's share: it was 12.6 %.)"""


def check_budget_for(daily_share_bytes: float | None) -> int:
    """The day's active-check budget for a SIM whose plan allows ``daily_share_bytes`` a
    day (None: unknown plan): 1 % of it less the idle traffic, at most 4 MiB. A flat-rate
    SIM's share is what its nominal rate carries in a day; a nearly exhausted SIM's is its
    remaining bytes over the days to its reset: both get proportionally less."""
    if daily_share_bytes is None:
        return DAILY_CHECK_BUDGET_BYTES
    return max(0, min(MAX_CHECK_BUDGET_BYTES, int(OWN_SHARE * daily_share_bytes) - IDLE_OWN_BYTES_PER_DAY))

SOURCES = ("reflector", "active_check", "mqtt")


@dataclass
class OwnTraffic:
    """Per-day own bytes by source, and the active-check budget; one writer per file."""

    path: Path
    clock: Clock
    tz: tzinfo = JST
    check_budget_bytes: int = DAILY_CHECK_BUDGET_BYTES
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    _last: dict[str, int] = field(default_factory=dict)
    _saved_at: float | None = None

    @classmethod
    def load(cls, path: Path, clock: Clock, tz: tzinfo = JST,
             check_budget_bytes: int = DAILY_CHECK_BUDGET_BYTES) -> OwnTraffic:
        """Read the ledger (a damaged file is logged and started afresh: never fatal)."""
        own = cls(path, clock, tz, check_budget_bytes)
        data = store.read_json(path, {}) or {}
        try:
            own.days = {str(d): {s: int(v) for s, v in per.items() if s in SOURCES}
                        for d, per in dict(data.get("days", {})).items()}
            own.checks = {str(d): int(n) for d, n in dict(data.get("checks", {})).items()}
            own.refused = {str(d): int(n) for d, n in dict(data.get("refused", {})).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            LOGGER.error("own-traffic ledger %s unreadable (%s): starting afresh", path, exc)
            own.days, own.checks, own.refused = {}, {}, {}
        return own

    def today(self) -> str:
        return calendar.day_of(self.clock.wall(), self.tz).isoformat()

    def add(self, source: str, nbytes: int) -> None:
        """Count ``nbytes`` more of ``source`` today."""
        if nbytes <= 0:
            return
        per = self.days.setdefault(self.today(), {})
        per[source] = per.get(source, 0) + nbytes

    def observe(self, source: str, cumulative: int) -> None:
        """Count the growth of a cumulative counter (the prober's, conntrack's); a counter
        that went backwards (a new prober) restarts from its new value."""
        last = self._last.get(source)
        self._last[source] = cumulative
        if last is None:
            self.add(source, cumulative)
        else:
            self.add(source, cumulative - last if cumulative >= last else cumulative)

    # -- the active-check budget -----------------------------------------------------
    def set_budget(self, nbytes: int) -> None:
        """The SIM in use changed, or its allowance did: its plan's budget from now on."""
        if nbytes != self.check_budget_bytes:
            LOGGER.info("active-check budget now %d bytes a day", nbytes)
        self.check_budget_bytes = nbytes

    def check_allowance(self) -> int:
        """Bytes the next active check may use today (0: the day's budget is spent)."""
        left = self.check_budget_bytes - self.days.get(self.today(), {}).get("active_check", 0)
        if left <= 0:
            day = self.today()
            self.refused[day] = self.refused.get(day, 0) + 1
            return 0
        return left

    def check_spent(self, nbytes: int) -> None:
        """One active check ran and used ``nbytes``: counted and saved at once."""
        self.add("active_check", nbytes)
        day = self.today()
        self.checks[day] = self.checks.get(day, 0) + 1
        self.save()

    # -- reporting and persistence ---------------------------------------------------
    def report(self) -> dict[str, Any]:
        day = self.today()
        per = self.days.get(day, {})
        return {"day": day, "bytes": {s: per.get(s, 0) for s in SOURCES}, "total": sum(per.values()),
                "checks": self.checks.get(day, 0), "check_refused": self.refused.get(day, 0),
                "check_budget": self.check_budget_bytes}

    def maybe_save(self) -> None:
        now = self.clock.monotonic()
        if self._saved_at is None or now - self._saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        keep = sorted(self.days)[-KEEP_DAYS:]
        data = {"days": {d: self.days[d] for d in keep},
                "checks": {d: n for d, n in self.checks.items() if d in keep},
                "refused": {d: n for d, n in self.refused.items() if d in keep}}
        try:
            store.atomic_write_json(self.path, data)
        except OSError as exc:
            LOGGER.error("own-traffic ledger not saved: %s", exc)
        self._saved_at = self.clock.monotonic()

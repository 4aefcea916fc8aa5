"""The outage log: every interval without service or without data, kept across reboots.

Why on the device (domain.md): operators learn of carrier outages late and vaguely, and
refunds hinge on "unusable for 24 consecutive hours"; the router is the one witness
that saw the outage first-hand, with its cause. So each interval is written to flash
when it starts (an outage often ends in a power cycle) and when it ends, and handed
over for reporting once the link returns: ``unreported()`` then ``mark_reported(ids)``.

Storage: one ``agent.recordlog.RecordLog`` (CRC-framed, torn-tail safe) of small JSON
events: ``open``, ``close``, ``reported``. The intervals are folded from the events on
start. Compaction keeps only what is still open or unreported.

Time: durations come from the monotonic clock (never jumps); start/end are wall time
with ``wall_trusted`` flags, because routers boot without an RTC. When the wall clock
was untrusted at the start but trusted at the end, the start is recomputed as
end - duration and flagged ``start_derived``. An interval still open when the agent
restarts is closed at the restart with ``end_at_restart`` (its true end is unknown, the
restart is the earliest time we know service could have been back).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.errors import JournalError
from agent.recordlog import RecordLog
from agent.store import ensure_private_dir

LOGGER = logging.getLogger(__name__)

KINDS = ("no_service", "no_data", "modem_unresponsive", "broker_unreachable")
"""no_service: not registered / no signal; no_data: registered but the data context is
down or rejected, or nothing passes; modem_unresponsive: the modem did not answer (the
recovery ladder was climbing); broker_unreachable: the data path was up but the platform
could not be reached (issue 9: the self-healing agent records the last two)."""

LOG_NAME = "outages.log"

COMPACT_AFTER_RECORDS = 200
"""Rewrite the log once it holds 200 events: ~30 kB, a few flash pages; an outage-heavy
day makes a few dozen."""

MAX_CAUSE_CHARS = 200
"""Causes come from modem text; a runaway string must not bloat the log or a report."""


@dataclass
class _Interval:
    id: int
    kind: str
    cause: str
    start_wall: float
    start_trusted: bool
    start_mono: float | None
    boot: int
    end_wall: float | None = None
    end_trusted: bool | None = None
    duration_s: float | None = None
    end_at_restart: bool = False
    reported: bool = False
    detail: dict[str, Any] | None = None
    """Where and on what (issue 23): the PLMN and cell of a carrier outage, its evidence."""

    def to_report(self) -> dict[str, Any]:
        start, derived = self.start_wall, False
        if not self.start_trusted and self.end_trusted and self.end_wall is not None \
                and self.duration_s is not None:
            start, derived = self.end_wall - self.duration_s, True
        return {"id": self.id, "kind": self.kind, "cause": self.cause, "start": start,
                "end": self.end_wall, "duration_s": self.duration_s,
                "wall_trusted": bool(self.start_trusted or derived) and bool(self.end_trusted),
                "start_derived": derived, "end_at_restart": self.end_at_restart,
                **({"detail": dict(self.detail)} if self.detail else {})}


class OutageLog:
    """One writer (the supervisor). ``start``/``end`` are durable when they return."""

    def __init__(self, state_dir: Path | str, clock: Clock):
        self.clock = clock
        self._log = RecordLog(ensure_private_dir(state_dir) / LOG_NAME)
        self._intervals: dict[int, _Interval] = {}
        self._boot = 0
        self._next_id = 1
        self._fold()
        self._boot += 1
        self._close_leftovers()

    # --------------------------------------------------------------- storage

    def _append(self, event: dict[str, Any]) -> None:
        """Queue ``event`` and write it. A state directory that cannot be written (full,
        read-only) must not stop the agent: the event stays queued in memory, in order,
        and goes to flash with the next event that can be written."""
        self._log.append(json.dumps(event, sort_keys=True, separators=(",", ":")).encode())
        try:
            self._log.flush()
        except JournalError as exc:
            LOGGER.error("outage log not written (kept in memory, retried with the next event): %s", exc)

    def _fold(self) -> None:
        for raw in self._log.records:
            try:
                ev = json.loads(raw)
                self._apply(ev)
            except (ValueError, KeyError, TypeError) as exc:  # CRC passed but content odd
                LOGGER.error("outage log: skipping unreadable event %r (%s)", raw[:80], exc)

    def _apply(self, ev: dict[str, Any]) -> None:
        op = ev["op"]
        if op == "open":
            self._next_id = max(self._next_id, int(ev["id"]) + 1)
            self._boot = max(self._boot, int(ev["boot"]))
            self._intervals[int(ev["id"])] = _Interval(
                id=int(ev["id"]), kind=str(ev["kind"]), cause=str(ev["cause"]),
                start_wall=float(ev["wall"]), start_trusted=bool(ev["trusted"]),
                start_mono=float(ev["mono"]), boot=int(ev["boot"]),
                detail=ev["detail"] if isinstance(ev.get("detail"), dict) else None)
        elif op == "close":
            iv = self._intervals.get(int(ev["id"]))
            if iv is not None:
                iv.end_wall, iv.end_trusted = float(ev["wall"]), bool(ev["trusted"])
                iv.duration_s = ev.get("duration_s")
                iv.end_at_restart = bool(ev.get("at_restart", False))
        elif op == "seq":  # written by compaction: ids keep growing past dropped intervals
            self._next_id = max(self._next_id, int(ev["next"]))
            self._boot = max(self._boot, int(ev["boot"]))
        elif op == "cause":  # issue 9: the cause became clearer while the outage lasted
            iv = self._intervals.get(int(ev["id"]))
            if iv is not None:
                iv.cause = str(ev["cause"])
                if isinstance(ev.get("detail"), dict):
                    iv.detail = ev["detail"]
        elif op == "reported":
            for i in ev["ids"]:
                if int(i) in self._intervals:
                    self._intervals[int(i)].reported = True

    def _close_leftovers(self) -> None:
        for iv in self._intervals.values():
            if iv.end_wall is None:
                self._close(iv, at_restart=True)

    # ------------------------------------------------------------------- API

    def open_interval(self, kind: str) -> dict[str, Any] | None:
        """The interval of ``kind`` in progress, if any (report form)."""
        iv = self._open(kind)
        return None if iv is None else iv.to_report()

    def open_now(self) -> list[tuple[str, str]]:
        """(kind, cause) of every outage in progress, in KINDS order."""
        return [(iv.kind, iv.cause) for kind in KINDS if (iv := self._open(kind)) is not None]

    def _open(self, kind: str) -> _Interval | None:
        return next((iv for iv in self._intervals.values() if iv.kind == kind and iv.end_wall is None), None)

    def start(self, kind: str, cause: str, ago: float = 0.0, detail: dict[str, Any] | None = None) -> int:
        """Record that an outage of ``kind`` began now, or ``ago`` seconds before now when
        it is only recognised after a grace period (idempotent while one is open).
        ``detail``: the PLMN, cell and evidence of a carrier outage (issue 23)."""
        if kind not in KINDS:
            raise JournalError(f"unknown outage kind {kind!r}")
        existing = self._open(kind)
        if existing is not None:
            return existing.id
        ident = self._next_id
        ev = {"op": "open", "id": ident, "kind": kind, "cause": str(cause)[:MAX_CAUSE_CHARS],
              "wall": self.clock.wall() - ago, "trusted": self.clock.wall_trusted(),
              "mono": self.clock.monotonic() - ago, "boot": self._boot}
        if detail:
            ev["detail"] = dict(detail)
        self._append(ev)
        self._apply(ev)
        LOGGER.warning("outage %d began: %s (%s)", ident, kind, ev["cause"])
        return ident

    def amend_cause(self, kind: str, cause: str, detail: dict[str, Any] | None = None) -> None:
        """The outage of ``kind`` in progress has a clearer cause now (a deactivation that
        turned into a refused re-activation): record it (no-op if none is open or unchanged)."""
        iv = self._open(kind)
        cause = str(cause)[:MAX_CAUSE_CHARS]
        if iv is None or (iv.cause == cause and (detail is None or detail == iv.detail)):
            return
        ev: dict[str, Any] = {"op": "cause", "id": iv.id, "cause": cause}
        if detail:
            ev["detail"] = dict(detail)
        self._append(ev)
        self._apply(ev)

    def amend_detail(self, kind: str, detail: dict[str, Any]) -> None:
        """Where and on what the outage of ``kind`` in progress is (its PLMN, cell and
        evidence), keeping its cause: the healer may have named that first. Only once: an
        outage that goes on across an escape keeps the carrier it began on, not the one a
        later verdict on the new SIM names."""
        iv = self._open(kind)
        if iv is not None and not iv.detail:
            self.amend_cause(kind, iv.cause, detail)

    def end(self, kind: str) -> dict[str, Any] | None:
        """Record that the outage of ``kind`` in progress ended now; its report form."""
        iv = self._open(kind)
        if iv is None:
            return None
        self._close(iv, at_restart=False)
        LOGGER.warning("outage %d ended after %.0f s", iv.id, iv.duration_s or 0)
        return iv.to_report()

    def _close(self, iv: _Interval, *, at_restart: bool) -> None:
        wall, trusted = self.clock.wall(), self.clock.wall_trusted()
        if at_restart or iv.start_mono is None or iv.boot != self._boot:
            # Another boot: the monotonic clocks do not compare. Trust wall time only if
            # both ends were trusted; otherwise the duration is unknown.
            duration = wall - iv.start_wall if (iv.start_trusted and trusted) else None
        else:
            duration = self.clock.monotonic() - iv.start_mono
        ev = {"op": "close", "id": iv.id, "wall": wall, "trusted": trusted,
              "duration_s": None if duration is None else round(max(0.0, duration), 3),
              "at_restart": at_restart}
        self._append(ev)
        self._apply(ev)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` intervals, open or closed, oldest first (for the console)."""
        return [iv.to_report() for iv in list(self._intervals.values())[-limit:]]

    def unreported(self) -> list[dict[str, Any]]:
        """Closed intervals not yet acknowledged upstream, oldest first."""
        return [iv.to_report() for iv in sorted(self._intervals.values(), key=lambda i: i.id)
                if iv.end_wall is not None and not iv.reported]

    def mark_reported(self, ids: list[int]) -> None:
        """The platform has them: never hand these over again (durable on return)."""
        known = [int(i) for i in ids if int(i) in self._intervals]
        if not known:
            return
        ev = {"op": "reported", "ids": known}
        self._append(ev)
        self._apply(ev)
        if len(self._log.records) >= COMPACT_AFTER_RECORDS:
            try:
                self.compact()
            except JournalError as exc:  # compaction is housekeeping: retried next time
                LOGGER.error("outage log not compacted: %s", exc)

    def compact(self) -> None:
        """Rewrite the log with only open or unreported intervals."""
        keep: list[bytes] = []
        for iv in sorted(self._intervals.values(), key=lambda i: i.id):
            if iv.reported and iv.end_wall is not None:
                continue
            keep.append(json.dumps({"op": "open", "id": iv.id, "kind": iv.kind, "cause": iv.cause,
                                    "wall": iv.start_wall, "trusted": iv.start_trusted,
                                    "mono": iv.start_mono, "boot": iv.boot,
                                    **({"detail": iv.detail} if iv.detail else {})},
                                   sort_keys=True, separators=(",", ":")).encode())
            if iv.end_wall is not None:
                keep.append(json.dumps({"op": "close", "id": iv.id, "wall": iv.end_wall,
                                        "trusted": iv.end_trusted, "duration_s": iv.duration_s,
                                        "at_restart": iv.end_at_restart},
                                       sort_keys=True, separators=(",", ":")).encode())
        keep.insert(0, json.dumps({"op": "seq", "next": self._next_id, "boot": self._boot}).encode())
        self._log.compact(keep)
        self._intervals = {i: iv for i, iv in self._intervals.items()
                           if not (iv.reported and iv.end_wall is not None)}

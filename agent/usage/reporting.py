"""When to send usage upstream: when there is usage worth a message, or as a heartbeat.

Every report is bytes on the user's SIM (MQTT publish, TLS record, TCP/IP headers, the
cloud's ack back: ~1.5 kB for a record or two). Reporting every few seconds whether or
not anything was used is what made an idle router spend ~15 MB a day on itself. So:

* usage is sent when the unsent usage reaches ``min_bytes`` (1 MiB: a user is using the SIM:
  the platform wants near real-time remaining data), at most every ``min_interval_s``;
* otherwise whatever is pending (the agent's own keep-alives, a few kB) goes out once per
  ``heartbeat_s`` (config ``[usage] heartbeat_s``; later the cloud's policy sets it);
* a cloud ``report`` command, a SIM switch or shutdown sends at once (``open_now``).

``ReportGate`` wraps the usage journal as the cloud link's ReliableSource: it offers the
journal's records only while a report is due and until they are all sent, so the link's
own retries and drains cannot turn into a report every few seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from agent.clock import Clock

LOGGER = logging.getLogger(__name__)

HEARTBEAT_S = 3600.0
"""An idle router reports once an hour: the platform still sees it alive and its small
own usage counted, for ~24 messages (~40 kB) a day."""

MIN_BYTES = 1024 * 1024
"""Usage worth a message of its own: 1 MiB is 1 % of a 100 MB plan (the platform's view of
the remaining allowance stays within 1 %), and a user of that plan's whole daily share
(~33 MB) causes ~33 reports (~50 kB), not hundreds."""


@dataclass(frozen=True)
class ReportPolicy:
    min_interval_s: float = 60.0
    heartbeat_s: float = HEARTBEAT_S
    min_bytes: int = MIN_BYTES


def report_due(*, now: float, last: float | None, pending_bytes: int, pending_records: int,
               policy: ReportPolicy) -> str | None:
    """Why a report is due now ("usage", "heartbeat"), or None. ``last`` is the monotonic
    time of the last report (None: never, e.g. just started)."""
    if pending_records == 0:
        return None
    since = float("inf") if last is None else now - last
    if pending_bytes >= policy.min_bytes and since >= policy.min_interval_s:
        return "usage"
    if since >= policy.heartbeat_s:
        return "heartbeat"
    return None


class Source(Protocol):
    stream: str

    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]: ...

    def ack(self, upto: int) -> None: ...

    def epoch_of(self, seq: int) -> tuple[str, int]: ...

    def ack_epoch(self, upto: int, epoch: str) -> None: ...


class ReportGate:
    """The journal as the link sees it: records offered only while a report is open."""

    def __init__(self, journal: Source, clock: Clock, policy: ReportPolicy):
        self.journal = journal
        self.stream = journal.stream
        self.clock = clock
        self.policy = policy
        self._open = False
        self._last: float | None = clock.monotonic()
        """Start as if a report had just gone: a restart does not report at once."""
        self.reports = 0

    def _backlog(self) -> tuple[int, int]:
        records = self.journal.pending(10_000)
        return sum(int(b.get("rx_bytes", 0)) + int(b.get("tx_bytes", 0)) for _, b in records), len(records)

    def due(self) -> str | None:
        """Open a report if one is due; returns why (the caller then kicks the link)."""
        if self._open:
            return "open"
        nbytes, nrec = self._backlog()
        why = report_due(now=self.clock.monotonic(), last=self._last, pending_bytes=nbytes,
                         pending_records=nrec, policy=self.policy)
        if why is not None:
            self.open_now(why)
        return why

    def open_now(self, why: str = "request") -> None:
        """Send what is pending now (a cloud request, a SIM switch, shutdown)."""
        self._open = True
        self._last = self.clock.monotonic()
        self.reports += 1
        LOGGER.debug("usage report opened (%s)", why)

    # -- ReliableSource ----------------------------------------------------------------
    def pending(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        if not self._open:
            return []
        out = self.journal.pending(limit)
        if not out:
            self._open = False  # everything sent and acked: close until the next one is due
        return out

    def ack(self, upto: int) -> None:
        self.journal.ack(upto)

    def epoch_of(self, seq: int) -> tuple[str, int]:
        """The journal's epochs go through the gate unchanged (agent/epochs.py)."""
        return self.journal.epoch_of(seq)

    def ack_epoch(self, upto: int, epoch: str) -> None:
        self.journal.ack_epoch(upto, epoch)

"""The device's audit log of technician actions: logins, failed logins, privileged commands.

Why on the device as well as upstream: the cloud may be unreachable exactly when a
technician is on site (that is often why they came), and the question "who reset this
modem, when" must still have an answer afterwards. Each entry is one CRC-framed
``RecordLog`` record, flushed (fsync'd) before the action runs, so a reboot ordered from
the console is on flash before the router goes down. The log keeps the newest
``KEEP_RECORDS`` entries (compacted atomically), and every entry goes upstream as an
``audit`` event through the cloud link's durable outbox.

Entries are small JSON objects of strings, numbers and flat dicts; every string is
clipped and passed through ``redact_keys``, so even a technician pasting a key into
``at`` leaves no key on flash.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.recordlog import RecordLog
from agent.sim import redact_keys
from agent.store import ensure_private_dir

LOGGER = logging.getLogger(__name__)

LOG_NAME = "console-audit.log"
KEEP_RECORDS = 1000
"""Entries kept on the device: years of normal visits (a visit makes ~10), ~200 kB."""
MAX_TEXT = 300
"""Characters per string field: an AT command line is at most 256 (linedisc.LINE_MAX)."""
MAX_DEPTH = 2


def clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded, key-free copy of an entry."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict) and depth < MAX_DEPTH:
        return {str(k)[:40]: clean(v, depth + 1) for k, v in list(value.items())[:20]}
    return redact_keys(str(value)[:MAX_TEXT])


class AuditLog:
    """One writer (the daemon); ``append`` is durable when it returns."""

    def __init__(self, state_dir: Path | str, clock: Clock):
        self.clock = clock
        self._log = RecordLog(ensure_private_dir(state_dir) / LOG_NAME)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        record = clean(dict(entry))
        record["at"] = self.clock.now().isoformat(timespec="seconds")
        record["wall_trusted"] = self.clock.wall_trusted()
        self._log.append(json.dumps(record, sort_keys=True).encode())
        self._log.flush()
        if len(self._log.records) > KEEP_RECORDS + KEEP_RECORDS // 10:
            self._log.compact(self._log.records[-KEEP_RECORDS:])
        return record

    def entries(self, limit: int = 50) -> list[dict[str, Any]]:
        out = []
        for raw in self._log.records[-limit:]:
            try:
                out.append(json.loads(raw))
            except ValueError:
                LOGGER.warning("audit log: unreadable record skipped")
        return out

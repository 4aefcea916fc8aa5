"""The agent's status file: what a technician, ``pocket-lab`` and the console read; and
the one line an operator reads in ``systemctl status`` (``service_line``).

Written atomically (readers never see half a file), world-readable, and never holding
a secret: the SIM appears through ``SimProfile.public()`` only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import store


class StatusFile:
    """Keeps the latest status in memory and writes it on change or on ``flush``."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data: dict[str, Any] = {"state": "starting"}
        self.on_change: Callable[[dict[str, Any]], None] = lambda data: None
        """Called after every update (the supervisor's STATUS= line); must not raise."""

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        try:
            self.write()
        finally:  # the line is told even when the file could not be written
            self.on_change(self.data)

    def write(self) -> None:
        if self.path is None:
            return
        self.data["updated"] = time.time()
        store.atomic_write_json(self.path, self.data, mode=store.PUBLIC_MODE)


DATA_PATH_OUTAGES = ("modem_unresponsive", "no_service", "no_data")
"""Outages that stop the users' traffic (agent/health/outage.py KINDS); the fourth,
``broker_unreachable``, leaves them served and only the cloud waiting."""


def service_line(data: dict[str, Any], outages: list[tuple[str, str]]) -> str | None:
    """What ``systemctl status`` should say for status ``data`` and the outages in
    progress (kind, cause), or None when READY=/STOPPING= and the exit say it already
    (starting, stopped, failed).

    Serving names the SIM; a swap says so; an outage of the data path names its kind and
    cause and the healer's last step; a broker outage is added to the serving line."""
    sim = data.get("sim") or {}
    name = f"SIM {sim.get('iccid')}" if sim.get("iccid") else "no SIM"
    state = data.get("state")
    if state == "swapping":
        return f"swapping away from {name}"
    if state != "serving":
        return None
    down = [(kind, cause) for kind, cause in outages if kind in DATA_PATH_OUTAGES]
    if down:
        kind, cause = down[0]
        step = (data.get("heal") or {}).get("last_step")
        return f"outage on {name}: {kind} ({cause}); healing" + (f", last step {step}" if step else "")
    line = f"serving on {name}"
    cloud = next((cause for kind, cause in outages if kind == "broker_unreachable"), None)
    return line + ("; cloud unreachable" if cloud is not None else "")

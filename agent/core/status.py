"""The agent's status file: what a technician, ``pocket-lab`` and the console read.

Written atomically (readers never see half a file), world-readable, and never holding
a secret: the SIM appears through ``SimProfile.public()`` only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent import store


class StatusFile:
    """Keeps the latest status in memory and writes it on change or on ``flush``."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data: dict[str, Any] = {"state": "starting"}

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        if self.path is None:
            return
        self.data["updated"] = time.time()
        store.atomic_write_json(self.path, self.data, mode=store.PUBLIC_MODE)

"""How the daemon gives up: an honest exit code and the reason kept in its status file.

The supervisor calls ``give_up`` from wherever it decides it cannot go on (the recovery
ladder failed, a task crashed, start-up failed); the first reason wins, because later
failures are usually consequences of the first. ``code_for`` maps what start-up raised to
the code a service manager acts on (agent/core/exitcodes.py). Giving up never raises:
the caller stops the daemon next, and an error here would skip that stop.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.core import exitcodes

LOGGER = logging.getLogger(__name__)

code_for = exitcodes.exit_code_for
"""The one mapping from an error to an exit code (agent/core/exitcodes.py)."""


class GiveUp:
    """The daemon's decision to stop with a failure; remembers the first one."""

    def __init__(self, status: Any):
        self.status = status
        self.code: int = exitcodes.OK
        self.reason: str | None = None

    def __call__(self, code: int, reason: str) -> None:
        if self.code != exitcodes.OK:
            LOGGER.info("also failing (%s), keeping the first reason", reason)
            return
        self.code, self.reason = code, reason
        LOGGER.error("giving up with exit code %d: %s", code, reason)
        try:
            self.status.update(state="failed", error=reason, exit_code=code)
        except OSError as exc:
            # The status file is a report of the decision, not part of it: a full or
            # read-only /run must not undo the decision (issue 20, finding 13: the raise
            # skipped the stop, and the daemon ran on without its dead task).
            LOGGER.error("could not record the failure in the status file: %s", exc)

    @property
    def failed(self) -> bool:
        return self.code != exitcodes.OK

"""Lab time: the world's clock in a running lab, which ``pocket-lab clock --advance`` moves.

Why: the plans' rules turn on a JST midnight, a month start and 72 hours (issue 22); a test
cannot wait for them. Lab time is the host's clock plus an offset kept in the lab
directory (``lab_time.json``: ``{"offset_s": S}``), never the host's clock itself. The
carrier reads it for its rules (board/virtual/network/plancarrier.py), the virtual modem
for the network's time (``+CCLK``), and the agent through the clock-offset file its lab
build reads (``agent/clock_offset.json``, agent/clock.py ``OffsetFileClock``), which holds
lab time's offset plus any device clock fault (``pocket-lab fault clock``) on top.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent import store
from agent.clock import Clock

LAB_TIME_NAME = "lab_time.json"
AGENT_OFFSET = Path("agent") / "clock_offset.json"
"""The agent's clock-offset file under the lab directory (faults.CLOCK_OFFSET_NAME)."""
FAULT_NAME = "clock_fault.json"
"""A device clock fault's step, kept apart so that advancing lab time keeps it."""


def _read(path: Path) -> float:
    try:
        return float(json.loads(path.read_text()).get("offset_s", 0.0))
    except (OSError, ValueError, AttributeError):
        return 0.0


def offset(lab_dir: Path) -> float:
    """Seconds lab time runs ahead of the host's clock."""
    return _read(Path(lab_dir) / LAB_TIME_NAME)


def lab_time(lab_dir: Path) -> float:
    """Lab time now (UNIX seconds)."""
    return time.time() + offset(lab_dir)


class LabClock(Clock):
    """A service's clock in a running lab: lab time, read afresh at every call. The
    reference cloud stamps its sealed envelopes and judges its swap holds with it: a cloud
    on the host's clock sealed envelopes that expired 72 lab hours before the device,
    whose clock is lab time, opened them (the plan lab's 200 kbps SIM after the 72-hour
    tests: every assignment refused as expired)."""

    def __init__(self, lab_dir: Path) -> None:
        super().__init__()
        self.lab_dir = Path(lab_dir)

    def _system_wall(self) -> float:
        return lab_time(self.lab_dir)


def agent_offset(lab_dir: Path) -> float:
    """What the agent's clock-offset file holds: lab time's offset plus a clock fault's step."""
    return offset(lab_dir) + _read(Path(lab_dir) / FAULT_NAME)


def _write_agent(lab_dir: Path) -> None:
    path = Path(lab_dir) / AGENT_OFFSET
    total = agent_offset(lab_dir)
    if total == 0.0:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.atomic_write_json(path, {"offset_s": total}, mode=store.PUBLIC_MODE)


def advance(lab_dir: Path, seconds: float) -> float:
    """Move lab time ``seconds`` forward (never back: a carrier's clock does not run
    backwards); returns the new offset. The agent sees it within half a second."""
    if seconds < 0:
        raise ValueError("lab time only moves forward (a device clock fault can step back)")
    new = offset(lab_dir) + seconds
    store.atomic_write_json(Path(lab_dir) / LAB_TIME_NAME, {"offset_s": new}, mode=store.PUBLIC_MODE)
    _write_agent(lab_dir)
    return new


def set_fault(lab_dir: Path, step: float | None) -> None:
    """A device clock fault of ``step`` seconds on the agent's clock (None: lifted)."""
    path = Path(lab_dir) / FAULT_NAME
    if step is None:
        path.unlink(missing_ok=True)
    else:
        store.atomic_write_json(path, {"offset_s": float(step)}, mode=store.PUBLIC_MODE)
    _write_agent(lab_dir)

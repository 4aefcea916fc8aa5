"""The platform's side of a rollout: waves, each device's moment inside its wave, the abort rule.

AWS IoT Jobs' staged rollouts in the platform's own words (docs/update.md, "Rollouts"):

- the fleet is split into **waves** by a stable hash of (rollout, device): the first wave
  is the **canary** (1 % by default), each later wave a larger cumulative share;
- each device of an open wave is offered the release at one moment drawn **uniformly
  inside the wave's window** (the same pacing rule as the agent's reconnects and swap
  orders, agent/cloud/pacing.py: a fleet offered at once fetches at once, the 2020
  failure in another form);
- a wave opens only once the previous one's window is over and its outcomes pass the
  **abort rule**: when, in any wave, rolled-back releases are more than
  ``abort_failure_rate`` of at least ``abort_min_outcomes`` outcomes, the rollout stops:
  no further offer, and the devices not yet committed get the abort (an offer of the
  version they run, agent/core/updater.py).

Pure: the reference cloud and the fleet simulator (board/fleet/scenarios.py) feed it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

SUCCESS, FAILURE = "committed", "rolled_back"


@dataclass(frozen=True)
class RolloutPlan:
    """A rollout's shape. ``waves`` are cumulative shares of the fleet, the first the canary."""

    waves: tuple[float, ...] = (0.01, 0.10, 0.50, 1.0)
    window_s: float = 3600.0
    """An hour per wave: a 100,000-router wave of 40 % fetches at 11 devices a second."""
    abort_failure_rate: float = 0.05
    """A release that fails on more than one router in twenty is stopped."""
    abort_min_outcomes: int = 20
    """Below twenty outcomes one unlucky router (a dead battery mid-trial) would stop a
    good release; 1 % of 100,000 gives the canary a thousand."""

    def __post_init__(self) -> None:
        if not self.waves or any(not 0 < w <= 1 for w in self.waves) or list(self.waves) != sorted(self.waves) \
                or self.waves[-1] != 1.0:
            raise ValueError(f"waves must rise to 1.0: {self.waves}")
        if self.window_s <= 0 or not 0 < self.abort_failure_rate < 1 or self.abort_min_outcomes < 1:
            raise ValueError("window, failure rate and minimum outcomes must be positive")


def wave_of(rollout_id: str, device_id: str, plan: RolloutPlan) -> int:
    """The device's wave: a stable hash of (rollout, device) placed on the cumulative shares.
    Stable, so a redelivered offer or a restarted cloud puts a device in the same wave; by
    rollout, so the same routers are not always the canaries."""
    digest = hashlib.sha256(f"{rollout_id}/{device_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    return next(i for i, share in enumerate(plan.waves) if point < share)


def offer_time(wave_start: float, plan: RolloutPlan, rng: random.Random) -> float:
    """The device's moment: uniform inside its wave's window (full jitter, as pacing.py)."""
    return wave_start + rng.uniform(0.0, plan.window_s)


@dataclass
class Rollout:
    """One rollout's progress: outcomes per wave, the wave open now, whether it was aborted."""

    rollout_id: str
    plan: RolloutPlan
    started: float
    outcomes: dict[int, dict[str, int]] = field(default_factory=dict)
    aborted_at: float | None = None
    abort_wave: int | None = None

    def record(self, wave: int, status: str, now: float) -> None:
        """An ``update`` event's outcome (committed / rolled_back) from a device of ``wave``."""
        if status not in (SUCCESS, FAILURE):
            return
        counts = self.outcomes.setdefault(wave, {SUCCESS: 0, FAILURE: 0})
        counts[status] += 1
        if self.aborted_at is None and self._breaks_rule(counts):
            self.aborted_at, self.abort_wave = now, wave

    def _breaks_rule(self, counts: dict[str, int]) -> bool:
        total = counts[SUCCESS] + counts[FAILURE]
        return total >= self.plan.abort_min_outcomes and counts[FAILURE] / total > self.plan.abort_failure_rate

    def wave_start(self, wave: int) -> float:
        return self.started + wave * self.plan.window_s

    def open_wave(self, now: float) -> int | None:
        """The last wave whose window has begun, or None once aborted (nothing more offered)."""
        if self.aborted_at is not None:
            return None
        return min(int((now - self.started) // self.plan.window_s), len(self.plan.waves) - 1)

    def may_offer(self, wave: int, now: float) -> bool:
        """Whether a device of ``wave`` may be offered the release at ``now``."""
        current = self.open_wave(now)
        return current is not None and wave <= current

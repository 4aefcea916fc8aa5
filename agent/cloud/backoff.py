"""Reconnect delays: capped exponential back-off with full jitter.

Why full jitter (a random delay between 0 and the capped exponential value, as
aiomqtt and Home Assistant do): when a broker drops every device at the same instant,
plain exponential back-off brings the whole fleet back in synchronised waves; drawing
each delay uniformly from [0, cap_n] spreads reconnects evenly. The first attempt after
a *live* connection drops also waits a random delay in [0, FIRST_DELAY_MAX], for the
same reason: the fleet lost the broker together and must not return together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BASE_S = 1.0
"""First back-off ceiling: one second is long enough not to spin on a refused TLS handshake."""

CAP_S = 300.0
"""Ceiling on any delay: 5 minutes keeps a device that was offline through an outage
back within minutes of recovery (the MVNO survey asks for self-recovery), while 100,000
devices retrying at most every 5 minutes cost the broker ~330 attempts per second."""

FIRST_DELAY_MAX_S = 10.0
"""Random first delay after a live connection drops: spreads a fleet's return over 10 s."""


@dataclass
class Backoff:
    """Stateful full-jitter back-off. ``next_delay()`` after a failure; ``reset()`` after success."""

    base: float = BASE_S
    cap: float = CAP_S
    first_delay_max: float = FIRST_DELAY_MAX_S
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def ceiling(self) -> float:
        """The current upper bound: base * 2^attempt, capped."""
        return min(self.cap, self.base * (2 ** min(self.attempt, 32)))

    def next_delay(self) -> float:
        """A delay uniform in [0, ceiling], then widen the ceiling for the next failure."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def first_delay(self) -> float:
        """Delay before the first reconnect after a live connection dropped."""
        return self.rng.uniform(0.0, min(self.first_delay_max, self.cap))

    def reset(self) -> None:
        self.attempt = 0


def jittered(seconds: float, rng: random.Random, spread: float = 0.5) -> float:
    """``seconds`` plus up to ``spread`` of itself at random: for honouring "retry after"."""
    return seconds * (1.0 + rng.uniform(0.0, spread))

"""The fleet simulator's engine: one heap of events on a simulated clock, one real Pacer per device.

Why a discrete-event simulation and not 100,000 real links: the question is what a fleet
does to a platform over an hour, which no machine of ours can run in real processes. What
keeps the answer honest is that every delay a simulated device waits comes from the
agent's own code: ``agent.cloud.pacing.Pacer`` (reconnect, resume, boot spread, CONNACK
widening, "retry after") and ``agent.cloud.backoff`` for the 2020 baseline, driven by the
link's own timeouts (``agent.cloud.link``). tests/bench/bench_fleet.py checks one device's
model against real CloudLinks and a real mosquitto.

The platform model (``Resource``): each kind of work (broker connections, SIM assignments)
has an admission rate (work per second it can do) and an answer rate (requests per second
it can look at, admitting or refusing). Beyond admission it refuses cheaply (CONNACK 0x9F,
"retry after"); beyond the answer rate it is overrun and goes **busy**: for ``busy_s`` it
answers nothing, which the device sees as a timeout, and every second that is overrun again
keeps it busy. That is how the 2020 access server fell over. A 2020-style platform has no
cheap refusal: its answer rate is its admission rate.

Per-event work is a heap pop, a list index and a Pacer call; 100,000 devices for a simulated
hour take seconds to a minute here (tests/bench/bench_fleet.py prints the wall time).
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.cloud.backoff import jittered
from agent.cloud.link import CONNECT_TIMEOUT_S, REQUEST_ATTEMPT_S
from agent.cloud.pacing import CONNECTION_RATE_EXCEEDED, Pacer, PacingPolicy

LOGGER = logging.getLogger(__name__)

SWAP_S = 20.0
"""Time from an assignment to service on the new SIM: the regulator's review saw "tens of
seconds" of lost connection per switch; the virtual modem's load-attach-route is ~20 s."""

RETRY_AFTER_S = 5.0
"""What the platform answers beyond admission (board/virtual/cloud/reference.py RETRY_AFTER_S)."""

DETECT_MEDIAN_S = 8.5
DETECT_P95_S = 14.0
"""The classifier's detection delay over the trace library (tests/bench/bench_detection.py,
tests/traces): median 8.5 s, p95 14 s. Modelled as a log-normal through both points."""

Z95 = 1.6449
"""Standard normal 95th percentile, to fit the log-normal's sigma from the p95."""

# event kinds
CONNECT, REQUEST, SWAPPED, CAPPED, DETECTED = range(5)


@dataclass(frozen=True)
class Resource:
    """One kind of platform work: admission and answer rates per second, busy time when overrun."""

    name: str
    admit_per_s: int
    answer_per_s: int
    busy_s: float = 60.0


@dataclass
class Load:
    """What one resource saw, per simulated second."""

    resource: Resource
    horizon: int
    offered: list[int] = field(default_factory=list)
    admitted: list[int] = field(default_factory=list)
    busy_until: float = -1.0
    overruns: int = 0
    busy_spans: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.offered = [0] * (self.horizon + 1)
        self.admitted = [0] * (self.horizon + 1)

    def busy_seconds(self) -> float:
        """Time the resource answered nothing, within the run."""
        return sum(min(end, self.horizon) - start for start, end in self.busy_spans)

    def offer(self, t: float) -> str:
        """One request at ``t``: "ok", "refused" (cheap "not now") or "busy" (no answer)."""
        s = min(int(t), self.horizon)
        self.offered[s] += 1
        res = self.resource
        if self.offered[s] > res.answer_per_s:
            if t >= self.busy_until:
                self.overruns += 1
                self.busy_spans.append([t, t + res.busy_s])
            self.busy_until = self.busy_spans[-1][1] = max(self.busy_until, t + res.busy_s)
        if t < self.busy_until:
            return "busy"
        if self.admitted[s] < res.admit_per_s:
            self.admitted[s] += 1
            return "ok"
        return "refused"


class Detection:
    """The classifier's detection delay as a log-normal fitted to its measured median and p95."""

    def __init__(self, rng: random.Random, median: float = DETECT_MEDIAN_S, p95: float = DETECT_P95_S):
        self.rng, self.mu, self.sigma = rng, math.log(median), math.log(p95 / median) / Z95

    def delay(self) -> float:
        return self.rng.lognormvariate(self.mu, self.sigma)


class Fleet:
    """Devices and the platform; scenarios (board/fleet/scenarios.py) schedule the disruption.

    ``paced`` devices run this issue's Pacer with the platform's policy; unpaced ones run
    the agent as it was before it (10 s first delay, no widening, "retry after" jittered
    by half, no boot spread), which is also what the 2020 comparison needs.
    """

    def __init__(self, n: int, *, policy: PacingPolicy, paced: bool, connections: Resource, assignments: Resource,
                 horizon: int, seed: int = 1, tracks_throttled: bool = True):
        self.n, self.paced, self.horizon = n, paced, horizon
        self.rng = random.Random(seed)
        self.pacers = [Pacer(policy, self.rng, booted=False) for _ in range(n)]
        self.conn = Load(connections, horizon)
        self.assign = Load(assignments, horizon)
        self.tracks_throttled = tracks_throttled
        self.connected = [True] * n
        self.broker_up_at = 0.0
        self.net_down = [False] * n
        self.sim = list(range(n))
        self.free_sims: list[int] = []
        self.capped: set[int] = set()
        self.known_throttled: set[int] = set()
        self.reassigned_throttled = 0
        self.served_at: dict[int, float] = {}
        self.affected: list[int] = []
        self.affected_set: set[int] = set()
        self.wants_sim = [False] * n
        self.detection = Detection(self.rng)
        self.events: list[tuple[float, int, int]] = []
        self.processed = 0
        self.after_connect: Callable[[int, float], None] = self._served_on_connect

    # --- scheduling -----------------------------------------------------------------------

    def at(self, t: float, kind: int, dev: int) -> None:
        if t <= self.horizon:
            heapq.heappush(self.events, (t, kind, dev))

    def run(self) -> None:
        events, handlers = self.events, (self._connect, self._request, self._swapped, self._capped, self._detected)
        pop = heapq.heappop
        while events:
            t, kind, dev = pop(events)
            handlers[kind](dev, t)
            self.processed += 1

    # --- device behaviour --------------------------------------------------------------------

    def drop(self, dev: int, t: float) -> None:
        """The broker connection dropped (a broker restart)."""
        self.connected[dev] = False
        self.at(t + self.pacers[dev].after_drop(), CONNECT, dev)

    def resume(self, dev: int, t: float) -> None:
        """The device's data link came back (a regional outage ended, or a swap finished)."""
        self.net_down[dev] = False
        p = self.pacers[dev]
        self.at(t + (p.after_resume() if self.paced else p.after_drop()), CONNECT, dev)

    def _connect(self, dev: int, t: float) -> None:
        p = self.pacers[dev]
        if self.net_down[dev] or self.connected[dev]:
            return
        if t < self.broker_up_at:  # TCP refused at once: a plain failure
            self.at(t + self._failed(p), CONNECT, dev)
            return
        answer = self.conn.offer(t)
        if answer == "ok":
            self.connected[dev] = True
            self.after_connect(dev, t)
        elif answer == "refused":
            delay = p.after_refusal(CONNECTION_RATE_EXCEEDED) if self.paced else self._failed(p)
            self.at(t + delay, CONNECT, dev)
        else:  # busy: no CONNACK; the link gives up after its connect timeout
            self.at(t + CONNECT_TIMEOUT_S + self._failed(p), CONNECT, dev)

    def _failed(self, p: Pacer) -> float:
        """Delay after a failed attempt: the Pacer's, or the plain back-off the link used before it."""
        return p.after_failure() if self.paced else p.backoff.next_delay()

    def _served_on_connect(self, dev: int, t: float) -> None:
        if dev not in self.served_at:
            self.served_at[dev] = t

    def ask(self, dev: int, t: float) -> None:
        """The device wants a new SIM: a request now, or after its boot spread when paced."""
        self.wants_sim[dev] = True
        delay = self.pacers[dev].before_request() if self.paced else 0.0
        self.at(t + delay, REQUEST, dev)

    def _request(self, dev: int, t: float) -> None:
        if not self.wants_sim[dev]:
            return
        p = self.pacers[dev]
        answer = self.assign.offer(t)
        if answer == "ok":
            p.served()
            self.wants_sim[dev] = False
            self._assign(dev, t)
        elif answer == "refused":
            self.at(t + (p.retry_after(RETRY_AFTER_S) if self.paced else jittered(RETRY_AFTER_S, self.rng)),
                    REQUEST, dev)
        else:  # busy: no answer; the link re-sends with a new request id (paced: after a jittered wait)
            self.at(t + REQUEST_ATTEMPT_S + (p.after_silence() if self.paced else 0.0), REQUEST, dev)

    def _assign(self, dev: int, t: float) -> None:
        """The platform picks a SIM: never one reported throttled, if it tracks them."""
        free = self.free_sims
        while True:
            i = self.rng.randrange(len(free))
            new = free[i]
            if not (self.tracks_throttled and new in self.known_throttled):
                break
        free[i] = free[-1]
        free.pop()
        if new in self.capped:
            self.reassigned_throttled += 1
        free.append(self.sim[dev])
        self.sim[dev] = new
        self.at(t + SWAP_S, SWAPPED, dev)

    def _swapped(self, dev: int, t: float) -> None:
        """On the new SIM: served unless it is capped too; the data path changed, so the
        cloud session goes down and resumes."""
        if self.sim[dev] in self.capped:
            if self.paced:  # the classifier sees it again, and the device asks again
                self.at(t + self.detection.delay(), DETECTED, dev)
        elif dev not in self.served_at:
            self.served_at[dev] = t
        self.connected[dev] = False
        self.resume(dev, t)

    def _capped(self, dev: int, t: float) -> None:
        """The wholesaler capped this device's SIM; a paced agent's classifier notices."""
        self.capped.add(self.sim[dev])
        if self.paced:
            self.at(t + self.detection.delay(), DETECTED, dev)

    def _detected(self, dev: int, t: float) -> None:
        """Health event (reliable stream, tiny) then an assignment request."""
        self.known_throttled.add(self.sim[dev])
        self.ask(dev, t)

    # --- figures -------------------------------------------------------------------------------

    def time_to_fraction(self, fraction: float, since: float | dict[int, float]) -> float | None:
        """Seconds until ``fraction`` of the affected devices were served, counted from
        ``since`` (one instant, or each device's own start); None if never within the run."""
        need = math.ceil(fraction * len(self.affected))
        if need == 0:
            return 0.0
        start = since if isinstance(since, dict) else dict.fromkeys(self.affected, since)
        waits = sorted(max(0.0, self.served_at[d] - start[d]) for d in self.affected if d in self.served_at)
        return waits[need - 1] if len(waits) >= need else None

    def unserved(self) -> int:
        return sum(1 for d in self.affected if d not in self.served_at)

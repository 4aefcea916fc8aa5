"""The fleet scenarios, the platform's sizing rule, and the morning-after figures.

Each scenario runs twice: **paced** (this agent, with the policy the platform sizes by
``size_policy`` from fleet size and capacity; the platform tracks reported throttled SIMs
and answers "not now" cheaply beyond admission) and **2020** (the agent without pacing: 10 s
first delay, no widening, no boot spread; for the SIM caps also the 2020 platform: it does
not know which SIMs are throttled, orders every affected device to swap at once, and has no
cheap refusal, so anything beyond its admission rate overruns it).

Figures per run (``Outcome``): peak and mean requests per second offered to the platform
against what it can answer, peak admitted against its admission rate, seconds it spent
busy, the time until 99 % of the affected devices were served again against what capacity
allows, devices still unserved at the end, and assignments of a throttled SIM.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.cloud import pacing
from agent.cloud.pacing import BOUNDS, Pacer, PacingPolicy
from board.fleet.sim import (
    CAPPED,
    CONNECT,
    DETECT_MEDIAN_S,
    DETECT_P95_S,
    REQUEST,
    SWAP_S,
    Z95,
    Fleet,
    Load,
    Resource,
)

CONNECTIONS = Resource("connections", admit_per_s=250, answer_per_s=1000)
"""A broker admitting 250 new sessions a second (managed IoT brokers document connection
limits in the low hundreds per second per account) and refusing up to 1,000 (a CONNACK
0x9F after the TLS handshake costs about a quarter of an admitted session, which also
restores subscriptions and queued messages)."""

ASSIGNMENTS = Resource("assignments", admit_per_s=200, answer_per_s=2000)
"""An assignment service admitting 200 a second (the operator's post-2020 batch of 200) and
answering "retry after" up to 2,000 a second (one small publish, no pool transaction)."""

ASSIGNMENTS_2020 = Resource("assignments", admit_per_s=200, answer_per_s=200)
"""The 2020 access server: no cheap refusal; beyond its rate it went busy."""

UTILISATION = 0.95
"""Windows are sized so the fleet's mean offered rate is 95 % of admission: random arrivals
above admission in a second are refused cheaply and retried, below it capacity idles; 95 %
keeps the time to serve 99 % within 10 % of what capacity allows."""

HORIZON_S = 3600
"""One simulated hour per scenario (the issue's measure)."""

RESTART_S = 10.0
"""A broker restart: the listener is back after ten seconds."""

REGION_SHARE = 0.3
"""A regional carrier outage takes 30 % of the fleet (one carrier in one region)."""

OUTAGE_AT_S, OUTAGE_S = 60.0, 1800.0
"""The outage starts a minute in and lasts 30 minutes."""

CAPPED_SIMS, CAP_WAVE_S = 3000, 600.0
"""The 2020 case: a wholesaler caps 3,000 SIMs within ten minutes."""

SPARE_SIMS = 0.10
"""The pool holds 10 % more SIMs than devices."""

BULK_AT_S = CAP_WAVE_S
"""The 2020 platform switches every affected user at once when the wave is over."""

ORDER_AT_S = 60.0
"""When the platform decides to move devices in the bulk-order scenario."""


def size_policy(fleet: int, region: int, connections: Resource = CONNECTIONS,
                assignments: Resource = ASSIGNMENTS, *, version: int = 1) -> PacingPolicy:
    """The platform's rule (docs/fleet.md): spread each kind of load so its mean is
    ``UTILISATION`` of admission, for the largest group that can be hit at once.

    - reconnect: the whole fleet loses the broker together;
    - resume: a region (one carrier) comes back together;
    - boot (request window): a region powered on together connects, asks, swaps and so
      connects again: twice the region in connections, the region in assignments;
    - swap: the largest bulk order is the whole region;
    - back-off base: half a broker restart, so the devices whose attempt fell into the
      restart retry over the next restart's length instead of piling onto its first second;
    - back-off cap: no less than the reconnect window, and large enough that the fleet
      failing together retries below the answer rate (full jitter: mean interval cap/2).
    """
    def window(n: int, per_s: int, name: str) -> float:
        bound = BOUNDS[name]
        return min(bound.high, max(bound.low, math.ceil(n / (UTILISATION * per_s))))

    reconnect = window(fleet, connections.admit_per_s, "reconnect_window_s")
    cap = max(300.0, reconnect, math.ceil(2 * fleet / connections.answer_per_s))
    base = min(BOUNDS["backoff_base_s"].high, max(1.0, RESTART_S / 2))
    return pacing.check(PacingPolicy(
        version=version, reconnect_window_s=reconnect,
        resume_window_s=window(region, connections.admit_per_s, "resume_window_s"),
        request_window_s=max(window(2 * region, connections.admit_per_s, "request_window_s"),
                             window(region, assignments.admit_per_s, "request_window_s")),
        swap_window_s=window(region, assignments.admit_per_s, "swap_window_s"),
        backoff_base_s=base, backoff_cap_s=min(BOUNDS["backoff_cap_s"].high, cap)))


def _policy(n: int, sized_for: int | None, scale: float) -> PacingPolicy:
    """The policy the platform sends: sized for ``sized_for`` devices (a stale policy) or the fleet."""
    m = sized_for or n
    return size_policy(m, int(m * REGION_SHARE), scaled(CONNECTIONS, scale), scaled(ASSIGNMENTS, scale))


@dataclass
class Outcome:
    scenario: str
    variant: str
    devices: int
    affected: int
    conn: Load
    assign: Load
    t99: float | None
    ideal: float
    unserved: int
    reassigned_throttled: int
    events: int
    wall_s: float
    policy: PacingPolicy

    def busy_s(self, load: Load) -> float:
        return load.busy_seconds()

    def peak(self, load: Load) -> tuple[int, int]:
        """(peak offered, peak admitted) per second."""
        return max(load.offered), max(load.admitted)

    def mean(self, load: Load) -> float:
        """Mean offered per second over the seconds between the first and the last request."""
        active = [i for i, v in enumerate(load.offered) if v]
        if not active:
            return 0.0
        return sum(load.offered) / (active[-1] - active[0] + 1)

    def within_capacity(self) -> bool:
        """Never overrun: every second's offered load within what the platform can answer."""
        return all(max(ld.offered) <= ld.resource.answer_per_s for ld in (self.conn, self.assign))


def _fleet(n: int, paced: bool, policy: PacingPolicy, seed: int, assignments: Resource = ASSIGNMENTS,
           tracks_throttled: bool = True) -> Fleet:
    return Fleet(n, policy=policy if paced else PacingPolicy(), paced=paced, connections=CONNECTIONS,
                 assignments=assignments, horizon=HORIZON_S, seed=seed, tracks_throttled=tracks_throttled)


def _finish(name: str, fleet: Fleet, paced: bool, since: float | dict[int, float], ideal: float,
            started: float, policy: PacingPolicy) -> Outcome:
    fleet.run()
    return Outcome(name, "paced" if paced else "2020", fleet.n, len(fleet.affected), fleet.conn, fleet.assign,
                   fleet.time_to_fraction(0.99, since), ideal, fleet.unserved(), fleet.reassigned_throttled,
                   fleet.processed, time.monotonic() - started, policy)


def broker_restart(n: int, paced: bool, seed: int = 1, scale: float = 1.0, sized_for: int | None = None,
                   down_s: float = RESTART_S) -> Outcome:
    """Every device loses the broker at t=0; the broker listens again after ``down_s``."""
    started = time.monotonic()
    policy = _policy(n, sized_for, scale)
    fleet = _fleet(n, paced, policy, seed)
    _scale(fleet, scale)
    fleet.broker_up_at = down_s
    fleet.affected = list(range(n))
    for dev in fleet.affected:
        fleet.drop(dev, 0.0)
    ideal = 0.99 * n / fleet.conn.resource.admit_per_s
    return _finish("broker restart", fleet, paced, down_s, ideal, started, policy)


def regional_outage(n: int, paced: bool, seed: int = 1, scale: float = 1.0, sized_for: int | None = None
                    ) -> Outcome:
    """A region's carrier is down for OUTAGE_S; its devices' links pause, then resume together."""
    started = time.monotonic()
    region = int(n * REGION_SHARE)
    policy = _policy(n, sized_for, scale)
    fleet = _fleet(n, paced, policy, seed)
    _scale(fleet, scale)
    fleet.affected = random.Random(seed).sample(range(n), region)
    recovery = OUTAGE_AT_S + OUTAGE_S
    for dev in fleet.affected:
        fleet.net_down[dev] = True
        fleet.connected[dev] = False
        fleet.resume(dev, recovery)
    ideal = 0.99 * region / fleet.conn.resource.admit_per_s
    return _finish("regional outage 30 min", fleet, paced, recovery, ideal, started, policy)


def sim_caps(n: int, paced: bool, seed: int = 1, scale: float = 1.0, capped: int | None = None,
             sized_for: int | None = None) -> Outcome:
    """A wholesaler caps ``capped`` in-use SIMs within CAP_WAVE_S. Paced: each device detects
    its own, reports it, asks for a SIM. 2020: nobody detects; the platform orders every
    affected device to swap at once when the wave is over, from a pool it cannot tell apart."""
    started = time.monotonic()
    capped = capped if capped is not None else max(1, round(CAPPED_SIMS * scale))
    policy = _policy(n, sized_for, scale)
    fleet = _fleet(n, paced, policy, seed, ASSIGNMENTS if paced else ASSIGNMENTS_2020, tracks_throttled=paced)
    _scale(fleet, scale)
    fleet.after_connect = lambda dev, t: None  # served means: on a SIM that is not capped
    fleet.free_sims = list(range(n, n + max(capped, int(n * SPARE_SIMS))))
    rng = random.Random(seed)
    fleet.affected = rng.sample(range(n), capped)
    cap_at = {dev: rng.uniform(0.0, CAP_WAVE_S) for dev in fleet.affected}
    for dev, t in cap_at.items():
        fleet.at(t, CAPPED, dev)
        if not paced:
            fleet.wants_sim[dev] = True
            fleet.at(BULK_AT_S, REQUEST, dev)
    detect_p99 = math.exp(math.log(DETECT_MEDIAN_S) + 2.3263 * math.log(DETECT_P95_S / DETECT_MEDIAN_S) / Z95)
    return _finish(f"{capped:,} SIMs capped in 10 min", fleet, paced, cap_at, detect_p99 + SWAP_S, started, policy)


def bulk_order(n: int, paced: bool, seed: int = 1, scale: float = 1.0, order: int | None = None,
               sized_for: int | None = None) -> Outcome:
    """The platform must move ``order`` devices now (a wholesaler announced its caps). Paced:
    one swap command each, whose ``window`` the platform sizes to its admission rate; the
    device starts inside it (agent.cloud.pacing.swap_delay, the swap policy's seam). 2020:
    every device at once, on the 2020 access server."""
    started = time.monotonic()
    order = order if order is not None else max(1, round(CAPPED_SIMS * scale))
    policy = _policy(n, sized_for, scale)
    fleet = _fleet(n, paced, policy, seed, ASSIGNMENTS if paced else ASSIGNMENTS_2020, tracks_throttled=paced)
    _scale(fleet, scale)
    fleet.after_connect = lambda dev, t: None  # served means: on its new SIM
    fleet.free_sims = list(range(n, n + max(order, int(n * SPARE_SIMS))))
    fleet.affected = random.Random(seed).sample(range(n), order)
    admit = fleet.assign.resource.admit_per_s
    not_after = ORDER_AT_S + math.ceil(order / (UTILISATION * admit))
    for dev in fleet.affected:
        delay = pacing.swap_delay(policy, fleet.rng, now=ORDER_AT_S, not_before=ORDER_AT_S,
                                  not_after=not_after) if paced else 0.0
        fleet.wants_sim[dev] = True
        fleet.at(ORDER_AT_S + delay, REQUEST, dev)
    ideal = 0.99 * order / admit + SWAP_S
    return _finish(f"platform moves {order:,} devices", fleet, paced, ORDER_AT_S, ideal, started, policy)


def power_cut(n: int, paced: bool, seed: int = 1, scale: float = 1.0, sized_for: int | None = None) -> Outcome:
    """A region's power is cut for OUTAGE_S; when it returns its routers boot together, each
    connects, asks for a SIM (the vSIM did not survive the power cut) and swaps onto it,
    which costs a second connection (the session was bound to the seed SIM's address).
    Paced: the first connection, and the request with it, wait the boot spread over the
    request window (as the link does). 2020: connect at once, ask at once."""
    started = time.monotonic()
    region = int(n * REGION_SHARE)
    policy = _policy(n, sized_for, scale)
    fleet = _fleet(n, paced, policy, seed, ASSIGNMENTS if paced else ASSIGNMENTS_2020, tracks_throttled=paced)
    _scale(fleet, scale)
    fleet.free_sims = list(range(n, n + max(region, int(n * SPARE_SIMS))))
    fleet.affected = random.Random(seed).sample(range(n), region)
    restore = OUTAGE_AT_S + OUTAGE_S
    for dev in fleet.affected:
        pacer = fleet.pacers[dev] = Pacer(fleet.pacers[dev].policy, fleet.rng)  # a fresh process: just booted
        fleet.connected[dev] = False
        fleet.at(restore + (pacer.after_boot() if paced else 0.0), CONNECT, dev)
    asked: set[int] = set()

    def ask_once(dev: int, t: float) -> None:
        if dev in fleet.affected_set and dev not in asked:
            asked.add(dev)
            fleet.ask(dev, t)

    fleet.affected_set = set(fleet.affected)
    fleet.after_connect = ask_once
    conn, assign = fleet.conn.resource, fleet.assign.resource
    ideal = 0.99 * max(2 * region / conn.admit_per_s, region / assign.admit_per_s) + SWAP_S
    return _finish("power cut 30 min, region boots together", fleet, paced, restore, ideal, started, policy)


def scaled(res: Resource, scale: float) -> Resource:
    """A platform ``scale`` times the size (small fleets in tests keep the same proportions)."""
    return replace(res, admit_per_s=max(1, round(res.admit_per_s * scale)),
                   answer_per_s=max(1, round(res.answer_per_s * scale)))


def _scale(fleet: Fleet, scale: float) -> None:
    fleet.conn.resource = scaled(fleet.conn.resource, scale)
    fleet.assign.resource = scaled(fleet.assign.resource, scale)


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "restart": broker_restart,
    "caps": sim_caps,
    "outage": regional_outage,
    "order": bulk_order,
    "powercut": power_cut,
}


def fmt_time(t: float | None) -> str:
    return "never (in the hour)" if t is None else f"{t:.0f} s"


def report(outcomes: list[Outcome]) -> str:
    """The morning-after table: one block per scenario, paced beside 2020."""
    lines = []
    for o in outcomes:
        c_peak, c_adm = o.peak(o.conn)
        a_peak, a_adm = o.peak(o.assign)
        goal = 1.1 * o.ideal
        met = o.t99 is not None and o.t99 <= goal
        lines += [
            (f"--- {o.scenario}, {o.variant}: {o.devices:,} devices, {o.affected:,} affected "
            f"({o.events:,} events in {o.wall_s:.1f} s wall)"),
            (f"  connections: peak {c_peak}/s offered (answers up to {o.conn.resource.answer_per_s}/s), "
            f"mean {o.mean(o.conn):.0f}/s; peak {c_adm}/s admitted (admits {o.conn.resource.admit_per_s}/s); "
            f"busy {o.busy_s(o.conn):.0f} s"),
            (f"  assignments: peak {a_peak}/s offered (answers up to {o.assign.resource.answer_per_s}/s), "
            f"mean {o.mean(o.assign):.0f}/s; peak {a_adm}/s admitted (admits {o.assign.resource.admit_per_s}/s); "
            f"busy {o.busy_s(o.assign):.0f} s"),
            (f"  99 % served again after {fmt_time(o.t99)} (capacity allows {o.ideal:.0f} s, goal <= {goal:.0f} s: "
            f"{'met' if met else 'NOT met'}); unserved at the end: {o.unserved:,}; "
            f"throttled SIMs assigned again: {o.reassigned_throttled:,}"),
        ]
    return "\n".join(lines)

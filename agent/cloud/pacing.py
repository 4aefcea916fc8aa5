"""Fleet pacing: how long one device waits before it talks to the platform, set by the platform.

Why this exists (docs/fleet.md): a device's fixed 10-second random first delay is a fine
spread for one device and a wall for a fleet. 100,000 routers that lose the broker together
and come back within 10 s arrive at ~10,000 connections a second, while a managed broker
admits a few hundred. Only the platform knows the fleet's size and its own capacity, so the
windows come from its policy (``set_policy`` / the retained ``policy`` topic, field
``pacing``), are checked against bounds (a policy that would make devices hammer or wait
forever is refused with ``PacingError``), and persist on flash so a device that boots
after an outage already knows them before it first asks for anything.

The rules, for every path that talks to the platform:
- **reconnect window**: a live broker connection dropped (the broker went away for
  everyone): the first attempt waits uniform [0, reconnect_window].
- **resume window**: the device's own data link came back (a carrier outage ended for a
  whole region at once): uniform [0, resume_window].
- **request window** (boot): the first connection after start, and with it the first
  assignment request, waits uniform [0, request_window]: every device powered on by the
  same outage's end would otherwise connect and ask in the same second. One spread for
  both, so that they do not add up.
- **swap window**: a swap the platform ordered happens uniform [0, swap_window] after the
  order (inside the command's own window); ``swap_delay()`` is the seam for the swap policy.
- **back-off**: failed attempts use full jitter (agent.cloud.backoff) with the policy's
  base and cap.
- **widening**: MQTT 5 CONNACK 0x89 "Server busy" and 0x9F "Connection rate exceeded" mean
  "not now" from a server that is alive: the back-off ceiling doubles, to no less than half
  the window the device is returning within (reconnect or resume), never past the cap, and
  the delay is drawn from its upper half, since an immediate retry is exactly wrong. Why
  half the window: the platform sized the window as fleet / admission, so a backlog of up
  to the whole fleet retrying over half a window or more stays within a broker that can
  answer (refuse) about four times what it admits, even when the policy is stale (a fleet
  that outgrew it by k doubles its way there in log2 k refusals). Simulated: docs/fleet.md. The cloud's "retry" answer (``retry_after``) is
  honoured: never earlier than it asks, never later than the cap, spread above it by a
  ceiling that doubles with each consecutive "retry". A "no capacity" refusal widens the
  next request's delay the same way, and a request that got no answer at all is sent again
  after full jitter over that doubling ceiling (not in step with every other device).

Everything here is pure (no I/O except ``load``/``save``, which go through agent.store) and
takes its randomness from an injected ``random.Random``, which is what lets the fleet
simulator (board/fleet) run this very code for 100,000 simulated devices.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from agent import store
from agent.cloud.backoff import BASE_S, CAP_S, FIRST_DELAY_MAX_S, Backoff
from agent.errors import PacingError

LOGGER = logging.getLogger(__name__)

SERVER_BUSY = 0x89
"""MQTT 5 CONNACK reason "Server busy" (OASIS MQTT 5.0, 3.2.2.2)."""

CONNECTION_RATE_EXCEEDED = 0x9F
"""MQTT 5 CONNACK reason "Connection rate exceeded" (OASIS MQTT 5.0, 3.2.2.2)."""

BUSY_REASONS = frozenset({SERVER_BUSY, CONNECTION_RATE_EXCEEDED})
"""CONNACK refusals that mean "alive but overloaded": widen, never retry at once."""

RESUME_WINDOW_S = FIRST_DELAY_MAX_S
"""Device default before any policy: the same 10 s spread as after a dropped connection."""

REQUEST_WINDOW_S = 10.0
"""Device default for the first assignment request after boot, before the platform has
said anything: the same 10 s spread as a reconnect. It costs a lone device at most ten
seconds on its seed SIM; a platform with a large fleet sets a wider window, and the device
keeps it on flash for its next boot (docs/fleet.md sizes it)."""

SWAP_WINDOW_S = 60.0
"""Device default spread of a platform-ordered swap: one minute of 200 admissions a
second covers the operator's post-2020 batch of 200 many times over."""

RETRY_SPREAD = 0.5
"""A "retry after T" is honoured within [T, 1.5 T] at least: the jitter the link used
before pacing existed (agent.cloud.backoff.jittered)."""

POLICY_FILE = "pacing.json"
"""Where the last accepted pacing policy lives, beside the link's other state."""


OWN_PAUSE_JITTER_S = 0.2
"""Reconnect spread after the device's own SIM switch. A switch is one device's event, not
a broker-wide outage, so it needs no fleet-sized window; a fifth of a second only keeps two
back-to-back attempts apart (issue 8: the cloud link back as soon as data flows)."""

@dataclass(frozen=True)
class Bound:
    """The range a policy field may take, and why."""

    low: float
    high: float
    why: str


BOUNDS: dict[str, Bound] = {
    "reconnect_window_s": Bound(1.0, 3600.0, "under 1 s a fleet returns as one wall; over an hour a device "
                                             "is offline longer than any broker restart justifies"),
    "resume_window_s": Bound(1.0, 3600.0, "same as reconnect_window_s, for a region whose data link returned"),
    "request_window_s": Bound(0.0, 1800.0, "0 is allowed (the platform admits every boot at once); over "
                                           "30 min a booted router sits on its seed SIM too long"),
    "swap_window_s": Bound(0.0, 6 * 3600.0, "a swap order expires after 6 h by default (protocol.md 3.7)"),
    "backoff_base_s": Bound(0.5, 60.0, "under 0.5 s a refused handshake spins; over a minute a single "
                                       "lost packet costs a minute"),
    "backoff_cap_s": Bound(10.0, 3600.0, "under 10 s a dead platform is hammered by the whole fleet "
                                         "(100,000 / 10 s = 10,000 attempts a second); over an hour "
                                         "a device may wait longer than its users will"),
}
"""A policy outside these is refused whole (the previous one stays in force)."""


@dataclass(frozen=True)
class PacingPolicy:
    """The platform's pacing knobs (docs/protocol.md 3.8, field ``pacing``)."""

    version: int = -1
    reconnect_window_s: float = FIRST_DELAY_MAX_S
    resume_window_s: float = RESUME_WINDOW_S
    request_window_s: float = REQUEST_WINDOW_S
    swap_window_s: float = SWAP_WINDOW_S
    backoff_base_s: float = BASE_S
    backoff_cap_s: float = CAP_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


KNOBS = tuple(f.name for f in fields(PacingPolicy) if f.name != "version")


def check(policy: PacingPolicy) -> PacingPolicy:
    """``policy`` if every knob is inside BOUNDS and base <= cap; PacingError otherwise."""
    for name in KNOBS:
        value = getattr(policy, name)
        bound = BOUNDS[name]
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise PacingError(f"pacing {name} must be a finite number, got {value!r}", field=name, value=value)
        if not bound.low <= value <= bound.high:
            raise PacingError(f"pacing {name}={value} outside {bound.low:g}..{bound.high:g} s ({bound.why})",
                              field=name, value=value)
    if policy.backoff_base_s > policy.backoff_cap_s:
        raise PacingError(f"pacing backoff_base_s={policy.backoff_base_s} exceeds backoff_cap_s="
                          f"{policy.backoff_cap_s}", field="backoff_base_s", value=policy.backoff_base_s)
    return policy


def from_policy(body: dict[str, Any], current: PacingPolicy) -> PacingPolicy | None:
    """The pacing carried by a cloud policy body, checked; None if the body carries none.

    ``body`` is the whole policy ({"version": n, ..., "pacing": {...}}). Absent knobs take
    the device defaults (not the previous values: a policy is a whole statement). Unknown
    knobs are ignored with a log line, so a newer platform can add one.
    """
    pacing = body.get("pacing")
    if pacing is None:
        return None
    if not isinstance(pacing, dict):
        raise PacingError("policy field 'pacing' must be an object", field="pacing", value=pacing)
    unknown = sorted(set(pacing) - set(KNOBS))
    if unknown:
        LOGGER.info("pacing knobs %s not known to this agent: ignored", unknown)
    version = body.get("version", current.version)
    values = {k: pacing[k] for k in KNOBS if k in pacing}
    try:
        policy = replace(PacingPolicy(), version=int(version), **values)
    except (TypeError, ValueError) as exc:
        raise PacingError(f"pacing policy malformed: {exc}", field="pacing", value=None) from None
    return check(policy)


def load(state_dir: Path, default: PacingPolicy) -> PacingPolicy:
    """The persisted policy, or ``default`` (no file, or a file that no longer passes the bounds)."""
    raw = store.read_json(Path(state_dir) / POLICY_FILE, default=None)
    if not isinstance(raw, dict):
        return default
    try:
        return check(replace(PacingPolicy(), **{k: raw[k] for k in ("version", *KNOBS) if k in raw}))
    except (PacingError, TypeError) as exc:
        LOGGER.error("persisted pacing policy unusable (%s): using defaults", exc)
        return default


def save(state_dir: Path, policy: PacingPolicy) -> None:
    store.atomic_write_json(Path(state_dir) / POLICY_FILE, policy.to_dict())


def swap_delay(policy: PacingPolicy, rng: random.Random, *, not_before: float | None = None,
               not_after: float | None = None, now: float = 0.0) -> float:
    """Seconds from ``now`` until a platform-ordered swap should start: uniform over the swap
    window, shifted to ``not_before`` and shrunk to end by ``not_after`` (the command's
    window, same clock as ``now``). The seam for agent/core/policy.py."""
    start = max(0.0, (not_before - now) if not_before is not None else 0.0)
    room = policy.swap_window_s
    if not_after is not None:
        room = max(0.0, min(room, not_after - now - start))
    return start + rng.uniform(0.0, room)


class Pacer:
    """One device's pacing state: the policy in force, its back-off, and how far busy
    answers have widened it. The link asks it for every delay; the simulator does too."""

    __slots__ = ("_booted", "_request_floor", "_retry_streak", "_window", "backoff", "policy", "rng")

    def __init__(self, policy: PacingPolicy, rng: random.Random, *, booted: bool = True):
        """``booted``: this process just started, so its first request gets the boot spread
        unless its first connection took it (``after_boot``); the simulator passes False
        for devices that have long been running."""
        self.policy = policy
        self.rng = rng
        self.backoff = Backoff(policy.backoff_base_s, policy.backoff_cap_s, policy.reconnect_window_s, rng)
        self._retry_streak = 0
        self._request_floor = 0.0
        self._booted = booted
        self._window = policy.reconnect_window_s  # the spread this device is returning within

    def set_policy(self, policy: PacingPolicy) -> None:
        """Adopt a new (already checked) policy; the back-off keeps its progress."""
        self.policy = policy
        self.backoff.base, self.backoff.cap = policy.backoff_base_s, policy.backoff_cap_s
        self.backoff.first_delay_max = policy.reconnect_window_s

    # --- broker connection -------------------------------------------------------------

    def after_boot(self) -> float:
        """The first connection after start, and with it the first assignment request: a
        region whose power came back boots together. Spread over the request window."""
        self.backoff.reset()
        self._booted = False  # the request rides on this spread; no second one
        self._window = self.policy.request_window_s
        return self.rng.uniform(0.0, self._window)

    def after_drop(self) -> float:
        """A live connection dropped (the broker went away, likely for everyone)."""
        self.backoff.reset()
        self._window = self.policy.reconnect_window_s
        return self.rng.uniform(0.0, self._window)

    def after_resume(self) -> float:
        """Our data link came back (likely for a whole region at once)."""
        self.backoff.reset()
        self._window = self.policy.resume_window_s
        return self.rng.uniform(0.0, self._window)

    def after_own_pause(self) -> float:
        """The device paused its own link for a moment (a SIM swap): nobody else returns with
        it, so it reconnects as soon as data flows, spread only by ``OWN_PAUSE_JITTER_S``."""
        self.backoff.reset()
        self._window = self.policy.backoff_base_s
        return self.rng.uniform(0.0, OWN_PAUSE_JITTER_S)

    def after_failure(self) -> float:
        """An attempt failed without an answer (refused TCP, TLS error, timeout): full jitter
        over the back-off ceiling, or over half the window the device is returning within if
        that is wider, so the devices that met a broker still restarting, or one overrun,
        come back spread as widely as they left instead of piling onto its first second."""
        b = self.backoff
        ceiling = max(b.ceiling(), min(b.cap, self._window / 2.0))
        b.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def after_refusal(self, reason: int) -> float:
        """The broker answered CONNACK with a failure ``reason``; busy ones widen."""
        if reason not in BUSY_REASONS:
            return self.after_failure()
        b = self.backoff
        ceiling = min(b.cap, max(2.0 * b.ceiling(), self._window / 2.0))
        while b.ceiling() < ceiling and b.attempt < 32:
            b.attempt += 1  # the widened ceiling is where the next plain failure continues from
        return self.rng.uniform(ceiling / 2.0, ceiling)

    # --- assignment requests ------------------------------------------------------------

    def before_request(self) -> float:
        """Delay before an assignment request: the boot spread for the first one if the
        connection did not already take it (``after_boot``), the widened floor after a
        "no capacity" refusal, else nothing."""
        if self._booted:
            self._booted = False
            return self.rng.uniform(0.0, self.policy.request_window_s)
        floor, self._request_floor = self._request_floor, 0.0
        return floor

    def retry_after(self, seconds: float) -> float:
        """The cloud said "retry after ``seconds``": honour it, widened by the streak, bounded."""
        cap = self.policy.backoff_cap_s
        floor = min(max(seconds, 0.0), cap)
        self._retry_streak += 1
        widened = self.policy.backoff_base_s * (2 ** min(self._retry_streak, 32))
        ceiling = min(cap, max(floor * (1.0 + RETRY_SPREAD), widened))
        return self.rng.uniform(floor, max(floor, ceiling))

    def after_silence(self) -> float:
        """An assignment request got no answer at all (lost, or the platform is overrun):
        full jitter over a ceiling that doubles with each silence in a row, so a fleet's
        unanswered requests are not all sent again in the same second."""
        self._retry_streak += 1
        ceiling = min(self.policy.backoff_cap_s, self.policy.backoff_base_s * (2 ** min(self._retry_streak, 32)))
        return self.rng.uniform(0.0, ceiling)

    def no_capacity(self) -> None:
        """The cloud refused for lack of capacity: the next request waits a widened delay."""
        self._request_floor = self.retry_after(self.policy.backoff_base_s)

    def served(self) -> None:
        """An assignment arrived: the retry streak is over."""
        self._retry_streak = 0
        self._request_floor = 0.0

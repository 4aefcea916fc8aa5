"""When to swap SIMs: pure decisions over plain values (no I/O, no clock of its own).

The swap machine (agent/core/swap.py) knows *how* to swap; this module decides *whether*
and *when*, from what the supervisor feeds it: the health state and how long it has
held, how much allowance the SIM has left, whether the user's traffic is in a lull, a
pending cloud command, and the swaps already made.

Triggers (domain.md: the agent must ask for another SIM before the user suffers):
- ``throttled``: swap now. A capped SIM stays capped until its window resets.
- ``no_service`` for longer than ``no_service_swap_s``: the SIM itself may be refused.
- ``escape``: the SIM's carrier cannot carry data (no registration, a black hole, no
  bearer) for longer than ``escape_after_s``: the supervisor escapes over the seed SIM to
  a SIM of another carrier (agent/core/escape.py; issue 23).
- a cloud ``swap`` command: now, or at one random moment inside the window it gives (a
  fleet told "within the hour" spreads itself over the hour, never a 2020-style burst).
- a low remaining allowance: swap before the cap is hit, at a traffic lull, or anyway
  once ``lull_wait_s`` has passed.
Never a swap for ``poor_radio`` or ``congested``: another SIM on the same radio and the
same cell is no faster, and each swap breaks the user's connection.

Damping: at most ``max_per_hour`` and ``max_per_day`` swaps (modems limit vSIM slot
switches to protect their flash, and every swap spends the pool), and after the cloud
answers "no capacity" or a request fails, a full-jitter exponential back-off.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from agent.errors import ProtocolError

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class SwapPolicy:
    """The knobs the cloud can set (``set_policy``); defaults are safe for one router."""

    version: int = 0
    max_per_hour: int = 6
    """Six an hour: enough to walk past several capped SIMs in a bad pool, few enough that a
    flapping detector cannot wear the modem's flash (vendors rate slot writes in 10^4-10^5)."""
    max_per_day: int = 24
    no_service_swap_s: float = 180.0
    """Three minutes without service before blaming the SIM: a cell outage or a tunnel
    usually ends sooner, and attach retries (T3411/T3402) take that long to settle."""
    swap_below_bytes: int = 50_000_000
    """Swap when less than 50 MB is left: minutes of video, so the swap happens before the
    cap, not after the user meets 128 kbps."""
    lull_kbps: float = 64.0
    """Below 64 kbit/s the user is reading, not streaming: a break then goes unnoticed."""
    lull_wait_s: float = 600.0
    """A low allowance waits at most 10 minutes for a lull, then swaps anyway."""
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 1800.0
    """After "no capacity": 30 s doubling to 30 min (full jitter), so a busy platform is
    not hammered by the devices it could not serve (the 2020 access server went down)."""
    attach_timeout_s: float = 30.0
    """Bound on attach + data after a switch before rolling back to the old SIM."""
    escape_after_s: float = 120.0
    """Two minutes of a carrier that carries nothing (no registration, a black hole, no
    bearer) before escaping over the seed SIM to another carrier. Against it: a false
    escape costs one swap (a ~6 s break the user would not have had, one pool SIM moved,
    about 10 kB of seed-SIM bytes) and most radio losses a router meets (a tunnel, a lift,
    a failed handover, the attach retries of 24.301's T3411 at 10 s) end within a minute
    or two. For it: a carrier outage lasts hours (domain.md: 9 h 24 min over 11 days), the
    contracts refund only after 24 unusable hours, so every minute of waiting is the
    renter's, unpaid. Platform-set within ``BOUNDS`` (10 s to a day)."""
    escape_retry_cap_s: float = 1800.0
    """An escape that could not happen (the seed SIM on the failing carrier, or not
    registering either) is tried again after ``escape_after_s``, doubling to 30 minutes:
    the router keeps looking for a way out without cycling its radio every few seconds."""
    escape_budget_bytes: int = 1_000_000
    """Seed-SIM bytes escapes may spend in a day: an escape costs ~10 kB (attach, TLS
    session, request, assignment), so 1 MB is about a hundred attempts, more than the
    back-offs allow, and a bound no bug in a loop can exceed."""


BOUNDS: Mapping[str, tuple[float, float]] = {
    "max_per_hour": (1, 30), "max_per_day": (1, 200), "no_service_swap_s": (30, 86400),
    "swap_below_bytes": (0, 10_000_000_000), "lull_kbps": (0, 100_000), "lull_wait_s": (0, 86400),
    "backoff_base_s": (5, 3600), "backoff_cap_s": (30, 86400), "attach_timeout_s": (5, 300),
    "escape_after_s": (10, 86400), "escape_retry_cap_s": (30, 86400), "escape_budget_bytes": (0, 100_000_000),
}
"""A policy outside these bounds is refused whole: one that would make devices hammer the
platform (no back-off) or never swap again (a day-long back-off base) is a mistake."""


def policy_from_dict(body: Mapping[str, Any], base: SwapPolicy | None = None) -> SwapPolicy:
    """A policy body from the cloud (docs/protocol.md 3.8) over ``base``; unknown keys are
    other modules' (reporting cadence, pacing) and are left to them. ProtocolError if a
    known key is out of its bounds or of the wrong type."""
    base = base or SwapPolicy()
    changes: dict[str, Any] = {}
    names = {f.name: f for f in fields(SwapPolicy)}
    for key, value in body.items():
        if key not in names:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"policy field {key!r} must be a number", reason="schema")
        if names[key].type in ("int", int) and not isinstance(value, int):
            # A count or a byte count is exact (docs/protocol.md 3): 6.5 swaps is a mistake, not 6.
            raise ProtocolError(f"policy field {key!r} must be an integer", reason="schema")
        if key in BOUNDS:
            lo, hi = BOUNDS[key]
            if not lo <= value <= hi:
                raise ProtocolError(f"policy field {key!r}={value} outside {lo}..{hi}", reason="schema")
        changes[key] = int(value) if names[key].type in ("int", int) else float(value)
    merged = replace(base, **changes)
    if merged.backoff_cap_s < merged.backoff_base_s:
        raise ProtocolError("policy backoff_cap_s is below backoff_base_s", reason="schema")
    return merged


def policy_to_dict(policy: SwapPolicy) -> dict[str, Any]:
    return asdict(policy)


@dataclass(frozen=True)
class Order:
    """A cloud swap command, with the moment (monotonic) this device picked in its window."""

    command_id: str
    due: float


def schedule_order(command_id: str, now: float, window_s: float | None, rng: random.Random) -> Order:
    """Pick one uniform moment in ``[now, now + window_s]`` (no window: now)."""
    return Order(command_id, now + (rng.uniform(0, window_s) if window_s and window_s > 0 else 0.0))


@dataclass(frozen=True)
class Inputs:
    """What the supervisor knows at ``now`` (monotonic seconds)."""

    now: float
    health: str = "ok"
    health_for_s: float = 0.0
    remaining_bytes: int | None = None
    traffic_kbps: float = 0.0
    low_below: int | None = None
    """Bytes left under which the allowance is low (the rule's own share of its cap,
    agent/plans/predict.py); None: the policy's ``swap_below_bytes``."""
    cap_in_s: float | None = None
    """Seconds until the first throttle rule is hit at the current rate (None: unknown)."""
    cap_rule: str | None = None
    """The plan rule those figures are of."""
    throttle_resets_in_s: float | None = None
    """The throttle's rule resets within ``RESET_SOON_S``: not worth a swap."""
    low_since: float | None = None
    """When the allowance first fell below the threshold (for the lull wait)."""
    order: Order | None = None
    on_seed: bool = False
    carrier_down: bool = False
    """The ``no_service`` state's cause blames the carrier (agent/core/escape.py)."""


@dataclass(frozen=True)
class Decision:
    swap: bool
    reason: str | None = None
    urgent: bool = False
    why: str = ""


NO = Decision(False)


def damped(history: Sequence[float], now: float, policy: SwapPolicy) -> str | None:
    """Why no swap may start now because of the hourly or daily limit, or None."""
    last_hour = sum(1 for t in history if now - t < HOUR)
    last_day = sum(1 for t in history if now - t < DAY)
    if last_hour >= policy.max_per_hour:
        return f"{last_hour} swaps in the last hour (limit {policy.max_per_hour})"
    if last_day >= policy.max_per_day:
        return f"{last_day} swaps in the last day (limit {policy.max_per_day})"
    return None


def decide(policy: SwapPolicy, inputs: Inputs, history: Sequence[float], blocked_until: float = 0.0,
           blocked_by: str = "") -> Decision:
    """Swap now, and why; or not, and why not. ``blocked_by``: the reason of the swap whose
    failure set ``blocked_until``."""
    trigger = _trigger(policy, inputs)
    if not trigger.swap:
        return trigger
    if inputs.now < blocked_until and (trigger.reason != "command" or blocked_by == "command"):
        # The back-off keeps the device from asking a platform that could not serve it. A
        # command is the platform asking, so another trigger's back-off does not hold it back;
        # but a command that itself failed waits like any swap: a standing command the cloud
        # cannot serve ("no SIM with room") was asked again every second, on the SIM's bytes.
        return Decision(False, trigger.reason, why=f"platform back-off for {blocked_until - inputs.now:.0f} s more")
    limit = damped(history, inputs.now, policy)
    if limit and not inputs.on_seed:
        return Decision(False, trigger.reason, why=limit)
    return trigger


def _trigger(policy: SwapPolicy, i: Inputs) -> Decision:
    if i.on_seed:
        return Decision(True, "boot", urgent=True, why="on the bootstrap SIM: users need a data SIM")
    if i.health == "throttled" and i.throttle_resets_in_s is not None:
        return Decision(False, "throttled", why=f"rule {i.cap_rule or '?'} resets in {i.throttle_resets_in_s:.0f} s: "
                                                "not worth a swap")
    if i.health == "throttled":
        return Decision(True, "throttled", urgent=True, why="the carrier holds this SIM at its throttle rate")
    if i.order is not None and i.now >= i.order.due:
        return Decision(True, "command", urgent=True, why=f"cloud command {i.order.command_id}")
    if i.health == "no_service" and i.carrier_down:
        if i.health_for_s >= policy.escape_after_s:
            return Decision(True, "escape", urgent=True,
                            why=f"the carrier has carried nothing for {i.health_for_s:.0f} s: escaping over the seed SIM")
        return NO  # a request over this SIM's link could not leave the router: only the escape can
    if i.health == "no_service" and i.health_for_s >= policy.no_service_swap_s:
        return Decision(True, "no_service", urgent=True, why=f"no service for {i.health_for_s:.0f} s")
    if allowance_low(policy, i):
        waited = i.now - i.low_since if i.low_since is not None else 0.0
        left = f"{i.remaining_bytes} bytes left" + (f" under rule {i.cap_rule}" if i.cap_rule else "")
        if i.traffic_kbps <= policy.lull_kbps:
            return Decision(True, "allowance", why=f"{left}; traffic lull")
        if i.cap_in_s is not None and i.cap_in_s <= CAP_MARGIN_S:
            return Decision(True, "allowance", why=f"{left}; the cap is {i.cap_in_s:.0f} s away at this rate")
        if waited >= policy.lull_wait_s:
            return Decision(True, "allowance", why=f"{left}; no lull in {waited:.0f} s")
        return Decision(False, "allowance", why="allowance low: waiting for a lull")
    return NO


def allowance_low(policy: SwapPolicy, i: Inputs) -> bool:
    """Below the rule's low mark, or its cap within ``CAP_MARGIN_S`` at the current rate.
    (A cap merely nearer than the lull wait is not "low": in the lab, a 100 MB rule at
    17 Mbit/s is 44 s away on a fresh SIM, and swapping then walked through five fresh
    SIMs in 30 s until the hourly limit stopped it.)"""
    if i.remaining_bytes is None:
        return False
    below = policy.swap_below_bytes if i.low_below is None else i.low_below
    return i.remaining_bytes < below or (i.cap_in_s is not None and i.cap_in_s <= CAP_MARGIN_S)


CAP_MARGIN_S = 4.0
"""With the cap this close at the current rate, the lull is not waited for: a break now
costs the user seconds, the cap costs them the rest of the window at 128 kbps. What the
old SIM still carries after the decision: up to the meter's sample interval (1 s) and the
policy's tick (1 s) of lag, then the swap's request and stage (~0.1 s, measured in the
lab) before the switch stops it; doubled. (15 s, twice the whole break, swapped fresh
100 MB SIMs at once on the lab's 50 Mbit/s link: the break itself carries nothing.)"""


def backoff_delay(failures: int, policy: SwapPolicy, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** max(0, failures - 1))
    return rng.uniform(0, ceiling)


@dataclass(frozen=True)
class Planned:
    """A swap the policy will make, not yet: what the renter is told ahead of the break."""

    reason: str
    """"command" (the cloud's move inside its window) or "allowance" (a cap ahead)."""
    in_s: float
    """Seconds until it is due: the order's moment, or the lull wait's end (a lull that
    comes sooner brings it forward)."""
    at_lull: bool
    """True when it waits for the user's traffic to pause and may come sooner."""


def planned(policy: SwapPolicy, i: Inputs) -> Planned | None:
    """The non-urgent swap ahead, if one is (the same triggers as ``_trigger``, seen before
    they fire): a cloud order whose moment is still to come, or an allowance below the
    threshold waiting for a lull. Urgent swaps (throttled, no service, boot) give no notice:
    they happen as soon as they are known."""
    if i.on_seed or i.health == "throttled":
        return None
    if i.order is not None and i.now < i.order.due:
        return Planned("command", i.order.due - i.now, at_lull=False)
    below = policy.swap_below_bytes if i.low_below is None else i.low_below
    if i.remaining_bytes is not None and i.remaining_bytes < below:  # the mark ``allowance_low`` acts on
        waited = i.now - i.low_since if i.low_since is not None else 0.0
        return Planned("allowance", max(0.0, policy.lull_wait_s - waited), at_lull=True)
    return None

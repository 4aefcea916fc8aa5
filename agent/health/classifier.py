"""The low-speed classifier: is this SIM throttled, or is it the radio, the cell, idle?

Pure logic (no I/O, no clock): fed one ``Sample`` about once a second, it returns the
state changes it decided, each with the evidence behind it. The supervisor feeds it
live samples; ``pocket-agent replay`` feeds it a recorded trace; both get the same
answers, which is what makes the trace library a test.

Why several signals and not one (the issue): a policing detector that looks at single
flows collapses when flows share the link, a slow link is not always a capped SIM, and
swapping a SIM for a weak signal or a busy cell wastes the pool and breaks the user's
connection for nothing. So:

* **ceiling** - the last ``MIN_BUSY_SECONDS`` seconds (within ``WINDOW_SECONDS``) in which
  the SIM's *total* traffic was busy must be flat as 3-s averages (within ``FLAT_BAND``
  of their mean, drifting less than ``DRIFT_MAX``) and near a known throttle rate (or
  the plan's own). Congestion and radio limits wander.
* **demand** - busy seconds need active flows through the router; no flows and no bytes
  for ``IDLE_SECONDS`` is ``idle``, never a verdict on the SIM.
* **radio** - poor RSRP/RSRQ/SINR explains slowness, so it wins over ``throttled``; a
  good signal delivering 128 kbps is not a radio problem.
* **delay** - a shaper queues to a fixed rate (RTT up by ``SHAPER_QUEUE_MS`` and steady),
  a policer drops without queueing (RTT near base), congestion queues and wanders.
* **agreement** - a flat rate near a throttle rate is only a cap when other evidence
  agrees: several flows sharing the ceiling (their *sum* pinned), a shaper's steady
  queue, a policer's loss under demand, LAN-side demand the WAN does not deliver, or a
  confirming active check. A single quiet flow (internet radio at 128 kbps, a video at a
  fixed bitrate) is otherwise indistinguishable from a cap: ``wants_probe`` asks for one
  bounded download burst; a refuting answer is ``ok`` (``app_limited``), and when no
  check can run the classifier records a ``suspect`` ``Observation`` and does *not*
  raise ``throttled`` (a false alarm costs a swap and marks a good SIM bad).
* **slow links** - a 3G/EVDO-class link wanders between ~50 and 1,500 kbps and can sit
  flat near a throttle rate, queue included, for five seconds by chance. A link on
  which no 3-s average faster than ``FAST_KBPS`` was seen in the last five minutes needs
  ``SLOW_LINK_BUSY_SECONDS`` flat busy seconds, not five, before any cap verdict (an
  active check that ran fast also shows the link is not slow: a light user on LTE).

Hysteresis: a state is entered only after its candidate held for ``ENTER_HOLD[state]``
seconds of trace time and about as many samples, and since leaving a state means
entering another, it is left the same way. A second with no opinion (a web page's
think time) neither advances nor resets the count. Leaving ``throttled`` additionally
needs traffic clearly above the ceiling; leaving ``congested`` needs both its signs gone.

Measured on the trace library (tests/bench/bench_detection.py): see docs/health.md.

This module is the rules and the state machine (which state each second argues for, by
priority, and the hysteresis); the evidence they read is computed in ``evidence.py``,
the thresholds with their reasons are ``thresholds.py``, and what comes out
(``StateChange``, ``Observation``, the active check's request and answer) is
``verdict.py``.
"""


from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from agent.health import evidence
from agent.health.evidence import Tick, nearest_known, rounded
from agent.health.sample import Sample
from agent.health.thresholds import (
    BLACKHOLE_SECONDS,
    CONGEST_SPREAD,
    CONGEST_WINDOW,
    DRIFT_FRAMES,
    DRIFT_MAX,
    ENTER_HOLD,
    EXCEED_FACTOR,
    EXCEED_SECONDS,
    FAST_ECHO_EVERY,
    FAST_KBPS,
    FLAT_FRACTION,
    FRAME_BITS,
    HISTORY_SECONDS,
    IDLE_SECONDS,
    KNOWN_RATE_LOW,
    KNOWN_RATES_KBPS,
    MIN_BUSY_SECONDS,
    NO_SERVICE_SECONDS,
    PROBE_BYTES,
    PROBE_CONFIRM_FACTOR,
    PROBE_RETRY_SECONDS,
    PROBE_VALID_SECONDS,
    SHAPER_QUEUE_MS,
    SILENCE_PROBE_SECONDS,
    SLOW_LINK_BUSY_SECONDS,
    SLOW_LINK_WINDOW_SECONDS,
    SMOOTH_SECONDS,
    STATES,
    STEADY_RTT_SPREAD,
    SUSPECT_REPEAT_SECONDS,
    WINDOW_SECONDS,
)
from agent.health.verdict import Observation, ProbeOutcome, ProbeRequest, StateChange

LOGGER = logging.getLogger(__name__)

__all__ = ["KNOWN_RATES_KBPS", "PROBE_BYTES", "STATES", "Classifier", "Observation", "ProbeOutcome",
           "ProbeRequest", "StateChange", "nearest_known"]
"""The classifier and what callers name with it (values in ``verdict.py``, numbers in
``thresholds.py``, re-exported so ``from agent.health.classifier import ...`` keeps
working)."""


@dataclass(frozen=True)
class _Candidate:
    state: str
    rate_kbps: float | None
    evidence: dict[str, Any]
    onset_t: float
    hold: float | None = None



@dataclass
class _Pending:
    state: str
    since: float
    count: int = 0



class Classifier:
    """Feed ``Sample`` values in time order; read ``state`` and the changes returned."""

    def __init__(self, plan_rate_kbps: float | None = None, *, plan_rates: tuple[int, ...] = (),
                 nominal_kbps: float | None = None):
        """``plan_rates``: the rates the SIM's plan throttles to (agent/plans/predict.py);
        ``nominal_kbps``: the rate the plan sells (the 200 kbps plan). Judged against the
        plan: a ceiling at or near the nominal rate is the plan working, never a throttle,
        so only rates clearly below it count (issue 22)."""
        self.plan_rate_kbps = plan_rate_kbps
        self.nominal_kbps = nominal_kbps
        rates = set(KNOWN_RATES_KBPS) | set(plan_rates)
        if plan_rate_kbps:
            rates.add(int(plan_rate_kbps))
        if nominal_kbps:
            rates = {r for r in rates if r < nominal_kbps * KNOWN_RATE_LOW}
        self.known_rates = tuple(sorted(rates))
        self._busy_min = evidence.busy_floor(self.known_rates)
        self.state: str | None = None
        self.rate_kbps: float | None = None
        self._prev: Sample | None = None
        self._ticks: deque[Tick] = deque()
        self._pending: _Pending | None = None
        self._wants: ProbeRequest | None = None
        self._probe_asked: dict[int | None, float] = {}
        self._probe: tuple[float, int | None, ProbeOutcome] | None = None
        self.probes_requested = 0
        self.probe_bytes_used = 0
        self._observations: list[Observation] = []
        self._fast_seen_t: float | None = None
        self._last_busy: deque[Tick] = deque(maxlen=SMOOTH_SECONDS)
        self._suspect_at: dict[int, float] = {}
        self.last_suspect: Observation | None = None
        """The latest ``suspect`` observation (for the status file)."""

    # ------------------------------------------------------------------ API

    @property
    def wants_probe(self) -> ProbeRequest | None:
        """An active check the classifier needs, or None. Answer with ``probe_result``."""
        return self._wants

    def probe_result(self, kbps: float | None, bytes_used: int = 0, reason: str = "") -> None:
        """The active check's answer (``kbps`` None = it could not run)."""
        if self._wants is None:  # pragma: no mutate
            LOGGER.debug("probe result without a request; kept anyway")  # pragma: no mutate
        t = self._wants.t if self._wants else (self._ticks[-1].t if self._ticks else 0.0)
        known = self._wants.known_rate_kbps if self._wants else None
        self._probe = (t, known, ProbeOutcome(kbps, bytes_used, reason))
        if kbps is not None and kbps > FAST_KBPS:
            self._fast_seen_t = t  # a light user on a fast link: the check showed its speed
        self.probe_bytes_used += bytes_used
        self._wants = None

    def take_observations(self) -> list[Observation]:
        """Observations made since the last call (``suspect``), oldest first."""
        out, self._observations = self._observations, []
        return out

    @property
    def wants_traffic_probe(self) -> bool:
        """Whether the reflector's RTT/loss echo is worth its bytes now (the agent's own
        traffic budget): every second while there is traffic near throttle rates to judge
        or a non-ok verdict stands; one second in ``FAST_ECHO_EVERY`` (10) while the link runs
        faster than any cap (only a change needs noticing); never while nobody waits."""
        if not self._ticks:
            return True
        last = self._ticks[-1]
        if self.state not in (None, "idle", "ok") or not last.registered:
            return True
        if self._sending_into_silence():
            return True  # something leaves and nothing comes back: is anything there at all?
        if last.flows == 0:  # nobody's flow: the WAN bytes are the agent's own (a report)
            return False
        fast = self._fast_seen_t is not None and last.t - self._fast_seen_t <= SMOOTH_SECONDS
        return not fast or len(self._ticks) % FAST_ECHO_EVERY == 0

    def _sending_into_silence(self) -> bool:
        """The last ``SILENCE_PROBE_SECONDS`` brought not one byte down while something went
        up or the LAN asked for something: the one case a black hole shows on a quiet
        link (a LAN host's SYNs retried into nothing, a report never acknowledged), so the
        echo is worth its ~30 bytes a second until an answer or a verdict (issue 23)."""
        recent = list(self._ticks)[-SILENCE_PROBE_SECONDS:]
        return len(recent) == SILENCE_PROBE_SECONDS and all(k.down_kbps == 0 for k in recent) and \
            any(k.up_kbps > 0 or k.lan_kbps > 0 for k in recent)

    def feed(self, sample: Sample) -> list[StateChange]:
        """Take one sample; return the state changes decided at it (0 or 1)."""
        prev, self._prev = self._prev, sample
        if prev is None:
            return []
        if sample.t <= prev.t:
            LOGGER.warning("sample at t=%s not after t=%s; ignored", sample.t, prev.t)  # pragma: no mutate
            self._prev = prev
            return []
        tick = evidence.tick(prev, sample, self._busy_min)
        self._ticks.append(tick)
        self._note_speed(tick)
        while self._ticks and tick.t - self._ticks[0].t > HISTORY_SECONDS:
            self._ticks.popleft()
        cand = self._candidate(tick)
        if cand is not None and cand.state == "none":
            return []  # a short pause: no opinion
        return self._hysteresis(tick.t, cand)

    # ------------------------------------------------------------ internals

    def _radio(self) -> dict[str, float | None]:
        return evidence.radio(list(self._ticks))

    def _delay_loss(self, win: list[Tick]) -> dict[str, Any]:
        return evidence.delay_loss(win, evidence.base_rtt(list(self._ticks)))

    def _window(self, seconds: float) -> list[Tick]:
        end = self._ticks[-1].t
        return [k for k in self._ticks if end - k.t < seconds]

    def _candidate(self, tick: Tick) -> _Candidate | None:
        """The state this second argues for, by priority; None = no opinion."""
        for rule in (self._no_service, self._poor_radio, self._idle, self._throttled,
                     self._congested, self._ok):
            cand = rule(tick)
            if cand is not None:
                return cand
        return None

    def _no_service(self, tick: Tick) -> _Candidate | None:
        win = self._window(NO_SERVICE_SECONDS)
        if not tick.registered:
            since = tick.t
            for k in reversed(self._ticks):  # back to the first unregistered sample
                if k.registered:
                    break
                since = k.t
            return _Candidate("no_service", None, {"cause": "not_registered"}, since)
        if len(win) < NO_SERVICE_SECONDS or any(k.down_kbps > 0 or k.rtt_ms is not None for k in win):
            return None
        if win[-1].sent - win[0].sent < len(win) - 1:
            return None  # not probing: silence proves nothing
        if all(k.up_kbps == 0 for k in win):  # nothing leaves either: no bearer to send on
            return _Candidate("no_service", None, {"cause": "no_data", "probes_lost": win[-1].lost - win[0].lost,
                                                   "seconds_silent": len(win)}, win[0].t)
        return self._blackhole()

    def _blackhole(self) -> _Candidate | None:
        """Registered, the router sends (its echoes at least), and nothing comes back: the
        carrier's core drops the user plane behind a healthy radio. Told from congestion
        and a slow link by the downlink: those deliver *something* and answer echoes late,
        a black hole delivers not one byte. Costs only the echoes already sent each second
        while a verdict is open (the reflector, ~30 bytes each): no download, no broker."""
        hole = self._window(BLACKHOLE_SECONDS)
        if len(hole) < BLACKHOLE_SECONDS or any(k.down_kbps > 0 or k.rtt_ms is not None for k in hole):
            return None
        if hole[-1].sent - hole[0].sent < len(hole) - 1:
            return None
        sent_bytes = sum(k.up_kbps * k.dt * 1000 / 8 for k in hole)
        return _Candidate("no_service", None, {"cause": "blackhole", "probes_lost": hole[-1].lost - hole[0].lost,
                                               "seconds_silent": len(hole), "up_bytes": round(sent_bytes),
                                               "down_bytes": 0, "radio": {k: rounded(v) for k, v in
                                                                          self._radio().items()}}, hole[0].t)

    def _poor_radio(self, tick: Tick) -> _Candidate | None:
        radio = self._radio()
        why = evidence.radio_poor(radio)
        if not why:
            return None
        ev = {"radio": {k: rounded(v) for k, v in radio.items()}, "below": why, **self._delay_loss(self._window(WINDOW_SECONDS))}
        return _Candidate("poor_radio", None, ev, tick.t)

    def _idle(self, tick: Tick) -> _Candidate | None:
        """Idle only once nobody has wanted data for IDLE_SECONDS; a shorter pause (think
        time) is no opinion at all, so it does not break another state's hold."""
        if not tick.idle:
            return None
        run = 0
        for k in reversed(self._ticks):
            if not k.idle:
                break
            run += 1
        if run < IDLE_SECONDS:
            return _Candidate("none", None, {}, tick.t)
        win = list(self._ticks)[-run:]
        return _Candidate("idle", None, {"flows": 0, "idle_seconds": run,
                                         "kbps": rounded(max(k.down_kbps + k.up_kbps for k in win))}, win[0].t)

    def _seen_fast(self) -> bool:
        """A 3-s average above FAST_KBPS, or an active check that fast, within the
        history: not a slow radio link."""
        now = self._ticks[-1].t
        return self._fast_seen_t is not None and now - self._fast_seen_t <= HISTORY_SECONDS

    def _note_speed(self, tick: Tick) -> None:
        """Keep the time of the last 3-s average (over busy seconds) above FAST_KBPS."""
        if not tick.busy:
            return
        self._last_busy.append(tick)
        if len(self._last_busy) == SMOOTH_SECONDS:
            ((_, kbps),) = evidence.smoothed(list(self._last_busy))
            if kbps > FAST_KBPS:
                self._fast_seen_t = tick.t

    def _throttled(self, tick: Tick) -> _Candidate | None:
        slow = not self._seen_fast()
        need, span = (SLOW_LINK_BUSY_SECONDS, SLOW_LINK_WINDOW_SECONDS) if slow else \
            (MIN_BUSY_SECONDS, WINDOW_SECONDS)
        win = self._window(span)
        ceil = evidence.ceiling(win, need)
        if self.state == "throttled" and (ceil is None or ceil["flat"] < FLAT_FRACTION):
            return self._still_throttled(self._window(WINDOW_SECONDS))
        if ceil is None or ceil["flat"] < FLAT_FRACTION:
            return None
        quantum = DRIFT_FRAMES * FRAME_BITS / 1000 / SMOOTH_SECONDS / ceil["kbps"]
        if ceil["drift"] > DRIFT_MAX + quantum:
            return None
        known = nearest_known(ceil["kbps"], self.known_rates)
        if known is None:
            return None
        # Delay over the same seconds the ceiling was judged on, not the whole window:
        # RTTs from before the cap would blur a shaper's steady queue.
        seconds = [k for k in win if k.t >= ceil["start_t"]]
        delay = self._delay_loss(seconds)
        queue, spread = delay["queue_ms"], delay["rtt_spread_ms"]
        shaper = queue is not None and queue >= SHAPER_QUEUE_MS and spread is not None and \
            spread <= STEADY_RTT_SPREAD * queue
        policer = queue is None or queue < SHAPER_QUEUE_MS
        if not (shaper or policer):
            return None  # flat rate but a wandering queue: not a cap's signature
        radio = self._radio()
        window_delay = self._delay_loss(win)
        ev: dict[str, Any] = {
            "ceiling_kbps": rounded(ceil["kbps"]), "known_rate_kbps": known,
            "plan_rate_kbps": self.plan_rate_kbps, "nominal_kbps": self.nominal_kbps, "flat_fraction": rounded(ceil["flat"], 2),
            "cv": rounded(ceil["cv"], 3), "drift": rounded(ceil["drift"], 3), "busy_seconds": ceil["busy_seconds"], "flows": ceil["flows"],
            # A policer never queues; a shaper under one TCP flow fills and drains its
            # queue for a while before it settles, so queueing in a quarter of the
            # window's echoes already names it, even when too unsteady to be agreement.
            "mechanism": "shaper" if shaper or (window_delay["queue_q3_ms"] or 0.0) >= SHAPER_QUEUE_MS
            else "policer", **delay,
            "radio": {k: rounded(v) for k, v in radio.items()},
        }
        # Already throttled at this rate: the verdict stands on its earlier agreement; a
        # load that thinned to one flow does not reopen the question (nor spend data).
        same_cap = self.state == "throttled" and self.rate_kbps is not None and \
            nearest_known(self.rate_kbps, self.known_rates) == known
        # Loss over the whole window: one echo a second gives too few in five seconds.
        agree = evidence.agreement(ceil, window_delay, seconds, shaper, same_cap)
        if slow:
            ev["slow_link"] = True
        if not agree:
            verdict = self._probe_verdict(tick.t, ceil["kbps"], known)
            ev["probe"] = verdict
            if verdict["result"] == "pending":
                return None
            if verdict["result"] == "refuted":
                return _Candidate("ok", None, {**ev, "why": "app_limited"}, tick.t)
            if verdict["result"] == "unavailable":
                self._suspect(tick.t, known, round(ceil["kbps"]), ev)
                return None  # no opinion on a cap: the other rules decide (usually ok)
            agree = ["active_check"]
        ev["agreement"] = agree
        return _Candidate("throttled", round(ceil["kbps"]), ev, ceil["onset_t"])

    def _suspect(self, t: float, known: int, kbps: float, ev: dict[str, Any]) -> None:
        """Record a ``suspect`` observation (at most once a minute per known rate)."""
        last = self._suspect_at.get(known)
        if last is not None and t - last < SUSPECT_REPEAT_SECONDS:
            return
        self._suspect_at[known] = t
        facts = {k: v for k, v in ev.items() if k != "mechanism"}  # no cap, so no mechanism
        obs = Observation(t, "suspect", kbps, {**facts, "why": "flat rate on one flow, nothing confirms a cap"})
        self._observations.append(obs)
        self.last_suspect = obs
        # pragma: no mutate start
        LOGGER.info("health: suspect at t=%s: flat %.0f kbps near %d kbps, no agreeing evidence (%s)",
                    t, kbps, known, ev.get("probe", {}).get("reason", "no check"))
        # pragma: no mutate end

    def _still_throttled(self, win: list[Tick]) -> _Candidate | None:
        """While throttled, stay unless busy seconds clearly exceed the ceiling."""
        ceiling = self.rate_kbps or 0.0
        above = [(t, r) for t, r in evidence.smoothed([k for k in win if k.busy]) if r > EXCEED_FACTOR * ceiling]
        if len(above) >= EXCEED_SECONDS:
            return _Candidate("ok", None, {"kbps": rounded(statistics.median(r for _, r in above)),
                                           "above_ceiling_averages": len(above),
                                           "ceiling_kbps": ceiling}, above[0][0])
        return _Candidate("throttled", self.rate_kbps, {}, win[0].t) if win else None

    def _probe_verdict(self, t: float, ceiling: float, known: int) -> dict[str, Any]:
        """The active check's answer for this ceiling (its known rate): an answer about
        another rate does not count, since a cap that came on later changes the rate."""
        if self._probe is not None and self._probe[1] == known and t - self._probe[0] <= PROBE_VALID_SECONDS:
            _, _, outcome = self._probe
            if outcome.kbps is None:
                return {"result": "unavailable", "reason": outcome.reason}
            confirmed = outcome.kbps <= PROBE_CONFIRM_FACTOR * ceiling
            return {"result": "confirmed" if confirmed else "refuted", "probe_kbps": rounded(outcome.kbps),
                    "bytes": outcome.bytes_used}
        asked = self._probe_asked.get(known)
        if self._wants is None and (asked is None or t - asked >= PROBE_RETRY_SECONDS):
            self._wants = ProbeRequest(t, round(ceiling, 1), "flat ceiling on a single flow, no queue", known)
            self._probe_asked[known] = t
            self.probes_requested += 1
            LOGGER.info("active check wanted at t=%s: ceiling %.0f kbps on one flow", t, ceiling)  # pragma: no mutate
        elif self._wants is None:
            return {"result": "unavailable", "reason": "retry later"}
        return {"result": "pending"}

    def _congested(self, tick: Tick) -> _Candidate | None:
        win = self._window(CONGEST_WINDOW)
        busy = [k for k in win if k.busy]
        if len(busy) < MIN_BUSY_SECONDS:
            return None
        rates = [k.kbps for k in busy]
        med = statistics.median(rates)
        cv = statistics.pstdev(rates) / med if med > 0 else 0.0
        delay = self._delay_loss(win)
        # Entering needs both signs; staying needs either at half strength, so a cell
        # that calms for a few seconds between other users' bursts does not flap to ok.
        factor = 0.5 if self.state == "congested" else 1.0
        wanders = cv >= factor * CONGEST_SPREAD
        queues = delay["queue_ms"] is not None and delay["queue_ms"] >= factor * SHAPER_QUEUE_MS
        if not ((wanders or queues) if self.state == "congested" else (wanders and queues)):
            return None
        ev = {"median_kbps": rounded(med), "cv": rounded(cv, 3), "busy_seconds": len(busy), **delay,
              "radio": {k: rounded(v) for k, v in self._radio().items()}}
        return _Candidate("congested", None, ev, busy[0].t)

    def _ok(self, tick: Tick) -> _Candidate | None:
        win = self._window(WINDOW_SECONDS)
        busy = [k for k in win if k.busy]
        if self.state == "throttled":
            return self._still_throttled(win)
        if not busy and self.state is not None:
            return None  # between bursts: no opinion
        fast = any(k.kbps > EXCEED_FACTOR * max(self.known_rates) for k in busy)
        if len(busy) < MIN_BUSY_SECONDS and (self.state == "ok" or not fast):
            # Too short to judge: it must not reset another state's hold, and coming back
            # from idle it could be a capped SIM, so "ok" needs a second faster than any
            # throttle rate, or enough seconds to judge a ceiling.
            return None
        return _Candidate("ok", None, {"kbps": rounded(max((k.kbps for k in win), default=0.0)),
                                       "busy_seconds": len(busy)}, tick.t)

    def _hysteresis(self, t: float, cand: _Candidate | None) -> list[StateChange]:
        if cand is None:
            return []
        if cand.state == self.state:
            self._pending = None
            if cand.state == "throttled" and cand.rate_kbps is not None and cand.evidence:
                self.rate_kbps = cand.rate_kbps
            return []
        if self._pending is None or self._pending.state != cand.state:
            self._pending = _Pending(cand.state, t)
        self._pending.count += 1
        hold = cand.hold if cand.hold is not None else ENTER_HOLD[cand.state]
        # Both: the time must have passed *and* about that many samples agreed, so a
        # candidate seen once before a long pause does not win on elapsed time alone.
        if t - self._pending.since < hold or self._pending.count < hold:
            return []
        change = StateChange(t=t, state=cand.state, rate_kbps=cand.rate_kbps, evidence=cand.evidence,
                             onset_t=min(cand.onset_t, self._pending.since), previous=self.state)
        # pragma: no mutate start
        LOGGER.info("health: %s -> %s at t=%s (%s)", self.state, cand.state, t,
                    f"{cand.rate_kbps} kbps" if cand.rate_kbps else "no rate")
        # pragma: no mutate end
        self.state, self.rate_kbps, self._pending = cand.state, cand.rate_kbps, None
        return [change]

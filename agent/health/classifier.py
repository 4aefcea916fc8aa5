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
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

from agent.health.sample import Sample

LOGGER = logging.getLogger(__name__)

STATES = ("ok", "throttled", "poor_radio", "congested", "no_service", "idle")

KNOWN_RATES_KBPS: tuple[int, ...] = (128, 200, 256, 300, 384, 512, 1000)
"""Throttle rates in Japanese MVNO and carrier contracts (domain.md's plan table and
the issue); the plan's own rate is added when known."""

WINDOW_SECONDS = 10.0
"""Throughput look-back: the ceiling is judged on the last five busy seconds found in
the last 10 s (a web page's think time may sit between them)."""

MIN_BUSY_SECONDS = 5
"""Busy seconds needed before judging a ceiling: five give three 3-s averages, all of
which must agree; fewer is a web page's burst, which tells nothing about a ceiling.
(Six cost a second of detection delay and changed no verdict on the trace library.)"""

SMOOTH_SECONDS = 3
"""Rates are judged as 3-s moving averages over busy seconds. A policer bounds bytes
over any interval to rate x time + bucket, but one TCP flow against it saws between
~10 % and ~160 % of the rate from one second to the next (measured: tests/traces/
police384_video.csv); over 3 s the bucket's share is small and the sum is flat."""

BUSY_MIN_KBPS = 40.0
"""A second below 40 kbps is keep-alives and DNS, not a user waiting for data (the
lowest throttle rate we know is 128; a throttled busy second carries ~3x this)."""

FLAT_BAND = 0.20
"""A 3-s average is "at the ceiling" when within +-20 % of the window's mean rate: a
half-second bucket adds up to 17 % over 3 s, TCP's back-off takes a similar share."""

FLAT_FRACTION = 0.8
"""Share of 3-s averages that must sit in the band (5 of 6): a policer holds the total
there; a busy cell or a fading link moves it every second or two."""

DRIFT_MAX = 0.08
"""First and last 3-s averages of the five busy seconds (2 s apart) may differ by 8 % of
the mean, plus counter quantisation (``DRIFT_FRAMES``): a cap holds its level, while a
cell whose load rises drifts *through* a throttle rate (about 4 %/s or more is caught)
and would otherwise look flat near it for a few seconds."""

DRIFT_FRAMES = 2
"""Whole frames a 3-s average may gain or lose by where second boundaries fall: at 128
kbps one 1514-byte frame is ~3 % of a 3-s average, and a held-out recording of a 128k
policer drifted up to 11 % by quantisation alone."""

FRAME_BITS = 1514 * 8
"""A full Ethernet frame, the unit the counters move by under bulk load."""

KNOWN_RATE_LOW, KNOWN_RATE_HIGH = 0.80, 1.10
"""Measured/known ratio accepted as "at that rate": goodput under a policer runs ~85-95 %
of the police rate (TCP backs off after drops), L2 framing counts a few % above it."""

EXCEED_FACTOR = 1.5
"""While throttled, a 3-s average above 1.5x the ceiling shows the cap was lifted: a
policer's bucket can add ~1/6 over 3 s, never 1/2."""

EXCEED_SECONDS = 2
"""...and two such averages in the window, so one lucky burst does not count."""

IDLE_SECONDS = 10
"""No flow and no bytes for 10 s: longer than a web page's think time (1-5 s)."""

IDLE_KBPS = 16.0
"""Below 16 kbps both ways with no active flow: background chatter, nobody waiting."""

RADIO_WINDOW = 5
"""Radio readings are noisy (+-3 dB); judge the median of the last five."""

POOR_RSRP_DBM = -110.0
"""3GPP/operator practice: below -110 dBm RSRP is cell-edge coverage where LTE rates
collapse; -100..-110 is 'fair'."""

POOR_RSRQ_DB = -15.0
"""Below -15 dB RSRQ the cell is interference-limited (commonly cited 'poor' bound)."""

POOR_SINR_DB = 0.0
"""SINR below 0 dB: the signal is under the noise; throughput is a fraction of peak."""

SHAPER_QUEUE_MS = 80.0
"""RTT this far above the base RTT means a queue in front of the bottleneck: more than
an idle LTE link's jitter (~20-50 ms), less than any carrier shaper's buffer (~250 ms)."""

STEADY_RTT_SPREAD = 0.5
"""A shaper's queue stays full: RTT spread (IQR) under half the queueing delay. A busy
cell's queue fills and drains, so its spread is larger."""

CONGEST_WINDOW = 10.0
"""Congestion is judged over 10 s: a busy cell's rate moves every few seconds."""

CONGEST_SPREAD = 0.25
"""Coefficient of variation of busy-second rates above 25 %: wandering, not flat (a cap
or a healthy saturated link stays under ~5 %). 30 % missed a recorded busy cell whose
rate moved by 15-40 % with a 150-400 ms queue; 15-20 % called a shaper's first seconds
congestion."""

BASE_RTT_SECONDS = 300.0
"""Base RTT = lowest RTT in the last 5 min; long enough to reach back before a shaper's
queue filled, short enough to follow a move to another cell."""

NO_SERVICE_SECONDS = 3.0
"""Not registered, or registered but no byte and no probe answer for this long with a
probe sent each second: three missed echoes is not jitter."""

ENTER_HOLD: dict[str, float] = {
    "no_service": 2.0,   # an outage is unambiguous once seen; report it fast
    "poor_radio": 4.0,   # five noisy radio readings' median must stay bad
    "throttled": 2.0,    # the ceiling already needs 5 flat busy seconds; 3 more samples
    "congested": 6.0,    # must outlast the few wandering seconds as a cap comes on
    "ok": 4.0,           # leave a bad state only once good held ~5 s
    "idle": 0.0,         # IDLE_SECONDS of no demand is already required by the rule
}
"""Seconds a candidate must hold before the state changes (entered and left this way)."""

PROBE_CONFIRM_FACTOR = 1.3
"""A probe burst that got no more than 1.3x the ceiling confirms the cap: a burst on
an uncapped 4G link runs at Mbit/s, many times any throttle rate."""

PROBE_BYTES = 256 * 1024
"""At most 256 KiB per check: 16 s at 128 kbps would be too long, so the check's time cap
(agent/net/activecheck.py, 3 s) bites first on a throttled SIM; on an unthrottled 4G link
it takes ~0.1-0.5 s, long enough to leave a throttle rate far behind."""

PROBE_VALID_SECONDS = 300.0
"""A probe's answer stands for 5 min for the same ceiling; then ask again if needed."""

PROBE_RETRY_SECONDS = 600.0
"""At most one probe per 10 min for an unresolved question: SIM data costs money."""

POLICER_LOSS_PCT = 10.0
"""Echo loss under demand that counts as a policer's drops: an idle or healthy LTE link
loses well under 1 %; a token bucket emptied by the user's traffic drops what arrives
while it is empty. Needs ``POLICER_LOSS_MIN`` echoes lost, so one late echo is not it."""

POLICER_LOSS_MIN = 2

DEMAND_GAP = 1.25
"""LAN-side bytes this much above the WAN's over the ceiling's seconds: users offer more
than the SIM carries (the router's own uplink queue overflowing in front of a capped
modem). Forwarding adds no bytes, so LAN and WAN agree within framing (~5 %)."""

FAST_KBPS = 1500.0
"""A 3-s average above this shows the link is not a slow radio link: 3G/EVDO-class links
deliver at most ~1.5 Mbit/s to one user (the issue's recorded links wandered 50-1,500
kbps), LTE delivers Mbit/s; and it is 1.5x the highest throttle rate, which a policed
link's bucket never reaches over 3 s (EXCEED_FACTOR)."""

SLOW_LINK_BUSY_SECONDS = 15
"""On a link never seen faster than FAST_KBPS, a cap needs 15 flat busy seconds: the
issue's field case was a 3G-class link flat at ~193 kbps with a steady ~220 ms queue for
five seconds; its capacity changes several times a second and never holds for 15."""

SLOW_LINK_WINDOW_SECONDS = 25.0
"""...found within the last 25 s (web think time may sit between them)."""

FAST_ECHO_EVERY = 10
"""While the link runs faster than any cap, one echo in ten seconds: enough base-RTT
history for when a cap comes (BASE_RTT_SECONDS keeps 5 min), a tenth of the bytes
(~88 B per echo both ways with headers: ~32 kB per busy hour instead of ~320 kB)."""

SUSPECT_REPEAT_SECONDS = 60.0
"""A ``suspect`` observation is repeated at most once a minute while it lasts (the log
and the status want to see it persist, not one line a second)."""

HISTORY_SECONDS = BASE_RTT_SECONDS
"""How much per-second history is kept (bounded memory: ~300 small tuples)."""


@dataclass(frozen=True)
class StateChange:
    """A decided state change, with what it rests on."""

    t: float
    """Time of the sample at which the classifier decided (sample clock)."""
    state: str
    rate_kbps: float | None
    evidence: dict[str, Any]
    onset_t: float | None = None
    """When the classifier thinks the condition began (first sample that showed it)."""
    previous: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The replay output line."""
        out: dict[str, Any] = {"t": self.t, "state": self.state, "rate_kbps": self.rate_kbps,
                               "evidence": self.evidence}
        if self.onset_t is not None:
            out["onset_t"] = self.onset_t
        return out

    @property
    def mechanism(self) -> str | None:
        """"policer" or "shaper" for ``throttled``; None otherwise."""
        mech = self.evidence.get("mechanism") if self.state == "throttled" else None
        return mech if mech in ("policer", "shaper") else None


@dataclass(frozen=True)
class Observation:
    """Something worth logging that is not a state: ``suspect`` = a flat rate near a
    throttle rate that no other evidence confirms (an app-limited stream, or a cap the
    agent could not check)."""

    t: float
    kind: str
    rate_kbps: float | None
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The replay output line (``observation`` instead of ``state``)."""
        return {"t": self.t, "observation": self.kind, "rate_kbps": self.rate_kbps, "evidence": self.evidence}


@dataclass(frozen=True)
class ProbeRequest:
    """The classifier asks for one active check: a bounded download burst."""

    t: float
    ceiling_kbps: float
    reason: str
    known_rate_kbps: int | None = None


@dataclass(frozen=True)
class ProbeOutcome:
    """What the active check measured (``kbps`` None: it could not run)."""

    kbps: float | None
    bytes_used: int = 0
    reason: str = ""


@dataclass(frozen=True)
class _Tick:
    t: float
    dt: float
    down_kbps: float
    up_kbps: float
    lan_kbps: float
    flows: int
    rtt_ms: float | None
    sent: int
    lost: int
    rsrp: float | None
    rsrq: float | None
    sinr: float | None
    registered: bool

    @property
    def kbps(self) -> float:
        return max(self.down_kbps, self.up_kbps)

    @property
    def busy(self) -> bool:
        return self.flows >= 1 and self.kbps >= BUSY_MIN_KBPS


@dataclass(frozen=True)
class _Candidate:
    state: str
    rate_kbps: float | None
    evidence: dict[str, Any]
    onset_t: float
    hold: float | None = None


def _rate(prev: int, cur: int, dt: float) -> float:
    """kbps from two cumulative byte counters; a counter reset (reboot) reads as 0."""
    return max(0, cur - prev) * 8 / 1000 / dt if dt > 0 else 0.0


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def nearest_known(kbps: float, known: tuple[int, ...]) -> int | None:
    """The known throttle rate ``kbps`` is "at", or None."""
    fits = [k for k in known if KNOWN_RATE_LOW <= kbps / k <= KNOWN_RATE_HIGH]
    return min(fits, key=lambda k: abs(kbps / k - 1)) if fits else None


@dataclass
class _Pending:
    state: str
    since: float
    count: int = 0


class Classifier:
    """Feed ``Sample`` values in time order; read ``state`` and the changes returned."""

    def __init__(self, plan_rate_kbps: float | None = None):
        self.plan_rate_kbps = plan_rate_kbps
        rates = set(KNOWN_RATES_KBPS)
        if plan_rate_kbps:
            rates.add(int(plan_rate_kbps))
        self.known_rates = tuple(sorted(rates))
        self.state: str | None = None
        self.rate_kbps: float | None = None
        self._prev: Sample | None = None
        self._ticks: deque[_Tick] = deque()
        self._pending: _Pending | None = None
        self._wants: ProbeRequest | None = None
        self._probe_asked: dict[int | None, float] = {}
        self._probe: tuple[float, int | None, ProbeOutcome] | None = None
        self.probes_requested = 0
        self.probe_bytes_used = 0
        self._observations: list[Observation] = []
        self._fast_seen_t: float | None = None
        self._last_busy: deque[_Tick] = deque(maxlen=SMOOTH_SECONDS)
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
        if self._wants is None:
            LOGGER.debug("probe result without a request; kept anyway")
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
        if last.flows == 0:  # nobody's flow: the WAN bytes are the agent's own (a report)
            return False
        fast = self._fast_seen_t is not None and last.t - self._fast_seen_t <= SMOOTH_SECONDS
        return not fast or len(self._ticks) % FAST_ECHO_EVERY == 0

    def feed(self, sample: Sample) -> list[StateChange]:
        """Take one sample; return the state changes decided at it (0 or 1)."""
        prev, self._prev = self._prev, sample
        if prev is None:
            return []
        if sample.t <= prev.t:
            LOGGER.warning("sample at t=%s not after t=%s; ignored", sample.t, prev.t)
            self._prev = prev
            return []
        tick = self._tick(prev, sample)
        self._ticks.append(tick)
        self._note_speed(tick)
        while self._ticks and tick.t - self._ticks[0].t > HISTORY_SECONDS:
            self._ticks.popleft()
        cand = self._candidate(tick)
        if cand is not None and cand.state == "none":
            return []  # a short pause: no opinion
        return self._hysteresis(tick.t, cand)

    # ------------------------------------------------------------ internals

    @staticmethod
    def _tick(prev: Sample, s: Sample) -> _Tick:
        dt = s.t - prev.t
        return _Tick(
            t=s.t, dt=dt, down_kbps=_rate(prev.wan_rx_bytes, s.wan_rx_bytes, dt),
            up_kbps=_rate(prev.wan_tx_bytes, s.wan_tx_bytes, dt),
            lan_kbps=_rate(prev.lan_rx_bytes + prev.lan_tx_bytes, s.lan_rx_bytes + s.lan_tx_bytes, dt),
            flows=s.flows, rtt_ms=s.rtt_ms, sent=s.probes_sent, lost=s.probes_lost,
            rsrp=s.rsrp_dbm, rsrq=s.rsrq_db, sinr=s.sinr_db, registered=s.registered)

    def _window(self, seconds: float) -> list[_Tick]:
        end = self._ticks[-1].t
        return [k for k in self._ticks if end - k.t < seconds]

    def _candidate(self, tick: _Tick) -> _Candidate | None:
        """The state this second argues for, by priority; None = no opinion."""
        for rule in (self._no_service, self._poor_radio, self._idle, self._throttled,
                     self._congested, self._ok):
            cand = rule(tick)
            if cand is not None:
                return cand
        return None

    def _no_service(self, tick: _Tick) -> _Candidate | None:
        win = self._window(NO_SERVICE_SECONDS)
        if not tick.registered:
            since = tick.t
            for k in reversed(self._ticks):  # back to the first unregistered sample
                if k.registered:
                    break
                since = k.t
            return _Candidate("no_service", None, {"cause": "not_registered"}, since)
        if len(win) < NO_SERVICE_SECONDS or any(k.kbps > 0 or k.rtt_ms is not None for k in win):
            return None
        if win[-1].sent - win[0].sent < len(win) - 1:
            return None  # not probing: silence proves nothing
        return _Candidate("no_service", None, {"cause": "no_data", "probes_lost": win[-1].lost - win[0].lost,
                                               "seconds_silent": len(win)}, win[0].t)

    def _radio(self) -> dict[str, float | None]:
        recent = list(self._ticks)[-RADIO_WINDOW:]

        def med(vals: list[float | None]) -> float | None:
            got = [v for v in vals if v is not None]
            return statistics.median(got) if got else None

        return {"rsrp_dbm": med([k.rsrp for k in recent]), "rsrq_db": med([k.rsrq for k in recent]),
                "sinr_db": med([k.sinr for k in recent])}

    @staticmethod
    def _radio_poor(radio: dict[str, float | None]) -> list[str]:
        why = []
        if radio["rsrp_dbm"] is not None and radio["rsrp_dbm"] < POOR_RSRP_DBM:
            why.append("rsrp")
        if radio["rsrq_db"] is not None and radio["rsrq_db"] < POOR_RSRQ_DB:
            why.append("rsrq")
        if radio["sinr_db"] is not None and radio["sinr_db"] < POOR_SINR_DB:
            why.append("sinr")
        return why

    def _poor_radio(self, tick: _Tick) -> _Candidate | None:
        radio = self._radio()
        why = self._radio_poor(radio)
        if not why:
            return None
        ev = {"radio": {k: _r(v) for k, v in radio.items()}, "below": why, **self._delay_loss(self._window(WINDOW_SECONDS))}
        return _Candidate("poor_radio", None, ev, tick.t)

    @staticmethod
    def _is_idle(k: _Tick) -> bool:
        return k.flows == 0 and k.down_kbps + k.up_kbps < IDLE_KBPS

    def _idle(self, tick: _Tick) -> _Candidate | None:
        """Idle only once nobody has wanted data for IDLE_SECONDS; a shorter pause (think
        time) is no opinion at all, so it does not break another state's hold."""
        if not self._is_idle(tick):
            return None
        run = 0
        for k in reversed(self._ticks):
            if not self._is_idle(k):
                break
            run += 1
        if run < IDLE_SECONDS:
            return _Candidate("none", None, {}, tick.t)
        win = list(self._ticks)[-run:]
        return _Candidate("idle", None, {"flows": 0, "idle_seconds": run,
                                         "kbps": _r(max(k.down_kbps + k.up_kbps for k in win))}, win[0].t)

    def _base_rtt(self) -> float | None:
        rtts = [k.rtt_ms for k in self._ticks if k.rtt_ms is not None]
        return min(rtts) if rtts else None

    def _delay_loss(self, win: list[_Tick]) -> dict[str, Any]:
        rtts = sorted(k.rtt_ms for k in win if k.rtt_ms is not None)
        base = self._base_rtt()
        sent = win[-1].sent - win[0].sent if len(win) > 1 else 0
        lost = win[-1].lost - win[0].lost if len(win) > 1 else 0
        out: dict[str, Any] = {"rtt_ms": None, "base_rtt_ms": _r(base), "queue_ms": None,
                               "rtt_spread_ms": None, "queue_q3_ms": None,
                               "loss_pct": _r(100 * lost / sent) if sent > 0 else None}
        if rtts and base is not None:
            med = statistics.median(rtts)
            q = statistics.quantiles(rtts, n=4) if len(rtts) >= 2 else [med, med, med]
            out.update(rtt_ms=_r(med), queue_ms=_r(med - base), rtt_spread_ms=_r(q[2] - q[0]),
                       queue_q3_ms=_r(q[2] - base))
        return out

    @staticmethod
    def _smoothed(busy: list[_Tick]) -> list[tuple[float, float]]:
        """(t of the first tick, kbps) of each SMOOTH_SECONDS run of consecutive busy ticks."""
        out = []
        for i in range(len(busy) - SMOOTH_SECONDS + 1):
            run = busy[i:i + SMOOTH_SECONDS]
            kbits = sum(k.kbps * k.dt for k in run)
            out.append((run[0].t, kbits / sum(k.dt for k in run)))
        return out

    def _ceiling(self, win: list[_Tick], need: int = MIN_BUSY_SECONDS) -> dict[str, Any] | None:
        """The most recent ``need`` busy seconds inside the window: judging only those
        (not every busy second of the window) lets the verdict come as soon as enough
        seconds at the new rate exist, without the seconds before the cap."""
        busy = [k for k in win if k.busy][-need:]
        if len(busy) < need:
            return None
        mean = sum(k.kbps * k.dt for k in busy) / sum(k.dt for k in busy)
        smooth = self._smoothed(busy)
        in_band = [t for t, r in smooth if abs(r - mean) <= FLAT_BAND * mean]
        rates = [r for _, r in smooth]
        return {"kbps": mean, "busy_seconds": len(busy), "flat": len(in_band) / len(smooth),
                "drift": abs(rates[-1] - rates[0]) / mean if mean > 0 else 0.0,
                "start_t": busy[0].t,
                # the most flows seen sharing the ceiling: under a policer some flows
                # stall in retransmission back-off for seconds, yet they still wait
                "flows": max(k.flows for k in busy),
                # ...and the flows most of its seconds saw: a second connection that
                # overlaps one stream for a moment (a player's next segment, a page's
                # beacon) is not several flows sharing a cap
                "flows_typical": statistics.median_low(k.flows for k in busy),
                "onset_t": in_band[0] if in_band else busy[0].t,
                "cv": statistics.pstdev(rates) / mean if mean > 0 else 0.0}

    def _seen_fast(self) -> bool:
        """A 3-s average above FAST_KBPS, or an active check that fast, within the
        history: not a slow radio link."""
        now = self._ticks[-1].t
        return self._fast_seen_t is not None and now - self._fast_seen_t <= HISTORY_SECONDS

    def _note_speed(self, tick: _Tick) -> None:
        """Keep the time of the last 3-s average (over busy seconds) above FAST_KBPS."""
        if not tick.busy:
            return
        self._last_busy.append(tick)
        if len(self._last_busy) == SMOOTH_SECONDS:
            ((_, kbps),) = self._smoothed(list(self._last_busy))
            if kbps > FAST_KBPS:
                self._fast_seen_t = tick.t

    def _agreement(self, ceil: dict[str, Any], delay: dict[str, Any], seconds: list[_Tick],
                   shaper: bool, same_cap: bool) -> list[str]:
        """The evidence, besides a flat rate, that says "cap" (empty: none)."""
        why = []
        if ceil["flows_typical"] >= 2:
            why.append("flows")
        if shaper:
            why.append("shaper_queue")
        lost = seconds[-1].lost - seconds[0].lost if len(seconds) > 1 else 0
        if lost >= POLICER_LOSS_MIN and (delay["loss_pct"] or 0.0) >= POLICER_LOSS_PCT:
            why.append("policer_loss")
        lan = sum(k.lan_kbps * k.dt for k in seconds)
        wan = sum((k.down_kbps + k.up_kbps) * k.dt for k in seconds)
        if wan > 0 and lan >= DEMAND_GAP * wan:
            why.append("lan_demand")
        if same_cap:
            why.append("same_cap")
        return why

    def _throttled(self, tick: _Tick) -> _Candidate | None:
        slow = not self._seen_fast()
        need, span = (SLOW_LINK_BUSY_SECONDS, SLOW_LINK_WINDOW_SECONDS) if slow else \
            (MIN_BUSY_SECONDS, WINDOW_SECONDS)
        win = self._window(span)
        ceil = self._ceiling(win, need)
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
            "ceiling_kbps": _r(ceil["kbps"]), "known_rate_kbps": known,
            "plan_rate_kbps": self.plan_rate_kbps, "flat_fraction": _r(ceil["flat"], 2),
            "cv": _r(ceil["cv"], 3), "drift": _r(ceil["drift"], 3), "busy_seconds": ceil["busy_seconds"], "flows": ceil["flows"],
            # A policer never queues; a shaper under one TCP flow fills and drains its
            # queue for a while before it settles, so queueing in a quarter of the
            # window's echoes already names it, even when too unsteady to be agreement.
            "mechanism": "shaper" if shaper or (window_delay["queue_q3_ms"] or 0.0) >= SHAPER_QUEUE_MS
            else "policer", **delay,
            "radio": {k: _r(v) for k, v in radio.items()},
        }
        # Already throttled at this rate: the verdict stands on its earlier agreement; a
        # load that thinned to one flow does not reopen the question (nor spend data).
        same_cap = self.state == "throttled" and self.rate_kbps is not None and \
            nearest_known(self.rate_kbps, self.known_rates) == known
        # Loss over the whole window: one echo a second gives too few in five seconds.
        agree = self._agreement(ceil, window_delay, seconds, shaper, same_cap)
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
        LOGGER.info("health: suspect at t=%s: flat %.0f kbps near %d kbps, no agreeing evidence (%s)",
                    t, kbps, known, ev.get("probe", {}).get("reason", "no check"))

    def _still_throttled(self, win: list[_Tick]) -> _Candidate | None:
        """While throttled, stay unless busy seconds clearly exceed the ceiling."""
        ceiling = self.rate_kbps or 0.0
        above = [(t, r) for t, r in self._smoothed([k for k in win if k.busy]) if r > EXCEED_FACTOR * ceiling]
        if len(above) >= EXCEED_SECONDS:
            return _Candidate("ok", None, {"kbps": _r(statistics.median(r for _, r in above)),
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
            return {"result": "confirmed" if confirmed else "refuted", "probe_kbps": _r(outcome.kbps),
                    "bytes": outcome.bytes_used}
        asked = self._probe_asked.get(known)
        if self._wants is None and (asked is None or t - asked >= PROBE_RETRY_SECONDS):
            self._wants = ProbeRequest(t, round(ceiling, 1), "flat ceiling on a single flow, no queue", known)
            self._probe_asked[known] = t
            self.probes_requested += 1
            LOGGER.info("active check wanted at t=%s: ceiling %.0f kbps on one flow", t, ceiling)
        elif self._wants is None:
            return {"result": "unavailable", "reason": "retry later"}
        return {"result": "pending"}

    def _congested(self, tick: _Tick) -> _Candidate | None:
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
        ev = {"median_kbps": _r(med), "cv": _r(cv, 3), "busy_seconds": len(busy), **delay,
              "radio": {k: _r(v) for k, v in self._radio().items()}}
        return _Candidate("congested", None, ev, busy[0].t)

    def _ok(self, tick: _Tick) -> _Candidate | None:
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
        return _Candidate("ok", None, {"kbps": _r(max((k.kbps for k in win), default=0.0)),
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
        LOGGER.info("health: %s -> %s at t=%s (%s)", self.state, cand.state, t,
                    f"{cand.rate_kbps} kbps" if cand.rate_kbps else "no rate")
        self.state, self.rate_kbps, self._pending = cand.state, cand.rate_kbps, None
        return [change]

"""The evidence the low-speed classifier weighs, computed from per-second ticks.

Pure functions over a window of ``Tick`` values (one per sample interval): rates, the
flat ceiling and how flat it is, delay and loss against the base RTT, the radio's
median, and the agreement that turns a flat rate into a cap. The classifier's rules
(``classifier.py``) decide which window to ask about and what the answers mean; the
thresholds are ``thresholds.py``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from agent.health.sample import Sample
from agent.health.thresholds import (
    BUSY_MIN_KBPS,
    BUSY_REFERENCE_KBPS,
    DEMAND_GAP,
    FLAT_BAND,
    IDLE_KBPS,
    KNOWN_RATE_HIGH,
    KNOWN_RATE_LOW,
    MIN_BUSY_SECONDS,
    POLICER_LOSS_MIN,
    POLICER_LOSS_PCT,
    POOR_RSRP_DBM,
    POOR_RSRQ_DB,
    POOR_SINR_DB,
    RADIO_WINDOW,
    SMOOTH_SECONDS,
)


@dataclass(frozen=True)
class Tick:
    """One interval between two samples, as rates."""

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
    busy_min_kbps: float = BUSY_MIN_KBPS
    """Below this a second is not busy: lower only for a SIM that can be throttled below
    128 kbps (``busy_floor``)."""

    @property
    def kbps(self) -> float:
        return max(self.down_kbps, self.up_kbps)

    @property
    def busy(self) -> bool:
        return self.flows >= 1 and self.kbps >= self.busy_min_kbps

    @property
    def idle(self) -> bool:
        return self.flows == 0 and self.down_kbps + self.up_kbps < IDLE_KBPS


def rate(prev: int, cur: int, dt: float) -> float:
    """kbps from two cumulative byte counters; a counter reset (reboot) reads as 0."""
    return max(0, cur - prev) * 8 / 1000 / dt if dt > 0 else 0.0


def rounded(x: float | None, nd: int = 1) -> float | None:
    """Evidence values are rounded for the event and the log (None stays None)."""
    return None if x is None else round(x, nd)


def busy_floor(known: tuple[int, ...]) -> float:
    """The busy threshold for a SIM whose lowest throttle rate is ``min(known)``: the
    standard 40 kbps, or the same share of a lower rate (a flat-rate plan policed to
    32 kbps carries ~32 kbps per busy second: 40 would call it idle)."""
    lowest = min(known, default=BUSY_REFERENCE_KBPS)
    return min(BUSY_MIN_KBPS, BUSY_MIN_KBPS * lowest / BUSY_REFERENCE_KBPS)


def tick(prev: Sample, s: Sample, busy_min_kbps: float = BUSY_MIN_KBPS) -> Tick:
    """The interval from ``prev`` to ``s``."""
    dt = s.t - prev.t
    return Tick(
        t=s.t, dt=dt, down_kbps=rate(prev.wan_rx_bytes, s.wan_rx_bytes, dt),
        up_kbps=rate(prev.wan_tx_bytes, s.wan_tx_bytes, dt),
        lan_kbps=rate(prev.lan_rx_bytes + prev.lan_tx_bytes, s.lan_rx_bytes + s.lan_tx_bytes, dt),
        flows=s.flows, rtt_ms=s.rtt_ms, sent=s.probes_sent, lost=s.probes_lost,
        rsrp=s.rsrp_dbm, rsrq=s.rsrq_db, sinr=s.sinr_db, registered=s.registered, busy_min_kbps=busy_min_kbps)


def nearest_known(kbps: float, known: tuple[int, ...]) -> int | None:
    """The known throttle rate ``kbps`` is "at", or None."""
    fits = [k for k in known if KNOWN_RATE_LOW <= kbps / k <= KNOWN_RATE_HIGH]
    return min(fits, key=lambda k: abs(kbps / k - 1)) if fits else None


def radio(ticks: list[Tick]) -> dict[str, float | None]:
    """Median RSRP, RSRQ and SINR of the last ``RADIO_WINDOW`` ticks (None: not read)."""
    recent = ticks[-RADIO_WINDOW:]

    def med(vals: list[float | None]) -> float | None:
        got = [v for v in vals if v is not None]
        return statistics.median(got) if got else None

    return {"rsrp_dbm": med([k.rsrp for k in recent]), "rsrq_db": med([k.rsrq for k in recent]),
            "sinr_db": med([k.sinr for k in recent])}


def radio_poor(reading: dict[str, float | None]) -> list[str]:
    """Which of the radio's medians are below their bound."""
    why = []
    if reading["rsrp_dbm"] is not None and reading["rsrp_dbm"] < POOR_RSRP_DBM:
        why.append("rsrp")
    if reading["rsrq_db"] is not None and reading["rsrq_db"] < POOR_RSRQ_DB:
        why.append("rsrq")
    if reading["sinr_db"] is not None and reading["sinr_db"] < POOR_SINR_DB:
        why.append("sinr")
    return why


def base_rtt(ticks: list[Tick]) -> float | None:
    """The lowest RTT in the history: the link's delay without a queue."""
    rtts = [k.rtt_ms for k in ticks if k.rtt_ms is not None]
    return min(rtts) if rtts else None


def delay_loss(win: list[Tick], base: float | None) -> dict[str, Any]:
    """RTT median, queue above ``base``, its spread and third quartile, and echo loss."""
    rtts = sorted(k.rtt_ms for k in win if k.rtt_ms is not None)
    sent = win[-1].sent - win[0].sent if len(win) > 1 else 0
    lost = win[-1].lost - win[0].lost if len(win) > 1 else 0
    out: dict[str, Any] = {"rtt_ms": None, "base_rtt_ms": rounded(base), "queue_ms": None,
                           "rtt_spread_ms": None, "queue_q3_ms": None,
                           "loss_pct": rounded(100 * lost / sent) if sent > 0 else None}
    if rtts and base is not None:
        med = statistics.median(rtts)
        q = statistics.quantiles(rtts, n=4) if len(rtts) >= 2 else [med, med, med]
        out.update(rtt_ms=rounded(med), queue_ms=rounded(med - base), rtt_spread_ms=rounded(q[2] - q[0]),
                   queue_q3_ms=rounded(q[2] - base))
    return out


def smoothed(busy: list[Tick]) -> list[tuple[float, float]]:
    """(t of the first tick, kbps) of each SMOOTH_SECONDS run of consecutive busy ticks."""
    out = []
    for i in range(len(busy) - SMOOTH_SECONDS + 1):
        run = busy[i:i + SMOOTH_SECONDS]
        kbits = sum(k.kbps * k.dt for k in run)
        out.append((run[0].t, kbits / sum(k.dt for k in run)))
    return out


def ceiling(win: list[Tick], need: int = MIN_BUSY_SECONDS) -> dict[str, Any] | None:
    """The most recent ``need`` busy seconds inside the window: judging only those
    (not every busy second of the window) lets the verdict come as soon as enough
    seconds at the new rate exist, without the seconds before the cap."""
    busy = [k for k in win if k.busy][-need:]
    if len(busy) < need:
        return None
    mean = sum(k.kbps * k.dt for k in busy) / sum(k.dt for k in busy)
    smooth = smoothed(busy)
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


def agreement(ceil: dict[str, Any], delay: dict[str, Any], seconds: list[Tick],
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

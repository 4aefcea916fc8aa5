"""Exact usage metering: interface counter readings in, per-SIM per-day byte deltas out.

Pure logic (no I/O except reading the boot id once, injectable). Fed ``Counters``
readings by the sampler; returns ``UsageDelta`` values for the journal.

Rules (docs/usage.md explains each):

* **Framing rule.** The carrier bills IP bytes; the kernel counts link-layer bytes.
  IP bytes = bytes - ``header_bytes`` x packets, where ``header_bytes`` is the board
  profile's ``link_header_bytes`` (14 on an Ethernet-framed interface, 0 on raw-IP wwan).
* **Resets.** A counter that goes backwards wrapped (32- or 64-bit) if the wrap is
  plausible, else the counters restarted; a new ifindex (interface re-created) or a new
  boot id (reboot) also means counting from zero. A reset delta is the new reading.
* **Implausible jumps** (more than the link could carry in the elapsed time) are
  logged and not counted; the baseline moves past them so they are never counted later.
* **Boundaries.** A delta is cut at local midnights (JST by default) in proportion to
  the time on each side; ``next_boundary()`` tells the sampler when to read so the cut
  falls between two readings and the proportional rule never has to guess.
* **Regions.** Each delta carries the MCC of the network that carried it: the serving
  network's (numeric +COPS, told by ``set_serving_mcc`` each time it changes), else the
  SIM's home MCC. A Japanese SIM roaming abroad is billed to the country it roamed in.
* **Untrusted clock.** While no source vouched for the wall clock (agent/clock.py) the
  bytes are still counted, per SIM and region, stamped with the *monotonic* clock and
  held; once the clock is trusted they are dated (wall now - monotonic age) and cut into
  days like any other. A SIM switch while holding keeps each SIM's bytes its own. The
  durable baseline (``baseline()``) stays where holding began, so a crash while holding
  recounts those bytes rather than losing them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo

from agent.clock import JST, Clock
from agent.usage import calendar
from agent.usage.counters import Counters, read_boot_id

LOGGER = logging.getLogger(__name__)

MAX_LINK_RATE_BPS = 10_000_000_000
"""10 Gbit/s per direction: above any cellular link a pocket router has (5G NR peaks near
4-5 Gbit/s, LTE Cat 20 at 2 Gbit/s), so only a misread or corruption exceeds it."""

MIN_PLAUSIBILITY_WINDOW_S = 1.0
"""Readings closer together than this are judged against one second of capacity: the
kernel folds per-CPU stats on read and NAPI batches packets, so tiny intervals see bursts."""

DEFAULT_HEADER_BYTES = 14
"""Ethernet header: what an Ethernet-framed (veth, cdc_ether) interface adds per packet."""

WRAP_WIDTHS = (32, 64)
"""Counter widths seen in the field: 32-bit on old drivers, 64-bit with IFLA_STATS64."""


@dataclass(frozen=True)
class UsageDelta:
    """IP-level bytes one SIM moved within one local day, between two wall times."""

    iccid: str
    imsi: str
    mcc: str
    day: str
    """"YYYY-MM-DD" in the plan's zone."""
    month: str
    tz: str
    """"+09:00"-style offset of the plan's zone."""
    start: float
    end: float
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class ActiveSim:
    iccid: str
    imsi: str
    mcc: str


@dataclass
class _Held:
    """Bytes counted while the wall clock was untrusted, with monotonic times."""

    sim: ActiveSim
    mcc: str
    start_mono: float
    end_mono: float
    rx: int
    tx: int


def _advance(prev: int, cur: int, limit: int) -> int | None:
    """How far one counter advanced; None if it went backwards without a plausible wrap."""
    if cur >= prev:
        return cur - prev
    for width in WRAP_WIDTHS:
        modulus = 1 << width
        if prev < modulus and modulus - prev + cur <= limit:
            return modulus - prev + cur
    return None


class UsageMeter:
    """Turns successive counter readings of the WAN interface into per-SIM, per-day deltas.

    Call ``sample`` before ``set_active_sim`` at a SIM switch, so the old SIM's bytes go
    to the old SIM.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        tz: tzinfo = JST,
        header_bytes: int = DEFAULT_HEADER_BYTES,
        max_rate_bps: int = MAX_LINK_RATE_BPS,
        boot_id: str | None = None,
    ):
        if header_bytes < 0:
            raise ValueError(f"header_bytes must be >= 0, got {header_bytes}")
        self._clock = clock
        self._tz = tz
        self._header = header_bytes
        self._max_rate_bps = max_rate_bps
        self._boot_id = read_boot_id() if boot_id is None else boot_id
        self._sim: ActiveSim | None = None
        self._prev: Counters | None = None
        self._prev_wall = 0.0
        self._prev_mono: float | None = None
        self._waiting_for_time = False  # pragma: no mutate (only says when to log)
        self._serving_mcc: str | None = None
        self._held: list[_Held] = []
        self._held_base: tuple[Counters, float] | None = None
        self.rejected = 0
        """Readings refused as implausible jumps (each logged)."""
        self.unattributed_bytes = 0
        """IP bytes that moved while no SIM was active (logged, not billed)."""

    # -- state -------------------------------------------------------------------

    def baseline(self) -> Counters | None:
        """The reading deltas so far are computed up to (where holding began, while usage
        is held for an untrusted clock: the durable record must not move past it)."""
        return self._held_base[0] if self._held_base else self._prev

    def baseline_wall(self) -> float:
        """Wall time at which ``baseline()`` was read."""
        return self._held_base[1] if self._held_base else self._prev_wall

    @property
    def held_bytes(self) -> int:
        """Bytes counted but not yet dated (the wall clock is not trusted yet)."""
        return sum(h.rx + h.tx for h in self._held)

    @property
    def boot_id(self) -> str:
        return self._boot_id

    def seed(self, baseline: Counters, wall: float) -> None:
        """Resume from a durable baseline (the journal's), read at wall time ``wall``."""
        self._prev = baseline
        self._prev_wall = wall
        self._prev_mono = None  # another process's monotonic clock: use wall time
        LOGGER.info("meter resumed from baseline %s", baseline)

    def set_active_sim(self, iccid: str, imsi: str, mcc: str) -> None:
        """The SIM now carrying traffic (``mcc``: its home MCC, the fallback region).
        Sample first, so the bytes so far stay with the previous SIM."""
        self._sim = ActiveSim(iccid, imsi, mcc)

    def set_plan_tz(self, tz: tzinfo) -> None:
        """The zone of the active SIM's plan (its day and month boundaries). Sample first."""
        self._tz = tz

    def set_serving_mcc(self, mcc: str | None) -> None:
        """The serving network's MCC (numeric +COPS), each time it changes; None: unknown.
        Sample first, so the bytes so far stay with the previous region."""
        if mcc != self._serving_mcc:  # pragma: no mutate (log only)
            LOGGER.info("usage region: serving MCC %s -> %s", self._serving_mcc, mcc)
        self._serving_mcc = mcc

    def clear_active_sim(self) -> None:
        self._sim = None

    def next_boundary(self) -> float:
        """Wall time of the next local midnight: take a reading exactly then."""
        return calendar.next_midnight(self._clock.wall(), self._tz)

    # -- sampling ----------------------------------------------------------------

    def sample(self, counters: Counters) -> list[UsageDelta]:
        """Account one reading; returns the deltas (possibly none) it produced."""
        wall, mono = self._clock.wall(), self._clock.monotonic()
        trusted = self._clock.wall_trusted()
        cur = counters.with_boot_id(self._boot_id)
        prev, prev_wall, prev_mono = self._prev, self._prev_wall, self._prev_mono
        self._prev, self._prev_wall, self._prev_mono = cur, wall, mono
        if prev is None:
            LOGGER.info("first reading %s taken as baseline", cur)
            return []
        by_mono = prev_mono is not None and prev.boot_id == cur.boot_id
        if by_mono:
            elapsed = mono - prev_mono  # type: ignore[operator]
            limit = int(self._max_rate_bps / 8 * max(elapsed, MIN_PLAUSIBILITY_WINDOW_S))
        elif trusted and prev_wall > 0:
            elapsed = wall - prev_wall
            limit = int(self._max_rate_bps / 8 * max(elapsed, MIN_PLAUSIBILITY_WINDOW_S))
        else:  # resumed from another process with an untrusted clock: how long is unknown
            elapsed, limit = 0.0, 1 << 64
        out = self._release_held(wall, mono) if trusted else []
        moved = self._moved(prev, cur, limit)
        if moved is None or moved == (0, 0):
            return out
        rx, tx = moved
        if self._sim is None:
            self.unattributed_bytes += rx + tx
            LOGGER.warning("%d rx + %d tx bytes moved with no active SIM; not billed", rx, tx)
            return out
        if not trusted:
            self._hold(prev, prev_wall, mono - max(0.0, elapsed), mono, rx, tx)
            return out
        # The interval ends now; its start comes from the monotonic clock when it can, so
        # an NTP step or an RTC set while we waited does not stretch it over other days.
        return out + self._split(self._sim, self._region(), wall - elapsed if by_mono else prev_wall, wall, rx, tx)

    def _region(self) -> str:
        assert self._sim is not None
        return self._serving_mcc or self._sim.mcc

    def _hold(self, prev: Counters, prev_wall: float, start: float, end: float, rx: int, tx: int) -> None:
        assert self._sim is not None
        if not self._waiting_for_time:  # pragma: no mutate (log once)
            LOGGER.warning("wall clock not trusted yet: holding usage (dated when it is)")
            self._waiting_for_time = True  # pragma: no mutate (log once)
        if self._held_base is None:
            self._held_base = (prev, prev_wall)
        region = self._region()
        last = self._held[-1] if self._held else None
        if last is not None and last.sim == self._sim and last.mcc == region:
            last.end_mono, last.rx, last.tx = end, last.rx + rx, last.tx + tx
        else:
            self._held.append(_Held(self._sim, region, start, end, rx, tx))

    def _release_held(self, wall: float, mono: float) -> list[UsageDelta]:
        """Date what was held (wall now - monotonic age) now that the clock is trusted."""
        if not self._held:
            self._held_base, self._waiting_for_time = None, False
            return []
        out: list[UsageDelta] = []
        for h in self._held:
            out += self._split(h.sim, h.mcc, wall - (mono - h.start_mono), wall - (mono - h.end_mono), h.rx, h.tx)
        LOGGER.info("wall clock trusted: %d held bytes dated and billed to %d SIM(s)",
                    sum(h.rx + h.tx for h in self._held), len({h.sim for h in self._held}))
        self._held, self._held_base, self._waiting_for_time = [], None, False
        return out

    def _moved(self, prev: Counters, cur: Counters, limit: int) -> tuple[int, int] | None:
        """IP-level (rx, tx) since ``prev``, or None if the reading is rejected."""
        reason = self._reset_reason(prev, cur)
        if reason is None:
            steps = [_advance(getattr(prev, f), getattr(cur, f), limit) for f in _FIELDS]
            if any(step is None for step in steps):
                reason = "counters went backwards"
        if reason is not None:
            LOGGER.info("counter reset (%s): %s -> %s; counting from zero", reason, prev, cur)
            steps = [getattr(cur, f) for f in _FIELDS]
        rx_b, tx_b, rx_p, tx_p = (int(s or 0) for s in steps)
        if rx_b > limit or tx_b > limit:
            self.rejected += 1
            LOGGER.warning("implausible jump rejected: %s -> %s (rx %d, tx %d bytes, limit %d)",
                           prev, cur, rx_b, tx_b, limit)
            return None
        return self._ip_bytes(rx_b, rx_p, "rx"), self._ip_bytes(tx_b, tx_p, "tx")

    @staticmethod
    def _reset_reason(prev: Counters, cur: Counters) -> str | None:
        if prev.boot_id != cur.boot_id:
            return "reboot"
        if prev.ifindex != cur.ifindex:
            return "interface re-created"
        return None

    def _ip_bytes(self, link_bytes: int, packets: int, direction: str) -> int:
        """The framing rule; a count that contradicts it is clamped to 0 (never invented)."""
        ip = link_bytes - self._header * packets
        if ip < 0:
            LOGGER.warning("%s: %d bytes in %d packets is less than %d header bytes each; counting 0",
                           direction, link_bytes, packets, self._header)
            return 0
        return ip

    def _split(self, sim: ActiveSim, mcc: str, t0: float, t1: float, rx: int, tx: int) -> list[UsageDelta]:
        """Cut at local midnights, bytes in proportion to time (microsecond weights)."""
        segments = calendar.split_days(t0, t1, self._tz)
        weights = [round((s.end - s.start) * 1_000_000) for s in segments]
        out: list[UsageDelta] = []
        for seg, srx, stx in zip(segments, calendar.apportion(rx, weights),
                                 calendar.apportion(tx, weights)):
            if srx == 0 and stx == 0:
                continue
            out.append(UsageDelta(
                iccid=sim.iccid, imsi=sim.imsi, mcc=mcc,
                day=seg.day.isoformat(), month=calendar.month_of(seg.day),
                tz=calendar.tz_offset(seg.start, self._tz),
                start=seg.start, end=seg.end, rx_bytes=srx, tx_bytes=stx,
            ))
        return out


_FIELDS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")

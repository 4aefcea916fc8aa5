"""The numbers the low-speed classifier judges by, each with where it comes from.

Apart from the rules (``classifier.py``) and the evidence they read (``evidence.py``) so
that tuning a threshold on the trace library (tests/bench/bench_detection.py,
docs/health.md) is an edit here and nowhere else.
"""

from __future__ import annotations

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
BUSY_REFERENCE_KBPS = 128
"""The rate BUSY_MIN_KBPS is sized for: a SIM that can be throttled lower (a flat-rate
plan policed to 32 kbps, agent/plans/predict.py) gets the same share of its lowest rate
(evidence.busy_floor: 10 kbps at 32)."""

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

BLACKHOLE_SECONDS = 5.0
"""Registered, the bearer up (the router's own echoes leave: uplink bytes), and for this
long not one byte back and every echo lost: a black hole (issue 23). Longer than the three
seconds that name a link with no bearer, since here the radio looks healthy and a
handover can stall the user plane for a second or two; one echo a second is all it costs."""

SILENCE_PROBE_SECONDS = 2
"""Seconds of "sent, nothing received" after which the reflector echo runs every second
even on a link with no flow to judge: two, so one lost ACK does not start it, and so a
black hole is asked about within seconds of the first unanswered packet."""

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

"""Plans (issue 22): seconds the LAN user spends throttled per cap event, the device's
allowance error at the moment it acts, and the agent's own bytes per day per plan.

What runs: the agent's own plan and swap code, unchanged: the allowance tracker with its
ledger on disk (agent/plans/tracker.py, ledger.py), fed one meter delta a second as
agent/core/metering.py feeds it, and the swap control's inputs and the policy's decision
(agent/core/swap_control.py, policy.py), against the lab carrier's reading of each plan
(board/virtual/network/plancarrier.py, which shares no code with the agent), on simulated
time. Per cap event a SIM of the plan arrives with part of one rule used in other routers
(the assignment's ``remaining`` says how much, exactly as the cloud would: the bytes are
also the carrier's), and a bursty user (bulk bursts of 2-40 Mbit/s, lulls between) uses
it until the device swaps or the carrier cuts it.

Not the lab: tests/lab/test_lab_plans.py runs each plan once on the virtual board (the real
meter, modem, carrier and cloud); this runs many cap events per plan rule to give a
distribution (median, p95). What the model leaves out, and where its figure is measured:
the meter's header estimate (the lab's 100 MB test: 116 bytes), the swap's break itself
(bench_swap.py: ~6 s, no bytes flow), and a throttle no rule explains, which the device
only meets by detection (bench_detection.py's delay, then the break).

    python tests/bench/bench_plans.py [--quick] [--events N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.clock import JST, FakeClock
from agent.core import policy as pol
from agent.core.swap_control import SwapControl
from agent.plans import predict
from agent.plans.rules import parse_plan
from agent.plans.tracker import Allowance
from agent.usage import calendar
from agent.usage.own import IDLE_OWN_BYTES_PER_DAY, check_budget_for
from board.virtual.cloud.plans import MB, PLANS, plan
from board.virtual.network.plancarrier import CarrierMeter
from board.virtual.network.plancarrier import rules_of as carrier_rules
from tests.bench.figures import pct

CASES = [("monthly-100GB", "month", 0.0), ("5GB-month", "72h", 0.0), ("5GB-month", "month", 80.0),
         ("10GB-month", "72h", 0.0), ("10GB-month", "month", 80.0), ("100MB-3days", "72h", 0.0),
         ("daypass-3GB", "day", 0.0)]
"""(plan, the rule whose cap the event approaches, hours ago the others' bytes were used):
every throttle rule of domain.md's table; a month rule beside a 72-hour one is reached with
bytes used more than 72 hours ago, so the month rule alone is near."""
LEFT_MB = (30, 300)
"""What the rule has left when the SIM arrives, uniform in this range (MB): from a SIM the
cloud would barely hand out to one with minutes of bulk load left."""
MAX_LEFT_SHARE = 0.9
"""...and at most 90 % of the rule's cap (the 100 MB / 3 days rule: 30-90 MB)."""
BURST_MBIT = (2.0, 40.0)
"""A burst's rate: from a video call to the lab cell's bulk download (50 Mbit/s capacity)."""
BURST_MEAN_S, LULL_MEAN_S = 45.0, 15.0
"""Exponential burst and lull lengths: a renter's browsing and downloads."""
LULL_KBPS = 8.0
"""A lull's trickle (keep-alives, a messenger): under the policy's 64 kbps lull mark."""
CHECK_S = 2.0
"""The lab carrier's cap check (board/virtual/lab/daemon.py CAP_CHECK_SECONDS)."""
LEAD_S = 1
"""Seconds the old SIM still carries after the policy decides: its tick and the swap's
request and stage (~0.1 s measured in the lab) before the switch stops it."""
MAX_EVENT_S = 3 * 3600
"""An event that neither swaps nor is cut in three simulated hours ends (a day pass reset
at midnight first, say): counted apart."""
ICCID = "8981100000009900019"


@dataclass
class Event:
    throttled_s: float
    """Seconds the user spent on the SIM while the carrier held it (0: the device swapped
    first). A day pass used up within ``predict.RESET_SOON_S`` of midnight is kept on
    purpose until the carrier lifts it: those seconds count here."""
    error: int | None
    """The device's count of the rule minus the carrier's exact count, when it decided
    (never positive: the device counts a reading behind)."""
    cut: bool
    reset_first: bool


def others_of(name: str, rule_id: str, left: int) -> dict[str, int]:
    """Bytes used elsewhere per rule so that ``rule_id`` has ``left`` bytes left."""
    rules = {r.id: r for r in carrier_rules(plan(name))[0]}
    return {rule_id: int(rules[rule_id].cap or 0) - left}


def run_event(rng: random.Random, name: str, rule_id: str, ago_h: float, tmp: Path) -> Event:
    start = datetime(2026, 1, 12, tzinfo=JST).timestamp() + rng.uniform(0, 14 * 86400)
    clock = FakeClock(epoch=start, trusted=True)
    tracker = Allowance(tmp, clock, "+09:00")
    body = plan(name)
    cap_rule = next(r for r in carrier_rules(body)[0] if r.id == rule_id)
    left = min(rng.randint(*LEFT_MB) * MB, int(int(cap_rule.cap or 0) * MAX_LEFT_SHARE))
    prior = int(cap_rule.cap or 0) - left
    prior_at = start - ago_h * 3600
    meter = CarrierMeter()
    meter.elsewhere[ICCID] = [(prior_at, prior)]
    tz = carrier_rules(body)[2]
    # the cloud's remaining: what each rule has left, its bytes counted as the carrier does
    remaining = {r.id: max(0, int(r.cap) - meter.used(ICCID, r, start, tz))
                 for r in carrier_rules(body)[0] if r.cap is not None}
    facts = {"iccid": ICCID, "assignment_id": f"a-{rng.random()}",
             "plan": {**body, "remaining": remaining, "as_of": start}}
    tracker.on_sim(facts)
    kbps = [0.0]
    # The swap control as the daemon builds it; its inputs are what the policy loop reads
    # every second (SwapControl.run), so the bench calls the same two steps.
    control = SwapControl(lambda: clock, tmp, None, current=lambda: facts,  # type: ignore[arg-type]
                          used_on_current=lambda: 0, traffic_kbps=lambda: kbps[0],
                          rules=lambda: tracker.status(facts))
    carried = 0
    meter.record(ICCID, start, 0, 0)
    burst_left, rate = 0.0, 0.0
    cut_at: float | None = None
    throttled, was_cut = 0.0, False
    t = start
    while t < start + MAX_EVENT_S:
        if burst_left <= 0:
            bursting = rate == 0.0 or rate == LULL_KBPS * 1000
            rate = rng.uniform(*BURST_MBIT) * 1e6 if bursting else LULL_KBPS * 1000
            burst_left = rng.expovariate(1 / (BURST_MEAN_S if bursting else LULL_MEAN_S))
        burst_left -= 1
        nbytes = int(rate / 8)
        t += 1
        clock.advance(1)
        carried += nbytes
        # the meter's delta of the second before (one sample behind the carrier's counter)
        for seg in calendar.split_days(t - 1, t, tz):
            tracker.ledger.add(ICCID, seg.day.isoformat(), seg.start, seg.end, nbytes, 0)
        kbps[0] = rate / 1000
        if int(t - start) % int(CHECK_S) == 0:
            meter.record(ICCID, t, 0, carried)
            held = meter.verdict(ICCID, body, t) is not None
            if cut_at is None and held:
                cut_at, was_cut = t, True
            elif cut_at is not None and not held:  # lifted (a day pass at midnight)
                throttled, cut_at = throttled + (t - cut_at), None
        decision = pol.decide(control.policy, control._inputs(), [], 0.0, "")  # SwapControl.run's step
        if decision.swap:
            # The policy's tick is not the meter's: it decides a fraction of a second after
            # the last reading, and the bytes of that fraction are the carrier's, not yet the
            # device's: the error the device acts with.
            phase = rng.random()
            device = next(s.used for s in tracker.status(facts) if s.rule.id == rule_id)
            meter.record(ICCID, t, 0, carried)
            truth = meter.used(ICCID, cap_rule, t, tz) + int(phase * nbytes)
            switch = t + phase + LEAD_S
            throttled += max(0.0, switch - cut_at) if cut_at is not None else 0.0
            return Event(throttled, device - truth, was_cut, False)
    return Event(throttled + (t - cut_at if cut_at is not None else 0.0), None, was_cut, True)


def own_rows() -> list[tuple[str, float | None, int]]:
    """Per plan: its daily share now (fresh SIM) and the agent's active-check budget for it."""
    now = datetime(2026, 1, 15, 12, tzinfo=JST).timestamp()
    rows = []
    for name in PLANS:
        rules = parse_plan(plan(name))
        with tempfile.TemporaryDirectory() as tmp:
            tracker = Allowance(Path(tmp), FakeClock(epoch=now), "+09:00")
            facts: dict[str, Any] = {"iccid": ICCID, "assignment_id": "a", "plan": plan(name)}
            share = predict.daily_share(rules, tracker.status(facts), now)
        rows.append((name, share, check_budget_for(share)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 events per rule")
    parser.add_argument("--events", type=int, default=None, help="cap events per rule (default 100)")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    n = args.events or (20 if args.quick else 100)
    rng = random.Random(args.seed)
    print(f"  {n} cap events per rule; the agent's tracker and policy vs the lab carrier's rules, simulated time")
    all_throttled: list[float] = []
    for name, rule_id, ago_h in CASES:
        events = []
        for _ in range(n):
            with tempfile.TemporaryDirectory() as tmp:
                events.append(run_event(rng, name, rule_id, ago_h, Path(tmp)))
        acted = [e for e in events if not e.reset_first]
        throttled = [e.throttled_s for e in acted]
        errors = [float(abs(e.error)) for e in acted if e.error is not None]
        all_throttled += throttled
        print(f"  {name + ' / ' + rule_id:<22} throttled s per cap event: median {statistics.median(throttled):5.1f}"
              f"  p95 {pct(throttled, 0.95):5.1f}  max {max(throttled):5.1f}  (carrier cut {sum(e.cut for e in acted)}"
              f" of {len(acted)}; {len(events) - len(acted)} reset first)   allowance error bytes: median "
              f"{statistics.median(errors):9.0f}  p95 {pct(errors, 0.95):9.0f}  (behind)")
    print(f"  every known rule: throttled s per cap event median {statistics.median(all_throttled):.1f}, "
          f"p95 {pct(all_throttled, 0.95):.1f} (goal 0); a rule the device does not know: detection "
          f"(bench_detection.py) then the break (bench_swap.py)")
    print("  own bytes a day per plan (ceiling: the idle traffic measured in the lab + the active-check budget"
          " the agent gives itself; goal < 1 % of the plan's daily share):")
    for name, share, budget in own_rows():
        total = IDLE_OWN_BYTES_PER_DAY + budget
        if share is None:  # no throttle rule, no nominal rate: sized for the smallest plan
            print(f"    {name:<14} daily share    unknown      checks {budget / 1e3:7.1f} kB   "
                  f"idle + checks {total / 1e3:7.1f} kB (1 % of the smallest plan's share)")
            continue
        print(f"    {name:<14} daily share {share / 1e6:10.1f} MB   checks {budget / 1e3:7.1f} kB   "
              f"idle + checks {total / 1e3:7.1f} kB = {100 * total / share:.3f} % of the share")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

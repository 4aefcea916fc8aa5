"""Detection benchmark over the recorded trace library (tests/traces).

    .venv/bin/python tests/bench/bench_detection.py [--quick]

Prints, beside the issue's goals:
- detection delay (first second of throttling -> the throttled event): median, p95, worst,
  with each active check answered as the recorded link would have (tracegen's model of
  the link, ``probe_model``): what a live device with a probe endpoint does;
- the same with no check possible (replay's default: single quiet flows stay ``suspect``);
- false alarms: ``throttled`` in traces without throttling, both ways (goal 0);
- active checks wanted, and the most data they could use (PROBE_BYTES each): the goal is
  none at all where the passive signals agree;
- classifier cost per sample (median/p95/p99 over several runs), for the router's CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.health.classifier import PROBE_BYTES, Classifier
from agent.health.replay import replay
from agent.health.trace import read_trace
from board.virtual.network.tracegen import probe_model

TRACES = Path(__file__).resolve().parents[1] / "traces"
GOAL_MEDIAN_S, GOAL_WORST_S = 10.0, 20.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer timing runs (< 30 s)")
    parser.add_argument("--traces", type=Path, default=TRACES,
                        help="a library directory (e.g. a held-out recording made with tracegen --seed)")
    args = parser.parse_args()
    expected = json.loads((args.traces / "expected.json").read_text())
    traces = {name: read_trace(args.traces / f"{name}.csv") for name in sorted(expected)}
    delays, false_alarms, probes, probe_agree = [], [], 0, 0
    passive_delays, passive_false, suspects = [], [], 0
    print(f"{'trace':28s} {'expected':>9s} {'detected':>9s} {'delay':>6s} {'rate':>6s} probes  states")
    for name, samples in traces.items():
        exp = expected[name]
        res = replay(samples, probe=probe_model(exp))
        passive = replay(samples)
        suspects += len(passive.observations)
        states = [c.state for c in res.changes]
        first = next((c for c in res.changes if c.state == "throttled"), None)
        p_first = next((c for c in passive.changes if c.state == "throttled"), None)
        delay = None
        if exp["throttled"]:
            delay = first.t - exp["throttle_onset_t"] if first else float("inf")
            delays.append(delay)
            passive_delays.append(p_first.t - exp["throttle_onset_t"] if p_first else float("inf"))
        else:
            if first is not None:
                false_alarms.append(name)
            if p_first is not None:
                passive_false.append(name)
        probes += res.probes_requested
        if first is not None and "probe" not in first.evidence:
            probe_agree += res.probes_requested
        print(f"{name:28s} {exp['throttle_rate_kbps'] or '-':>9} "
              f"{(first.rate_kbps if first else '-'):>9} {f'{delay:.0f} s' if delay is not None else '-':>6} "
              f"{(first.mechanism or '' if first else ''):>8} {res.probes_requested:>3}  "
              f"{' > '.join(states)}")
    print()
    print(f"detection delay over {len(delays)} throttled traces, active checks answered as the link "
          f"would: median {statistics.median(delays):.1f} s (goal < {GOAL_MEDIAN_S:.0f}), "
          f"p95 {pct(delays, 95):.1f} s, worst {max(delays):.1f} s (goal < {GOAL_WORST_S:.0f})")
    missed = sum(d == float("inf") for d in passive_delays)
    print(f"  with no check possible: median {statistics.median(passive_delays):.1f} s, worst "
          f"{max(passive_delays):.1f} s ({missed} left suspect: a single quiet flow nothing confirms)")
    print(f"false throttled: {len(false_alarms)} {false_alarms}; with no check possible: "
          f"{len(passive_false)} {passive_false} (goal 0); suspect observations: {suspects}")
    print(f"active checks wanted: {probes} in all, {probe_agree} in traces decided without the probe "
          f"(goal: none where passive signals agree); probing bytes: at most {probes * PROBE_BYTES} "
          f"({PROBE_BYTES} per check)")
    runs = 3 if args.quick else 15
    per_sample_us: list[float] = []
    for _ in range(runs):
        for samples in traces.values():
            clf = Classifier()
            start = time.perf_counter()
            for s in samples:
                clf.feed(s)
            per_sample_us.append((time.perf_counter() - start) / len(samples) * 1e6)
    print(f"classifier cost per sample over {runs} runs x {len(traces)} traces: median "
          f"{statistics.median(per_sample_us):.0f} us, p95 {pct(per_sample_us, 95):.0f} us, "
          f"p99 {pct(per_sample_us, 99):.0f} us (budget: well under the 1 s sampling period)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

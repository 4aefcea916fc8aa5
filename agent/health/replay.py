"""``pocket-agent replay TRACE.csv [--plan-rate KBPS]``: the classifier over a recorded trace.

Prints one JSON object per state change on stdout::

    {"t": 37.0, "state": "throttled", "rate_kbps": 128, "evidence": {...}, "onset_t": 31.0}

and one per observation (a ``suspect`` flat rate nothing confirmed)::

    {"t": 16.0, "observation": "suspect", "rate_kbps": 139, "evidence": {...}}

A trace cannot answer an active check (the link it was recorded on is gone), so when the
classifier wants one, replay answers "unavailable": a single quiet flow at a throttle
rate then stays a ``suspect`` observation, never ``throttled``. The summary on stderr
says how many checks a live device would have made and the most data they could have
used. Tests may pass ``probe``: a model of what the check would have measured on the
recorded link (tracegen knows each phase's capacity), to exercise the confirmed and
refuted paths on real traces.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.errors import AgentError
from agent.health.classifier import PROBE_BYTES, Classifier, Observation, StateChange
from agent.health.sample import Sample
from agent.health.trace import read_trace

LOGGER = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    changes: list[StateChange] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    probes_requested: int = 0

    @property
    def probe_bytes_budgeted(self) -> int:
        """The most the wanted checks could have used (each is capped at PROBE_BYTES)."""
        return self.probes_requested * PROBE_BYTES


ProbeModel = Callable[[float], "float | None"]
"""Trace second -> what an active check would have measured then (kbps), or None."""


def replay(samples: Iterable[Sample], plan_rate_kbps: float | None = None,
           probe: ProbeModel | None = None) -> ReplayResult:
    """Run a fresh classifier over ``samples``; probes are answered by ``probe`` or
    'unavailable'."""
    clf = Classifier(plan_rate_kbps=plan_rate_kbps)
    result = ReplayResult()
    for sample in samples:
        result.changes.extend(clf.feed(sample))
        result.observations.extend(clf.take_observations())
        if clf.wants_probe is not None:
            kbps = probe(sample.t) if probe is not None else None
            clf.probe_result(kbps, 0, "modelled check" if kbps is not None else "replay: no live link")
    result.probes_requested = clf.probes_requested
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", help="health trace CSV (see docs/health.md)")
    parser.add_argument("--plan-rate", type=float, default=None, metavar="KBPS",
                        help="the SIM plan's own throttle rate, if known")


def main(args: argparse.Namespace) -> int:
    try:
        result = replay(read_trace(args.trace), args.plan_rate)
    except AgentError as exc:
        LOGGER.error("cannot replay %s: %s", args.trace, exc)
        return 2
    lines = [c.to_json() for c in result.changes] + [o.to_json() for o in result.observations]
    for line in sorted(lines, key=lambda d: d["t"]):
        print(json.dumps(line, sort_keys=True), flush=True)
    LOGGER.info("%d state changes, %d suspect observations; active checks wanted: %d (at most %d bytes)",
                len(result.changes), len(result.observations), result.probes_requested,
                result.probe_bytes_budgeted)
    return 0

"""``pocket-agent replay TRACE.csv [--plan-rate KBPS]``: the classifier over a recorded trace.

Prints one JSON object per state change on stdout::

    {"t": 37.0, "state": "throttled", "rate_kbps": 128, "evidence": {...}, "onset_t": 31.0}

A trace cannot answer an active check (the link it was recorded on is gone), so when the
classifier wants one, replay answers "unavailable" and the classifier falls back to its
passive verdict with a longer hold; the summary on stderr says how many checks a live
device would have made and the most data they could have used.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.errors import AgentError
from agent.health.classifier import Classifier, StateChange
from agent.health.probe import PROBE_BYTES
from agent.health.sample import Sample
from agent.health.trace import read_trace

LOGGER = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    changes: list[StateChange] = field(default_factory=list)
    probes_requested: int = 0

    @property
    def probe_bytes_budgeted(self) -> int:
        """The most the wanted checks could have used (each is capped at PROBE_BYTES)."""
        return self.probes_requested * PROBE_BYTES


def replay(samples: Iterable[Sample], plan_rate_kbps: float | None = None) -> ReplayResult:
    """Run a fresh classifier over ``samples``; probes are answered 'unavailable'."""
    clf = Classifier(plan_rate_kbps=plan_rate_kbps)
    result = ReplayResult()
    for sample in samples:
        result.changes.extend(clf.feed(sample))
        if clf.wants_probe is not None:
            clf.probe_result(None, 0, "replay: no live link")
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
    for change in result.changes:
        print(json.dumps(change.to_json(), sort_keys=True), flush=True)
    LOGGER.info("%d state changes; active checks wanted: %d (at most %d bytes)",
                len(result.changes), result.probes_requested, result.probe_bytes_budgeted)
    return 0

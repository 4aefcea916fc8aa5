"""The classifier over a recorded trace (``pocket-agent replay``, ``agent/faces/cli/replay.py``).

A trace cannot answer an active check (the link it was recorded on is gone), so when the
classifier wants one, replay answers "unavailable": a single quiet flow at a throttle
rate then stays a ``suspect`` observation, never ``throttled``. ``ReplayResult`` counts
how many checks a live device would have made and the most data they could have used.
Tests may pass ``probe``: a model of what the check would have measured on the recorded
link (tracegen knows each phase's capacity), to exercise the confirmed and refuted paths
on real traces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.health.classifier import Classifier
from agent.health.sample import Sample
from agent.health.thresholds import PROBE_BYTES
from agent.health.verdict import Observation, StateChange

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

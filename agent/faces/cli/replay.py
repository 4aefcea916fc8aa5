"""``pocket-agent replay TRACE.csv [--plan-rate KBPS]``: the classifier over a recorded trace.

Prints one JSON object per state change on stdout::

    {"t": 37.0, "state": "throttled", "rate_kbps": 128, "evidence": {...}, "onset_t": 31.0}

and one per observation (a ``suspect`` flat rate nothing confirmed)::

    {"t": 16.0, "observation": "suspect", "rate_kbps": 139, "evidence": {...}}

The replay itself, and why an active check is answered "unavailable", is
``agent/health/replay.py``; the summary on stderr says how many checks a live device
would have made and the most data they could have used.
"""

from __future__ import annotations

import argparse
import json
import logging

from agent.errors import AgentError
from agent.health.replay import replay
from agent.health.trace import read_trace

LOGGER = logging.getLogger(__name__)


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

"""``pocket-lab events``: what the reference cloud received, in arrival order.

Reads ``<state dir>/events.jsonl`` written by board.virtual.cloud.reference (one JSON object per
line: t, topic, device, kind, body). ``--json`` prints one JSON array for scripts;
otherwise one readable line per event. ``--device`` and ``--kind`` filter.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from board.virtual.cloud.reference import default_dir

LOGGER = logging.getLogger(__name__)


def read_events(state_dir: Path) -> list[dict[str, Any]]:
    """Every recorded event; a torn last line (cloud killed mid-write) is skipped."""
    path = Path(state_dir) / "events.jsonl"
    out: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for n, line in enumerate(lines, 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            LOGGER.warning("%s:%d: unreadable line skipped", path, n)
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None, help="default $POCKET_LAB_DIR/cloud")
    parser.add_argument("--json", action="store_true", help="print one JSON array")
    parser.add_argument("--device", default=None)
    parser.add_argument("--kind", default=None, help="state, usage, health, outage, error, assignment_result, ...")


def main(args: argparse.Namespace) -> int:
    events = read_events(args.state_dir or default_dir())
    events = [e for e in events if (args.device is None or e.get("device") == args.device)
              and (args.kind is None or e.get("kind") == args.kind)]
    if args.json:
        json.dump(events, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    for e in events:
        when = datetime.fromtimestamp(e["t"], UTC).isoformat(timespec="milliseconds")
        print(f"{when} {e['device']:<16} {e['kind']:<18} {json.dumps(e['body'], sort_keys=True)[:160]}")
    return 0

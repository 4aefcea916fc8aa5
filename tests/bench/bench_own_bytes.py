"""The agent's own traffic on an idle router, measured at the lab carrier's counters.

    sudo .venv/bin/python tests/bench/bench_own_bytes.py [--quick] [--scale 40] [--seconds 240] [--windows 4]
    POCKET_LAB_PREFIX=p10 POCKET_LAB_DIR=/run/pocket-lab-p10 ... --running   # a lab you brought up

It brings up its own lab (namespace prefix ``pwob``, ``/run/pocket-lab-ownbytes``: never
the main lab, whose agent it would restart) and tears it down after; ``--running`` uses
the lab named by the environment instead. The agent is restarted with production cadences for everything that costs bytes
(usage reports when there is usage or hourly, MQTT keep-alive 300 s, journal flush 60 s),
each divided by ``--scale`` so a few minutes stand for ``scale`` times as long: every
own-traffic cost of an idle router is per event (a keep-alive, a heartbeat report), so
bytes x scale is what the same span costs at the real cadence. No LAN traffic at all.

Prints the carrier's bytes for the SIM per window (each window = ``seconds/windows``),
as bytes per day: median and p95 over the windows and over the whole run, beside the
issue's goal (< 0.5 MB a day), and the agent's own ledger (reflector, checks, MQTT).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.labrun import lab

GOAL_BYTES_PER_DAY = 500_000
OWN_LAB = {"POCKET_LAB_PREFIX": "pwob", "POCKET_LAB_DIR": "/run/pocket-lab-ownbytes"}
"""The bench's own lab unless --running: restarting the main lab's agent would disturb it."""
LAB_DIR = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
PRODUCTION = {"report_interval_s": 60.0, "flush_interval_s": 60.0, "heartbeat_s": 3600.0, "keepalive_s": 300}
"""The cadences of an unconfigured device (agent/config.py defaults)."""


LabRunner = Callable[..., str]


def scaled_config(text: str, scale: float) -> str:
    """The lab's agent.toml with production cadences divided by ``scale``."""
    values = {k: (max(1, round(v / scale)) if isinstance(v, int) else v / scale) for k, v in PRODUCTION.items()}
    text = re.sub(r"(?m)^(report_interval_s|flush_interval_s|heartbeat_s|keepalive_s) = .*\n", "", text)
    usage = "".join(f"{k} = {values[k]}\n" for k in ("report_interval_s", "flush_interval_s", "heartbeat_s"))
    text = text.replace("[usage]\n", f"[usage]\n{usage}")
    return text.replace("[cloud]\n", f"[cloud]\nkeepalive_s = {values['keepalive_s']}\n")


def carrier_bytes(run_lab: LabRunner, iccid: str) -> int:
    row = json.loads(run_lab("usage", "--json")).get(iccid, {}).get("carrier", {})
    return int(row.get("up", 0)) + int(row.get("down", 0))


def status(lab_dir: Path) -> dict[str, Any]:
    return json.loads((lab_dir / "agent" / "status.json").read_text())  # type: ignore[no-any-return]


def measure(scale: float, seconds: float, windows: int, *, lab_dir: Path = LAB_DIR, run_lab: LabRunner = lab,
            settle: float = 15.0) -> dict[str, Any]:
    """Restart the agent with scaled cadences, let it settle, count the carrier's bytes.
    The carrier's counters are read from outside (the lab's nft counters), never from
    the agent; the wait between readings is the measured span itself."""
    cfg = lab_dir / "agent" / "agent.toml"
    original = cfg.read_text()
    cfg.write_text(scaled_config(original, scale))
    try:
        run_lab("agent", "restart")
        time.sleep(settle)  # boot and connect are not idle cost
        first = status(lab_dir)
        iccid = first["sim"]["iccid"]
        own_start = (first.get("health") or {}).get("own_traffic") or {}
        start = carrier_bytes(run_lab, iccid)
        marks = [start]
        t0 = time.monotonic()
        for i in range(1, windows + 1):
            time.sleep(max(0.0, t0 + i * seconds / windows - time.monotonic()))
            marks.append(carrier_bytes(run_lab, iccid))
        per_day = [(b - a) * 86400 / (seconds / windows * scale) for a, b in itertools.pairwise(marks)]
        total = (marks[-1] - start) * 86400 / (seconds * scale)
        own_end = (status(lab_dir).get("health") or {}).get("own_traffic") or {}
        own_span = {k: v - own_start.get("bytes", {}).get(k, 0) for k, v in own_end.get("bytes", {}).items()}
        return {"iccid": iccid, "per_window_per_day": per_day, "per_day": total, "bytes": marks[-1] - start,
                "own": own_end, "own_span": own_span}
    finally:
        cfg.write_text(original)
        run_lab("agent", "restart")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--running", action="store_true", help="use the lab the environment names")
    parser.add_argument("--quick", action="store_true", help="a shorter span (60 s)")
    parser.add_argument("--scale", type=float, default=40.0, help="cadences divided by this")
    parser.add_argument("--seconds", type=float, default=240.0, help="measured span (wall seconds)")
    parser.add_argument("--windows", type=int, default=4)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("skipped: the lab needs root (namespaces, nftables)")
        return 0
    if args.quick:
        args.seconds = 60.0
    if not args.running:
        os.environ.update(OWN_LAB)  # the children (pocket-lab) take the prefix from here
        lab("down")
        lab("up")
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    try:
        res = measure(args.scale, args.seconds, args.windows, lab_dir=lab_dir)
    finally:
        if not args.running:
            lab("down")
    days = res["per_window_per_day"]
    print(f"idle router, {args.seconds:.0f} s at cadences / {args.scale:g} "
          f"(= {args.seconds * args.scale / 3600:.1f} h), carrier counters for SIM {res['iccid']}:")
    print(f"own bytes per day: whole run {res['per_day'] / 1000:.1f} kB; over {len(days)} windows median "
          f"{statistics.median(days) / 1000:.1f} kB, p95 {pct(days, 95) / 1000:.1f} kB "
          f"(goal < {GOAL_BYTES_PER_DAY / 1000:.0f} kB)")
    own = res["own"] or {}
    print(f"agent's own ledger at the end (today, scaled time, restarts included): {own}")
    print(f"active-check bytes: {own.get('bytes', {}).get('active_check', 0)} on an idle router "
          f"(none wanted); at most {own.get('check_budget')} a day by budget")
    return 0 if res["per_day"] < GOAL_BYTES_PER_DAY else 1


if __name__ == "__main__":
    raise SystemExit(main())

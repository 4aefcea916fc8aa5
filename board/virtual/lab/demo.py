"""``make run``: bring the whole virtual board up and watch the agent close the loop.

It runs ``pocket-lab up``, starts bulk traffic from the LAN host, and prints one short
line a second: the agent's state, its SIM, the signal, what the LAN host receives, and
usage counted by the carrier beside what the cloud ingested. After ``--cap-after``
seconds it uses up the SIM's cap at the carrier (``pocket-lab throttle``); then the
cloud's events come out as sentences: the agent detects the throttle, reports it, the
cloud marks the SIM, the agent swaps (with its phase timings) and traffic is back at full
speed on the new SIM. It runs until Ctrl-C (or ``--seconds``) and takes the lab down.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

TICK_S = 1.0
CAP_AFTER_S = 25.0
"""Long enough to see the router serving at full speed first."""
LAN_NS_IF = ("pw-lan", "eth0")


def lab(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True,
                          capture_output=capture, check=False)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def short(iccid: str | None) -> str:
    return f"...{iccid[-4:]}" if iccid else "-"


def lan_rx_bytes(ns: str, ifname: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{ifname}/statistics/rx_bytes"],
                         text=True, capture_output=True, check=False).stdout
    return int(out.strip() or 0)


def rate_text(kbps: float) -> str:
    return f"{kbps / 1000:6.1f} Mbit/s" if kbps >= 1000 else f"{kbps:6.0f} kbit/s"


def status_line(lab_dir: Path, elapsed: float, kbps: float) -> str:
    """One line that fits an 100-column terminal."""
    status = read_json(lab_dir / "agent" / "status.json") or {}
    sim = (status.get("sim") or {}).get("iccid")
    health = status.get("health") or {}
    radio = health.get("radio") or {}
    usage = json.loads(lab("usage", "--json", capture=True).stdout or "{}").get(sim or "", {})
    carrier = (usage.get("carrier") or {}).get("down", 0) / 1e6
    cloud = (usage.get("cloud") or {}).get("down", 0) / 1e6
    signal_text = (f"RSRP {radio['rsrp_dbm']:.0f} dBm" if radio.get("rsrp_dbm") is not None else "RSRP -")
    return (f"{elapsed:4.0f}s {status.get('state', '?'):8} SIM {short(sim)} {signal_text}  "
            f"LAN {rate_text(kbps)}  {health.get('state', '-'):10} "
            f"carrier {carrier:7.1f} MB  cloud {cloud:7.1f} MB")


def sentence(event: dict[str, Any]) -> str | None:
    """A cloud event in words, or None for the ones a viewer need not see."""
    kind, body = event.get("kind"), event.get("body") or {}
    data = (body.get("body") or {}).get("data") or {}
    at = datetime.fromtimestamp(event.get("t", time.time())).strftime("%H:%M:%S")
    if kind == "health" and data.get("state") == "throttled":
        ev = data.get("evidence") or {}
        why = ", ".join(f"{k} {v}" for k, v in ev.items() if k in ("flows", "loss", "mechanism"))
        return (f"{at} SIM {short(data.get('iccid'))} throttled at {data.get('kbps'):.0f} kbps "
                f"({data.get('mechanism')}{'; ' + why if why else ''}); reported to the cloud")
    if kind == "health":
        return f"{at} link is {data.get('state')} on SIM {short(data.get('iccid'))}"
    if kind == "assign/request":
        return f"{at} the agent asks the cloud for another SIM (reason: {body.get('reason')})"
    if kind == "swap":
        phases = data.get("phases_ms") or {}
        parts = ", ".join(f"{p} {phases[p] / 1000:.1f} s" for p in ("switch", "attach", "data") if p in phases)
        if data.get("ok"):
            return (f"{at} swapped SIM {short(data.get('from_iccid'))} -> {short(data.get('to_iccid'))}: "
                    f"{(data.get('break_ms') or 0) / 1000:.1f} s without data ({parts})")
        return f"{at} swap failed ({data.get('detail')}); {'back on the old SIM' if data.get('rolled_back') else ''}"
    if kind == "outage":
        return f"{at} outage reported: {data.get('cause')} for {data.get('duration_s') or 0:.0f} s"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", "0")) or None,
                        help="stop after this long (default: run until Ctrl-C)")
    parser.add_argument("--cap-after", type=float, default=CAP_AFTER_S,
                        help="seconds before the SIM's cap is used up at the carrier")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make run needs root: the lab builds network namespaces, tc policers and nftables rules.")
        return 1
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    print("bringing the virtual board up (modem, carrier network, broker, cloud, agent)...", flush=True)
    if lab("up").returncode != 0:
        lab("down")
        return 1
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        return watch(lab_dir, args, stop)
    finally:
        lab("traffic", "stop")
        lab("down")


def watch(lab_dir: Path, args: argparse.Namespace, stop: dict[str, bool]) -> int:
    lab("traffic", "start", "--kind", "bulk", "--duration", str(args.seconds or 86400))
    start = time.monotonic()
    capped, seen_events, marked = False, 0, set()
    last_rx, last_t = lan_rx_bytes(*LAN_NS_IF), time.monotonic()
    while not stop["now"] and (args.seconds is None or time.monotonic() - start < args.seconds):
        time.sleep(TICK_S)
        now, rx = time.monotonic(), lan_rx_bytes(*LAN_NS_IF)
        kbps, last_rx, last_t = (rx - last_rx) * 8 / 1000 / max(now - last_t, 1e-3), rx, now
        if not capped and now - start > args.cap_after:
            print(f"--- the SIM's cap is used up at the carrier: {lab('throttle', capture=True).stdout.strip()}")
            capped = True
        events = [json.loads(line) for line in (lab_dir / "cloud" / "events.jsonl").read_text().splitlines()]
        for event in events[seen_events:]:
            text = sentence(event)
            if text:
                print(text, flush=True)
        seen_events = len(events)
        totals = read_json(lab_dir / "cloud" / "totals.json") or {}
        for iccid, sim in totals.items():
            if sim.get("throttled") and iccid not in marked:
                marked.add(iccid)
                print(f"the cloud marked SIM {short(iccid)} throttled: it will never be assigned again")
        print(status_line(lab_dir, now - start, kbps), flush=True)
    print("\nusage per SIM (bytes):")
    print(lab("usage", capture=True).stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

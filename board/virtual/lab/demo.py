"""``make run``: bring the whole virtual board up and watch the agent close the loop.

It runs ``pocket-lab up``, starts bulk traffic from the LAN host, and prints one short
line a second: the agent's state, its SIM, the signal, what the LAN host receives, and
usage counted by the carrier beside what the cloud ingested. After ``--cap-after``
seconds it uses up the SIM's cap at the carrier (``pocket-lab throttle``); then the
cloud's events come out as sentences: the agent detects the throttle, reports it, the
cloud marks the SIM, the agent swaps (with its phase timings) and traffic is back at full
speed on the new SIM. It runs until Ctrl-C (or ``--seconds``) and takes the lab down.

The view is total: the status file and the cloud's events are read as untrusted JSON
(a fresh agent has no SIM, a swap resets the health block, a failed agent writes only
its error), so every field may be absent, ``None`` or of another type, and the line
shows ``-`` instead of falling over (tests/unit/test_demo_view.py generates such shapes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from board.virtual.lab.ctl import BOARD_ENV
from board.virtual.network.carrier import CELL_CAPACITY_KBIT, LabLayout

TICK_S = 1.0
CAP_AFTER_S = 25.0
"""Long enough to see the router serving at full speed first."""
FULL_SPEED_KBPS = CELL_CAPACITY_KBIT / 10
""""Back at full speed" once the LAN host receives a tenth of the cell's capacity: ten times
the fastest throttle rate in the contracts (384 kbps), so a throttled SIM never passes it,
and low enough that a busy 2-core machine running the lab still reaches it."""
LINE_WIDTH = 100
"""The status line fits a 100-column terminal, whatever the fields hold."""
NO_VALUE = "-"


def layout() -> LabLayout:
    """The lab's names, from the same ``$POCKET_LAB_PREFIX`` the lab itself reads."""
    return LabLayout(prefix=os.environ.get("POCKET_LAB_PREFIX", "pw"))


def lab(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True,
                          capture_output=capture, check=False)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def pick(obj: Any, *path: str, kind: type | tuple[type, ...] = object) -> Any:
    """``obj[path[0]][path[1]]...`` if every step is a dict and the leaf is of ``kind``, else None.

    ``bool`` is an ``int`` to Python; a number asked for never comes back as a boolean.
    """
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if obj is None or not isinstance(obj, kind):
        return None
    if isinstance(obj, bool) and kind in ((int, float), int, float):
        return None
    return obj


def number(obj: Any, *path: str) -> float | None:
    value = pick(obj, *path, kind=(int, float))
    return float(value) if value is not None and not math.isnan(value) else None


def text(obj: Any, *path: str, width: int = 12) -> str:
    """A field as printable text of at most ``width`` characters (control characters dropped)."""
    value = pick(obj, *path, kind=(str, int, float))
    if value is None or isinstance(value, bool):
        return NO_VALUE
    shown = "".join(ch for ch in str(value) if ch.isprintable())
    return (shown[: width - 1] + "~" if len(shown) > width else shown) or NO_VALUE


def short(iccid: Any) -> str:
    """The last four digits: enough to tell SIMs apart on screen without showing the ICCID."""
    digits = "".join(ch for ch in iccid if ch.isprintable()) if isinstance(iccid, str) else ""
    return f"...{digits[-4:]}" if digits else NO_VALUE


def lan_rx_bytes(ns: str, ifname: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{ifname}/statistics/rx_bytes"],
                         text=True, capture_output=True, check=False).stdout
    return int(out.strip() or 0)


def rate_text(kbps: float) -> str:
    kbps = min(max(kbps, 0.0), 9_999_999.0)  # a counter reset between two reads is not a rate
    return f"{kbps / 1000:6.1f} Mbit/s" if kbps >= 1000 else f"{kbps:6.0f} kbit/s"


def render_status(status: Any, usage: Any, elapsed: float, kbps: float) -> str:
    """One line from a status file and ``pocket-lab usage --json``, whatever they hold."""
    iccid = pick(status, "sim", "iccid", kind=str)
    row = pick(usage, iccid, kind=dict) if iccid else None
    rsrp = number(status, "health", "radio", "rsrp_dbm")
    carrier = (number(row, "carrier", "down") or 0.0) / 1e6
    cloud = (number(row, "cloud", "down") or 0.0) / 1e6
    signal_text = f"{rsrp:4.0f}" if rsrp is not None and abs(rsrp) < 1000 else f"{NO_VALUE:>4}"
    line = (f"{min(elapsed, 9999):4.0f}s {text(status, 'state', width=8):8} SIM {short(iccid):7} "
            f"RSRP {signal_text} LAN {rate_text(kbps)} {text(status, 'health', 'state', width=9):9} "
            f"carrier {min(carrier, 99999.9):7.1f} MB cloud {min(cloud, 99999.9):7.1f} MB")
    return line[:LINE_WIDTH]


def status_line(lab_dir: Path, elapsed: float, kbps: float) -> str:
    """The line for this second: the agent's status file beside the lab's usage counts."""
    status = read_json(lab_dir / "agent" / "status.json")
    try:
        usage = json.loads(lab("usage", "--json", capture=True).stdout or "{}")
    except ValueError:
        usage = None
    return render_status(status, usage, elapsed, kbps)


def sentence(event: Any) -> str | None:
    """A cloud event in words, or None for the ones a viewer need not see."""
    kind = pick(event, "kind", kind=str)
    body = pick(event, "body", kind=dict) or {}
    data = pick(body, "body", "data", kind=dict) or {}
    t = number(event, "t")
    try:
        at = datetime.fromtimestamp(t if t is not None else time.time()).strftime("%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        at = NO_VALUE
    if kind == "health" and data.get("state") == "throttled":
        ev = pick(data, "evidence", kind=dict) or {}
        why = ", ".join(f"{k} {text(ev, k)}" for k in ("flows", "loss", "mechanism") if k in ev)
        kbps = number(data, "kbps")
        rate = f"{kbps:.0f} kbps" if kbps is not None else "a low rate"
        return (f"{at} SIM {short(data.get('iccid'))} throttled at {rate} "
                f"({text(data, 'mechanism', width=20)}{'; ' + why if why else ''}); reported to the cloud")
    if kind == "health":
        return f"{at} link is {text(data, 'state')} on SIM {short(data.get('iccid'))}"
    if kind == "assign/request":
        return f"{at} the agent asks the cloud for another SIM (reason: {text(body, 'reason', width=20)})"
    if kind == "swap":
        phases = pick(data, "phases_ms", kind=dict) or {}
        parts = ", ".join(f"{p} {(number(phases, p) or 0) / 1000:.1f} s" for p in ("switch", "attach", "data")
                          if number(phases, p) is not None)
        if data.get("ok") is True:
            return (f"{at} swapped SIM {short(data.get('from_iccid'))} -> {short(data.get('to_iccid'))}: "
                    f"{(number(data, 'break_ms') or 0) / 1000:.1f} s without data ({parts})")
        back = "; back on the old SIM" if data.get("rolled_back") is True else ""
        return f"{at} swap failed ({text(data, 'detail', width=40)}){back}"
    if kind == "outage":
        return (f"{at} outage reported: {text(data, 'cause', width=20)} "
                f"for {number(data, 'duration_s') or 0:.0f} s")
    return None


class EventTail:
    """The cloud's events file, read a complete line at a time as it grows.

    The reference cloud appends while we read: a line without its newline yet is left for
    the next read, and a line that is not JSON is passed over, so the view never falls on
    a half-written event.
    """

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def new(self) -> list[Any]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        out = []
        for line in complete.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", "0")) or None,
                        help="stop after this long (default: run until Ctrl-C)")
    parser.add_argument("--cap-after", type=float, default=float(os.environ.get("DEMO_CAP_AFTER", CAP_AFTER_S)),
                        help="seconds before the SIM's cap is used up at the carrier")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("make run needs root: the lab builds network namespaces, tc policers and nftables rules.")
        return 1
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    board = os.environ.get(BOARD_ENV) or "virtual"  # BOARD=remote-sim make run: the agent is the SIM
    print(f"bringing the virtual board up ({board}: modem, carrier network, broker, cloud, agent)...", flush=True)
    up = lab("up", "--board", board, capture=True)
    print(up.stdout.strip(), flush=True)
    if up.returncode != 0:
        print(up.stderr.strip(), file=sys.stderr)
        lab("down", capture=True)
        return 1
    page = pick(read_json(lab_dir / "lab.json"), "page", "url", kind=str)
    if page:  # issue 25: the renter's view, from the LAN host's namespace
        print(f"the renter's status page: {page} from the LAN namespace {layout().lan} "
              f"(pocket-lab page [--lang ja] [--json])", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        return watch(lab_dir, args, stop)
    finally:
        lab("traffic", "stop", capture=True)
        print(lab("down", capture=True).stdout.strip())


def watch(lab_dir: Path, args: argparse.Namespace, stop: dict[str, bool]) -> int:
    lan = (layout().lan, layout().lan_host_if)
    started = lab("traffic", "start", "--kind", "bulk", "--duration", str(args.seconds or 86400), capture=True)
    print(started.stdout.strip())
    start = time.monotonic()
    capped, swapped_to, marked = False, None, set()
    events = EventTail(lab_dir / "cloud" / "events.jsonl")
    last_rx, last_t = lan_rx_bytes(*lan), time.monotonic()
    while not stop["now"] and (args.seconds is None or time.monotonic() - start < args.seconds):
        time.sleep(TICK_S)
        now, rx = time.monotonic(), lan_rx_bytes(*lan)
        kbps, last_rx, last_t = (rx - last_rx) * 8 / 1000 / max(now - last_t, 1e-3), rx, now
        if not capped and now - start > args.cap_after:
            print(f"--- the SIM's cap is used up at the carrier: {lab('throttle', capture=True).stdout.strip()}")
            capped = True
        for event in events.new():
            said = sentence(event)
            if said:
                print(said, flush=True)
            if pick(event, "kind", kind=str) == "swap" and pick(event, "body", "body", "data", "ok", kind=bool):
                swapped_to = pick(event, "body", "body", "data", "to_iccid", kind=str) or NO_VALUE
        totals = read_json(lab_dir / "cloud" / "totals.json")
        for iccid, sim in (totals.items() if isinstance(totals, dict) else ()):
            if pick(sim, "throttled") and iccid not in marked:
                marked.add(iccid)
                print(f"the cloud marked SIM {short(iccid)} throttled: it will never be assigned again")
        print(status_line(lab_dir, now - start, kbps), flush=True)
        if swapped_to is not None and kbps >= FULL_SPEED_KBPS:
            print(f"traffic is back at full speed on SIM {short(swapped_to)}: {rate_text(kbps).strip()}", flush=True)
            swapped_to = None
    print(usage_table(lab("usage", "--json", capture=True).stdout))
    return 0


def usage_table(usage_json: str) -> str:
    """The SIMs that carried traffic, carrier beside cloud, in bytes (the pool's idle SIMs left out)."""
    try:
        usage = json.loads(usage_json or "{}")
    except ValueError:
        usage = {}
    rows = [f"{'SIM':21} {'carrier up':>12} {'carrier down':>13} {'cloud up':>12} {'cloud down':>12}"]
    for iccid, row in (usage.items() if isinstance(usage, dict) else ()):
        figures = [number(row, side, way) or 0 for side in ("carrier", "cloud") for way in ("up", "down")]
        if any(figures):
            rows.append(f"{iccid:21} {figures[0]:12.0f} {figures[1]:13.0f} {figures[2]:12.0f} {figures[3]:12.0f}")
    return "\nusage per SIM (bytes; the cloud's figure catches up at the next report):\n" + "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())

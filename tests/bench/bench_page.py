"""Benchmark: the renter's status page (issue 25). Figures, never a pass or fail.

Three parts:

1. **weight**: the page (English and Japanese) and the JSON for a full day of the plot
   (288 five-minute buckets), in bytes (goal: page < 30 kB);
2. **the loop under abuse**: the page server alone on loopback, in this process's loop,
   with a 50 ms ticker measuring how late the loop wakes (median, p95, max): quiet, then
   while a child process opens 200 connections at once again and again, holds 20 slow
   clients (one header byte a second) and sends oversize heads (goal: p95 lateness
   changes by less than 5 ms);
3. **the real daemon in a lab of its own** (root): page and JSON round trips from the LAN
   host (median, p95), idle and under the lab's bulk traffic through the router; the
   agent's VmRSS with the page on (after it served) and off (``[page] enabled = false``,
   the agent restarted), median over ``--runs`` (goal: under 2 MB more).

Run: .venv/bin/python tests/bench/bench_page.py [--quick] [--no-lab]
Lab: $POCKET_LAB_PREFIX / $POCKET_LAB_DIR (default pwpg, /run/pocket-lab-pagebench).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.core.page_settings import PageSettings
from agent.faces.page import facts, render
from agent.faces.page.server import JSON_PATH, PageServer
from tests.bench import figures
from tests.bench.figures import pct
from tests.console.rig import RENTER

GOAL_PAGE_BYTES = 30_000
GOAL_RSS_KB = 2048
GOAL_LATE_MS = 5.0
TICK_S = 0.05
"""The ticker wakes 20 times a second: each wake-up is one chance to see the loop held."""


def line(name: str, values: list[float], unit: str = "ms") -> str:
    return figures.line(name, values, unit, width=44)


# ---- 1. weight --------------------------------------------------------------------------
def full_day() -> dict[str, Any]:
    r = json.loads(json.dumps(RENTER))
    r["throughput"]["today_kbps"] = [float(12345.6 + 997 * (i % 37)) for i in range(288)]
    r["swap"]["planned"] = {"reason": "command", "in_s": 300.0, "at_lull": False}
    return r


def weight() -> None:
    print("page weight, a full day's plot (288 points), a notice and a last swap (goal: page < 30 kB)")
    r = full_day()
    for lang in ("en", "ja"):
        doc = facts.document(r, lang, "Acme Mobile", "0120-000-000")
        page = len(render.page(doc).encode())
        body = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
        print(f"  {lang}: page {page:6d} bytes ({'within' if page < GOAL_PAGE_BYTES else 'OVER'} the goal), "
              f"JSON {body:6d} bytes, favicon {len(render.FAVICON)} bytes")


IMPORT_PROBE = """
import importlib, json, sys
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1])
renter = json.loads(sys.argv[1])
for name in sys.argv[2:]:
    importlib.import_module(name)
before = rss()
from agent.faces.page import facts, render, server
render.page(facts.document(renter, "ja"))
print(json.dumps([before, rss()]))
"""


def import_cost(runs: int) -> None:
    """What the page's code adds to a serving daemon's memory, in a fresh interpreter each
    run: VmRSS after every other serving module, then after the page's (one page drawn)."""
    from tests.test_serving_imports import SERVING_MODULES

    others = [m for m in SERVING_MODULES if "page" not in m]
    added = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE, json.dumps(full_day()), *others],
                             capture_output=True, text=True,
                             check=True, cwd=REPO).stdout
        before, after = json.loads(out)
        added.append(after - before)
    print(f"  page's modules imported into a serving set, fresh process: +{statistics.median(added):.0f} kB"
          f" VmRSS (median of {runs}: {sorted(added)} kB)")


# ---- 2. the loop under abuse ------------------------------------------------------------------
ABUSER = """
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
counts = {"rounds": 0, "answers": 0}
def slow():
    while time.monotonic() < end:
        s = socket.create_connection(("127.0.0.1", port))
        try:
            for ch in b"GET / HTTP/1.1\\r\\nX-Slow: " + b"a" * 100:
                s.send(bytes([ch])); time.sleep(1.0)
                if time.monotonic() > end: break
        except OSError:
            pass
        s.close()
for _ in range(20):
    threading.Thread(target=slow, daemon=True).start()
while time.monotonic() < end:
    socks = []
    for _ in range(200):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            pass
    for i, s in enumerate(socks):
        try:
            s.sendall(b"GET / HTTP/1.1\\r\\n" + (b"X: " + b"a" * 20000 if i % 10 == 0 else b"") + b"\\r\\n\\r\\n")
        except OSError:
            pass
    for s in socks:
        try:
            s.settimeout(2)
            if s.recv(12).startswith(b"HTTP/1.1 200"):
                counts["answers"] += 1
        except OSError:
            pass
        s.close()
    counts["rounds"] += 1
print(counts["rounds"], counts["answers"])
"""


async def lateness(seconds: float) -> list[float]:
    return await figures.lateness(seconds, TICK_S)


async def abuse(seconds: float) -> None:
    async def fetch() -> dict[str, Any]:
        return full_day()

    settings = PageSettings(enabled=True, interface=ipaddress.IPv4Interface("127.0.0.1/8"), port=0, device="")
    server = PageServer(settings, fetch)
    await server.start()
    try:
        quiet = await lateness(seconds)
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", ABUSER, str(server.port), str(seconds),
                                                     stdout=subprocess.PIPE)
        loud = await lateness(seconds)
        out = (await child.communicate())[0].decode().split()
    finally:
        await server.stop()
    print(f"page server's loop, ticker every {TICK_S * 1000:.0f} ms, {seconds:.0f} s each "
          f"(goal: p95 change < {GOAL_LATE_MS:.0f} ms)")
    print(line("lateness, quiet", quiet))
    print(line("lateness, 200 at once + 20 slow + oversize", loud))
    print(f"  abuser: {out[0]} rounds of 200 connections, {out[1]} answered 200; server counts {server.counts}")
    change = pct(loud, 0.95) - pct(quiet, 0.95)
    print(f"  p95 change: {change:+.2f} ms -> {'within' if change < GOAL_LATE_MS else 'OVER'} the goal")


# ---- 3. the real daemon -------------------------------------------------------------------
def lab_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("POCKET_LAB_PREFIX", "pwpg")
    env.setdefault("POCKET_LAB_DIR", "/run/pocket-lab-pagebench")
    return env


def pocket_lab(*args: str, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], env=lab_env(), capture_output=True,
                          check=False, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"pocket-lab {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc.stdout


TIMER = """
import http.client, json, sys, time
host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
out = []
for _ in range(n):
    t = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", path)
    r = c.getresponse(); r.read(); c.close()
    out.append((time.perf_counter() - t) * 1000)
    time.sleep(0.25)  # under the page's per-client rate (5/s)
print(json.dumps(out))
"""


def round_trips(status: dict[str, Any], path: str, n: int) -> list[float]:
    host = status["page"]["url"].split("/")[2]
    port = int(host.split(":")[1]) if ":" in host else 80
    proc = subprocess.run(["ip", "netns", "exec", status["namespaces"]["lan"], sys.executable, "-c", TIMER,
                           host.split(":")[0], str(port), path, str(n)], capture_output=True, text=True,
                          timeout=n * 20 + 30, check=True)
    return list(json.loads(proc.stdout))


def agent_rss_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss(settle_s: float) -> int:
    """The agent's VmRSS: the median of one reading a second over the last third of ``settle_s``."""
    status = json.loads(pocket_lab("status", "--json"))
    pid = status["agent"]["pid"]
    time.sleep(settle_s * 2 / 3)
    readings = []
    for _ in range(max(3, int(settle_s / 3))):
        readings.append(agent_rss_kb(pid))
        time.sleep(1)
    return int(statistics.median(readings))


def set_page(enabled: bool) -> None:
    config = Path(lab_env()["POCKET_LAB_DIR"]) / "agent" / "agent.toml"
    text = config.read_text().split("\n[page]\n")[0]
    config.write_text(text if enabled else text.rstrip("\n") + "\n\n[page]\nenabled = false\n")
    pocket_lab("agent", "restart")


def lab_part(runs: int, n: int, settle_s: float) -> None:
    if os.geteuid() != 0:
        print("the real daemon: skipped (needs root for the lab's namespaces)")
        return
    pocket_lab("down")
    pocket_lab("up", timeout=300)
    try:
        status = json.loads(pocket_lab("status", "--json"))
        print(f"the lab's daemon, from the LAN host ({status['namespaces']['lan']}) to {status['page']['url']}, "
              f"{n} requests each, 4 a second")
        for label, traffic in (("idle", False), ("under LAN bulk traffic", True)):
            if traffic:
                pocket_lab("traffic", "start", "--kind", "bulk", "--duration", "600")
                time.sleep(3)
            try:
                print(line(f"page, {label}", round_trips(status, "/", n)))
                print(line(f"JSON, {label}", round_trips(status, JSON_PATH, n)))
            finally:
                if traffic:
                    pocket_lab("traffic", "stop")
        on, off = [], []
        for _ in range(runs):
            round_trips(status, "/", 20)  # the page on has served before it is weighed
            on.append(settled_rss(settle_s))
            set_page(False)
            off.append(settled_rss(settle_s))
            set_page(True)
        diff = statistics.median(on) - statistics.median(off)
        print(f"agent VmRSS, page on (after serving) {statistics.median(on) / 1024:.1f} MB {on}, "
              f"off {statistics.median(off) / 1024:.1f} MB {off} (kB, {runs} runs, {settle_s:.0f} s settle)")
        print(f"  page costs {diff / 1024:+.2f} MB -> {'within' if diff < GOAL_RSS_KB else 'OVER'} the 2 MB goal")
    finally:
        pocket_lab("down")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-lab", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    weight()
    import_cost(3 if args.quick else 7)
    asyncio.run(abuse(5.0 if args.quick else 15.0))
    if not args.no_lab:
        lab_part(1 if args.quick else args.runs, 20 if args.quick else 100, 15.0 if args.quick else 30.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

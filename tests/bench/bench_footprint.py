"""Benchmark: the serving agent's resident memory and idle CPU, beside the package size.

Three parts:

1. where the memory goes: a fresh interpreter's VmRSS after importing, cumulatively,
   the standard library the agent needs, each third-party library, and the agent itself
   (each figure is a new process; median over runs);
2. the real daemon, serving: a private virtual board (``pocket-lab up`` under its own
   namespace prefix, root only) runs the agent on the virtual modem with the real cloud;
   VmRSS is read from ``/proc/PID/status`` once a second and CPU from ``/proc/PID/stat``
   over 10 s windows for the measuring time (60 s; 20 s with --quick), with no user
   traffic: that is idle serving (the sampler, the reporter and the link-health monitor
   run, as on a router at night);
3. the packages: the .deb's Installed-Size and the .ipk's size (packaging/build.py).

Goals (issue 14): RSS < 35 MB while serving on x86_64, idle CPU < 0.5 % of one core.

Run: .venv/bin/python tests/bench/bench_footprint.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOAL_RSS_MB = 35.0
GOAL_CPU_PCT = 0.5
CPU_WINDOW_S = 10.0
"""CPU is read per window: the sampler runs every second, the reporter every minute."""
LAB_PREFIX = os.environ.get("POCKET_LAB_PREFIX", "pfp")
LAB_DIR = os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab-footprint")
CLK_TCK = os.sysconf("SC_CLK_TCK")

STAGES = [
    ("interpreter", ""),
    ("+ stdlib (asyncio, ssl, json, logging, tomllib)", "import asyncio, ssl, json, logging, tomllib, uuid"),
    ("+ pyserial", "import serial"),
    ("+ paho-mqtt", "import paho.mqtt.client"),
    ("+ cryptography", ("import cryptography.hazmat.primitives.asymmetric.x25519, "
                        "cryptography.hazmat.primitives.asymmetric.ed25519, "
                        "cryptography.hazmat.primitives.ciphers.aead")),
    ("+ the agent (supervisor, health)", "import agent.faces.cli.run, agent.core.supervisor, agent.core.health"),
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


BYTECODE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""As installed: the packages byte-compile the code (Debian's and OpenWrt's postinst), so
nothing is compiled at start-up; compiling a module keeps its compiler memory (about
2 MB for the agent) and would inflate every figure."""


def compile_tree() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", "agent", "board"], cwd=REPO, env=BYTECODE_ENV,
                   check=True, stdout=subprocess.DEVNULL)


def rss_after(code: str) -> float:
    probe = f"{code}\nimport re\nprint(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env=BYTECODE_ENV)
    return int(out.stdout.strip()) / 1024


def breakdown(runs: int) -> None:
    print(f"1. resident memory after importing (MB, median of {runs} fresh processes)")
    code, previous = "", 0.0
    for label, stage in STAGES:
        code = f"{code}\n{stage}" if stage else code
        figure = statistics.median(rss_after(code) for _ in range(runs))
        print(f"   {label:<52} {figure:6.1f}  ({figure - previous:+.1f})")
        previous = figure


def status(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|Threads|RssAnon|RssFile):\s+(\d+)", text,
                                                  re.MULTILINE)}


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**BYTECODE_ENV, "POCKET_LAB_PREFIX": LAB_PREFIX, "POCKET_LAB_DIR": LAB_DIR}
    return subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def serving(seconds: float) -> None:
    print(f"\n2. the daemon serving on the virtual board, idle ({seconds:.0f} s; lab {LAB_PREFIX})")
    if os.geteuid() != 0:
        print("   skipped: the virtual board needs root (network namespaces)")
        return
    up = lab("up", "--json")
    try:
        if up.returncode != 0:
            print(f"   pocket-lab up failed: {up.stderr.strip()[-500:]}")
            return
        pid = int(json.loads(up.stdout)["agent"]["pid"])
        time.sleep(2.0)  # let start-up's last allocations settle before measuring
        rss: list[float] = []
        cpu: list[float] = []
        start = time.monotonic()
        window_t, window_ticks = start, cpu_ticks(pid)
        while time.monotonic() - start < seconds:
            time.sleep(1.0)
            rss.append(status(pid)["VmRSS"] / 1024)
            now = time.monotonic()
            if now - window_t >= CPU_WINDOW_S:
                ticks = cpu_ticks(pid)
                cpu.append(100.0 * (ticks - window_ticks) / CLK_TCK / (now - window_t))
                window_t, window_ticks = now, ticks
        last = status(pid)
        print(f"   RSS      median {statistics.median(rss):5.1f} MB  p95 {pct(rss, 0.95):5.1f} MB  "
              f"peak (VmHWM) {last['VmHWM'] / 1024:5.1f} MB   goal < {GOAL_RSS_MB:.0f} MB")
        print(f"            anonymous {last['RssAnon'] / 1024:.1f} MB, file-backed {last['RssFile'] / 1024:.1f} MB,"
              f" {last['Threads']} threads")
        if cpu:
            print(f"   CPU      median {statistics.median(cpu):5.2f} %   p95 {pct(cpu, 0.95):5.2f} %"
                  f"   ({len(cpu)} windows of {CPU_WINDOW_S:.0f} s)   goal < {GOAL_CPU_PCT} %")
    finally:
        lab("down")


def package_sizes() -> None:
    print("\n3. packages")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, str(REPO / "packaging/build.py"), "--out", tmp],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"   build failed: {done.stderr.strip()[-300:]}")
            return
        deb = next(Path(tmp).glob("*.deb"))
        ipk = next(Path(tmp).glob("*.ipk"))
        size = subprocess.run(["dpkg-deb", "--field", str(deb), "Installed-Size"], capture_output=True,
                              text=True, check=False).stdout.strip()
        print(f"   .deb {deb.stat().st_size / 1024:.0f} KiB, installed {size} KiB (code, unit, profiles;"
              " Python and the four libraries come from the distribution)")
        print(f"   .ipk {ipk.stat().st_size / 1024:.0f} KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per import stage, 20 s of serving")
    parser.add_argument("--seconds", type=float, default=None, help="measuring time while serving")
    args = parser.parse_args()
    compile_tree()
    breakdown(3 if args.quick else 5)
    serving(args.seconds or (20.0 if args.quick else 60.0))
    package_sizes()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

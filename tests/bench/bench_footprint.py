"""Benchmark: the serving agent's resident memory and idle CPU, beside the package size.

Four parts (docs/footprint.md says what each figure means and how to redo it by hand):

1. where the memory goes: a fresh interpreter's VmRSS after importing, cumulatively, the
   standard library the agent needs, the agent's own netlink modules, each third-party
   library as the agent imports it, and the agent's serving modules, then (for reference,
   not in a serving daemon) what renewal, pyroute2's ``IPRoute`` (which agent/net/rtnl.py
   replaced) and pyroute2's whole package would add; and the floor the issue names, a bare
   Python with asyncio, ssl and ``import pyroute2``. Each figure is a new process: median
   and p95 over runs. On this interpreter (PyPI's versions in the venv) and, where this
   machine is Debian 12, on Debian's own packages (python3 with python3-cryptography,
   and python3-pyroute2, python3-paho-mqtt, python3-serial unpacked from their .debs
   under build/debian-pins by ``apt-get download``; nothing is installed);
2. the real daemon, serving: a private virtual board (``pocket-lab up`` under its own
   namespace prefix, root only) runs the agent on the virtual modem with the real cloud.
   VmRSS (``/proc/PID/status``) and Pss (``smaps_rollup``) are read once a second for
   ``--seconds`` after each of ``--runs`` starts, with no user traffic (idle serving: the
   sampler, the reporter and the link-health monitor run, as on a router at night); then
   after each of ``--swaps`` commanded swaps; then for ``--traffic`` seconds of the lab's
   web load from the LAN host (users: the conntrack dump carries their flows). CPU from
   ``/proc/PID/stat`` over 10 s windows, idle;
3. the same daemon on Debian 12's packages (the lab's agent stopped, the same agent run
   by Debian's python3 in the router's namespace with the same configuration);
4. the packages: the .deb's Installed-Size and the .ipk's size (packaging/build.py).

Goals (issue 19 item 6): serving RSS < 40 MB on Debian's packages, flat over swaps;
idle CPU < 0.5 % of one core (issue 14).

Run: .venv/bin/python tests/bench/bench_footprint.py [--quick] [--no-debian]
Lab: $POCKET_LAB_PREFIX / $POCKET_LAB_DIR (default pfp, /run/pocket-lab-footprint).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.test_serving_imports import SERVING_MODULES  # the one list of what serving loads

GOAL_RSS_MB = 40.0
"""Issue 19 item 6: serving RSS under 40 MB on Debian's packages."""
GOAL_CPU_PCT = 0.5
CPU_WINDOW_S = 10.0
"""CPU is read per window: the sampler runs every second, the reporter every minute."""
SWAP_TIMEOUT_S = 60.0
"""A commanded swap reports its result to the cloud within ~10 s (modelled latencies)."""
SETTLE_S = 2.0
"""After a start or a swap, before sampling: its last allocations settle."""
LAB_PREFIX = os.environ.get("POCKET_LAB_PREFIX", "pfp")
LAB_DIR = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab-footprint"))
CLK_TCK = os.sysconf("SC_CLK_TCK")

DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_PINS = REPO / "build" / "debian-pins"
DEBIAN_PACKAGES = ("python3-pyroute2", "python3-paho-mqtt", "python3-serial")
"""Pure-Python packages unpacked from their .debs; python3-cryptography (compiled against
Debian's OpenSSL) must be installed on the machine, as the agent's package depends on it."""

SEALING = ("import cryptography.hazmat.primitives.asymmetric.x25519, cryptography.hazmat.primitives.asymmetric.ed25519,"
           " cryptography.hazmat.primitives.ciphers.aead, cryptography.hazmat.primitives.kdf.hkdf")
STAGES = [
    ("interpreter", ""),
    ("+ asyncio, ssl", "import asyncio, ssl"),
    ("+ the agent's own netlink (agent/net)", "import agent.net.link, agent.net.conntrack"),
    ("+ paho-mqtt", "import paho.mqtt.client"),
    ("+ cryptography (sealing's primitives)", SEALING),
    ("+ pyserial", "import serial"),
    ("+ the agent's serving modules", "import " + ", ".join(SERVING_MODULES)),
    ("  (renewal's x509, not while serving)", "import agent.cloud.certs"),
    ("  (pyroute2's IPRoute, which agent/net replaced)", "import pyroute2.iproute"),
    ("  (pyroute2's whole __init__, for reference)", "import pyroute2; pyroute2.IPRoute"),
]
FLOOR = ("floor: interpreter + asyncio, ssl, import pyroute2", "import asyncio, ssl, pyroute2")
"""The issue's floor: a bare Python with asyncio, ssl and pyroute2 (its whole package)."""

BYTECODE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""As installed: the packages byte-compile the code (Debian's and OpenWrt's postinst), so
nothing is compiled at start-up; compiling a module keeps its compiler memory (about
2 MB for the agent) and would inflate every figure."""


class Interpreter:
    """A python and the PYTHONPATH that selects its libraries."""

    def __init__(self, name: str, python: str, path: list[str], flags: tuple[str, ...] = ()):
        self.name, self.python, self.path, self.flags = name, python, path, flags

    def argv(self, *args: str) -> list[str]:
        return [self.python, *self.flags, *args]

    def env(self, **extra: str) -> dict[str, str]:
        return {**BYTECODE_ENV, "PYTHONPATH": os.pathsep.join([*self.path, str(REPO)]), **extra}


VENV = Interpreter("this interpreter (PyPI's versions)", sys.executable, [])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def compile_tree(python: Interpreter, *trees: Path) -> None:
    subprocess.run(python.argv("-m", "compileall", "-q", *map(str, trees)), cwd=REPO, env=python.env(),
                   check=True, stdout=subprocess.DEVNULL)


def debian_interpreter() -> Interpreter | str:
    """Debian 12's python3 with Debian's packages, or why not (a reason to print)."""
    if not DEBIAN_PYTHON.exists() or not Path("/etc/debian_version").read_text().startswith("12"):
        return "not a Debian 12 machine"
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "python3-cryptography"], capture_output=True,
                               text=True, check=False).stdout
    if "installed" not in installed:
        return "python3-cryptography is not installed (apt-get install python3-cryptography)"
    site = DEBIAN_PINS / "usr" / "lib" / "python3" / "dist-packages"
    if not all((site / name).is_dir() for name in ("pyroute2", "paho", "serial")):
        debs = DEBIAN_PINS / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=debs, capture_output=True, text=True,
                             check=False)
        if got.returncode != 0:
            return f"apt-get download failed: {got.stderr.strip()[-300:]}"
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(DEBIAN_PINS)], check=True)
    python = Interpreter("Debian 12's packages", str(DEBIAN_PYTHON), [str(site)], flags=("-s",))
    compile_tree(python, site)  # as Debian's postinst (py3compile) does
    return python


def versions(python: Interpreter) -> str:
    code = ("import sys, importlib.metadata as m; print(sys.version.split()[0], *(f'{d} {m.version(d)}' for d in "
            "('cryptography', 'paho-mqtt', 'pyroute2', 'pyserial')), sep=', ')")
    return subprocess.run(python.argv("-c", code), cwd=REPO, env=python.env(), capture_output=True, text=True,
                          check=False).stdout.strip()


def rss_after(python: Interpreter, code: str) -> float:
    probe = f"{code}\nimport re\nprint(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    out = subprocess.run(python.argv("-c", probe), cwd=REPO, capture_output=True, text=True, check=True,
                         env=python.env())
    return int(out.stdout.strip()) / 1024


def breakdown(python: Interpreter, runs: int) -> dict[str, float]:
    print(f"\n1. resident memory after importing, {python.name}: {versions(python)}")
    print(f"   (MB, fresh process each: median and p95 of {runs})")
    figures: dict[str, float] = {}
    code, previous = "", 0.0
    for label, stage in STAGES:
        code = f"{code}\n{stage}" if stage else code
        samples = [rss_after(python, code) for _ in range(runs)]
        figure = statistics.median(samples)
        print(f"   {label:<52} {figure:6.1f} {pct(samples, 0.95):6.1f}  ({figure - previous:+.1f})")
        figures[label] = previous = figure
    samples = [rss_after(python, FLOOR[1]) for _ in range(runs)]
    figures["floor"] = statistics.median(samples)
    print(f"   {FLOOR[0]:<52} {figures['floor']:6.1f} {pct(samples, 0.95):6.1f}")
    return figures


# ---- the serving daemon ----------------------------------------------------------------
def status(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    out = {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|Threads|RssAnon|RssFile):\s+(\d+)", text, re.MULTILINE)}
    out["Pss"] = int(re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.MULTILINE)[1])
    return out


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = VENV.env(POCKET_LAB_PREFIX=LAB_PREFIX, POCKET_LAB_DIR=str(LAB_DIR))  # the lab's children import REPO
    return subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def lab_agent_pid() -> int:
    return int((LAB_DIR / "pids" / "agent.pid").read_text())


def agent_state() -> str | None:
    try:
        return json.loads((LAB_DIR / "agent" / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None


def swaps_done() -> int:
    events = (LAB_DIR / "cloud" / "events.jsonl").read_text().splitlines()
    return sum(1 for line in events if json.loads(line).get("kind") == "swap")


def sample(pid: int, seconds: float, rss: list[float], pss: list[float], cpu: list[float] | None = None) -> None:
    """VmRSS and Pss once a second for ``seconds``; CPU per window when asked."""
    start = time.monotonic()
    window_t, window_ticks = start, cpu_ticks(pid)
    while time.monotonic() - start < seconds:
        time.sleep(1.0)
        now_status = status(pid)
        rss.append(now_status["VmRSS"] / 1024)
        pss.append(now_status["Pss"] / 1024)
        now = time.monotonic()
        if cpu is not None and now - window_t >= CPU_WINDOW_S:
            ticks = cpu_ticks(pid)
            cpu.append(100.0 * (ticks - window_ticks) / CLK_TCK / (now - window_t))
            window_t, window_ticks = now, ticks


def swap_once() -> bool:
    before = swaps_done()
    if lab("swap").returncode != 0:
        return False
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    while time.monotonic() < deadline:
        if swaps_done() > before:
            return True
        time.sleep(0.2)
    return False


def line(label: str, values: list[float], floor: float | None) -> None:
    floor_text = f"   floor {floor:.1f}" if floor else ""
    print(f"   {label:<28} median {statistics.median(values):5.1f}  p95 {pct(values, 0.95):5.1f}  "
          f"max {max(values):5.1f} MB   goal < {GOAL_RSS_MB:.0f}{floor_text}")


def serve_and_measure(start: Callable[[], int], runs: int, seconds: float, swaps: int, floor: float | None,
                      with_cpu: bool, traffic_s: float) -> None:
    """``runs`` starts sampled for ``seconds`` each, then ``swaps`` swaps on the last one,
    then ``traffic_s`` seconds of the lab's web load from the LAN host."""
    rss: list[float] = []
    pss: list[float] = []
    cpu: list[float] = []
    per_run = []
    pid = 0
    for _ in range(runs):
        pid = start()
        time.sleep(SETTLE_S)
        run_rss: list[float] = []
        sample(pid, seconds, run_rss, pss, cpu if with_cpu else None)
        per_run.append(statistics.median(run_rss))
        rss += run_rss
    line(f"RSS idle ({runs} starts)", rss, floor)
    print(f"   {'':<28} per start: {', '.join(f'{v:.1f}' for v in per_run)} MB;"
          f" Pss median {statistics.median(pss):.1f} MB")
    last = status(pid)
    print(f"   {'':<28} anonymous {last['RssAnon'] / 1024:.1f} MB, file-backed {last['RssFile'] / 1024:.1f} MB,"
          f" {last['Threads']} threads")
    if cpu:
        print(f"   CPU idle   median {statistics.median(cpu):5.2f} %   p95 {pct(cpu, 0.95):5.2f} %"
              f"   ({len(cpu)} windows of {CPU_WINDOW_S:.0f} s)   goal < {GOAL_CPU_PCT} %")
    after: list[float] = []
    done = 0
    for _ in range(swaps):
        done += swap_once()
        time.sleep(SETTLE_S)
        after.append(status(pid)["VmRSS"] / 1024)
    if after:
        line(f"RSS after each of {swaps} swaps", after, floor)
        print(f"   {'':<28} {done} of {swaps} swaps done; first {after[0]:.1f}, last {after[-1]:.1f} MB")
    if traffic_s > 0:  # LAN users: the conntrack dump then carries every flow once a second
        lab("traffic", "start", "--kind", "web", "--duration", str(int(traffic_s + 60)))
        loaded: list[float] = []
        try:
            sample(pid, traffic_s, loaded, [])
        finally:
            lab("traffic", "stop")
        line(f"RSS under web traffic ({traffic_s:.0f} s)", loaded, floor)
        print(f"   {'':<28} first {loaded[0]:.1f}, last {loaded[-1]:.1f} MB,"
              f" peak (VmHWM) {status(pid)['VmHWM'] / 1024:.1f} MB")


def serving(runs: int, seconds: float, swaps: int, traffic_s: float, floors: dict[str, float | None],
            debian: Interpreter | None, venv: bool = True) -> None:
    print(f"\n2. the daemon serving on the virtual board (lab {LAB_PREFIX}), {VENV.name}")
    if os.geteuid() != 0:
        print("   skipped: the virtual board needs root (network namespaces)")
        return
    lab("down")
    up = lab("up", "--json")
    try:
        if up.returncode != 0:
            print(f"   pocket-lab up failed: {up.stderr.strip()[-500:]}")
            return
        starts = iter(range(runs))

        def restart_lab_agent() -> int:
            if next(starts):  # the first start is up's own
                lab("agent", "restart")
            return lab_agent_pid()

        if venv:
            serve_and_measure(restart_lab_agent, runs, seconds, swaps, floors.get("venv"), True, traffic_s)
        else:
            print("   skipped (--debian-only)")
        if debian is not None:
            print(f"\n3. the same daemon on {debian.name} ({versions(debian)})")
            lab("agent", "stop")
            with DebianAgent(debian) as agent:
                serve_and_measure(agent.start, runs, seconds, swaps, floors.get("debian"), False, traffic_s)
    finally:
        lab("down")


class DebianAgent:
    """The lab's agent configuration run by Debian's python3 in the router's namespace."""

    def __init__(self, python: Interpreter):
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.stop()
        (LAB_DIR / "agent" / "status.json").unlink(missing_ok=True)
        env = self.python.env(POCKET_AGENT_CLOCK_OFFSET_FILE=str(LAB_DIR / "agent" / "clock_offset.json"))
        log = open(LAB_DIR / "logs" / "agent-debian.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(["ip", "netns", "exec", f"{LAB_PREFIX}-dev",
                                      *self.python.argv("-m", "agent", "run", "--config",
                                                        str(LAB_DIR / "agent" / "agent.toml"))],
                                     env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 120
        while agent_state() != "serving":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the agent on Debian's packages did not serve; see {LAB_DIR}/logs/agent-debian.log")
            time.sleep(0.2)
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def package_sizes() -> None:
    print("\n4. packages")
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
    parser.add_argument("--quick", action="store_true",
                        help="3 runs per import stage, 2 starts of 10 s, 2 swaps, 30 s of traffic")
    parser.add_argument("--runs", type=int, default=None, help="agent starts measured (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="measuring time after each start (default 30)")
    parser.add_argument("--swaps", type=int, default=None, help="swaps measured after the last start (default 5)")
    parser.add_argument("--traffic", type=float, default=None, help="seconds of LAN web load measured (default 120)")
    parser.add_argument("--no-debian", action="store_true", help="skip the figures on Debian 12's packages")
    parser.add_argument("--imports-only", action="store_true", help="part 1 only (no lab, no packages)")
    parser.add_argument("--debian-only", action="store_true",
                        help="serve on Debian 12's packages only (part 3; the goal's figures), not the venv's")
    args = parser.parse_args()
    quick = args.quick
    runs = args.runs or (2 if quick else 3)
    seconds = args.seconds or (10.0 if quick else 30.0)
    swaps = args.swaps if args.swaps is not None else (2 if quick else 5)
    traffic_s = args.traffic if args.traffic is not None else (30.0 if quick else 120.0)
    compile_tree(VENV, REPO / "agent", REPO / "board")
    floors: dict[str, float | None] = {"venv": breakdown(VENV, 3 if quick else 7)["floor"]}
    debian: Interpreter | None = None
    if not args.no_debian:
        found = debian_interpreter()
        if isinstance(found, str):
            print(f"\n   Debian 12's packages: skipped ({found})")
        else:
            debian = found
            floors["debian"] = breakdown(debian, 3 if quick else 7)["floor"]
    if args.imports_only:
        return 0
    serving(runs, seconds, swaps, traffic_s, floors, debian, venv=not args.debian_only)
    if shutil.which("dpkg-deb"):
        package_sizes()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

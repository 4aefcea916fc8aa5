"""Benchmark: the technician console's cost to the daemon, and its round trip.

Two parts, each printed as median and p95 beside the goal "no change in the daemon's loop
beyond 5 ms p95":

1. **Loop jitter, with and without a console flooding garbage.** One event loop runs what
   the daemon runs for the console (the real control server and console server on a pty
   cable, as in the daemon with ``[console] in_daemon = true``) plus a sample loop that
   wakes every ``TICK_S`` and records how late it woke. Phase "quiet": nobody types.
   Phase "flood": another process writes random bytes into the technician's end as fast
   as the pty takes them. The figure is the p95 lateness difference.
2. **``status`` round trip against the real daemon under full load** (root only; skip
   with ``--no-lab``): the lab's agent serving bulk traffic, ``status`` typed into the lab's
   console pty to the last byte of the answer (the next prompt). The lab is one of our
   own (``POCKET_LAB_PREFIX``/``POCKET_LAB_DIR``, default ``pwb``/``/run/pocket-lab-bench``),
   brought up and down here; the daemon's loop is probed meanwhile through its control
   socket, with and without the flood.

Run: .venv/bin/python tests/bench/bench_console.py [--quick] [--no-lab]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import figures
from tests.bench.figures import line, pct

GOAL_MS = 5.0
TICK_S = 0.05
"""The bench's sample loop ticks 20 times a second (the daemon's ticks once a second):
more wake-ups, more chances to catch a delay, same per-wake-up measure."""


FLOODER = """
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NOCTTY)
rng = random.Random(7)
end = time.monotonic() + float(sys.argv[2])
block = bytes(rng.getrandbits(8) for _ in range(4096))
sent = 0
while time.monotonic() < end:
    sent += os.write(fd, block)
print(sent)
"""


async def lateness(seconds: float) -> list[float]:
    return await figures.lateness(seconds, TICK_S)


def jitter(seconds: float) -> tuple[list[float], list[float], int]:
    from tests.console.rig import ConsoleRig

    with tempfile.TemporaryDirectory() as tmp:
        rig = ConsoleRig(Path(tmp))
        rig.start()
        try:
            quiet = rig.call(lateness(seconds), timeout=seconds + 30)
            flooder = subprocess.Popen([sys.executable, "-c", FLOODER, str(rig.cables[0].technician_path),
                                        str(seconds + 2)], stdout=subprocess.PIPE, text=True)
            flood = rig.call(lateness(seconds), timeout=seconds + 30)
            sent = int(flooder.communicate(timeout=30)[0] or 0)
        finally:
            rig.close()
    return quiet, flood, sent


# ---- against the lab's real daemon ---------------------------------------------------
def lab_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("POCKET_LAB_PREFIX", "pwb")
    env.setdefault("POCKET_LAB_DIR", "/run/pocket-lab-bench")
    return env


def pocket_lab(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], env=lab_env(), capture_output=True, check=False,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"pocket-lab {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc.stdout


async def probe_loop(sock: str, seconds: float) -> list[float]:
    """The daemon's loop responsiveness: a tiny control op every TICK_S, its round trip."""
    from agent.core.control import ControlClient

    client = ControlClient(sock)
    rtts: list[float] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            t0 = time.perf_counter()
            await client.request("device")
            rtts.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(TICK_S)
    finally:
        client.close()
    return rtts


def lab_bench(runs: int, seconds: float) -> None:
    import json

    from tests.console.rig import Terminal

    if os.geteuid() != 0:
        print("  (skipped: the lab needs root)")
        return
    env = lab_env()
    print(f"  bringing up a lab under {env['POCKET_LAB_DIR']} (prefix {env['POCKET_LAB_PREFIX']})", flush=True)
    pocket_lab("up")
    try:
        status = json.loads(pocket_lab("status", "--json"))
        pocket_lab("traffic", "start", "--kind", "bulk", "--duration", str(runs * 2 + seconds * 2 + 60))
        term = Terminal(status["console"]["pty"])
        prompt = r"rtr-000001 \w+[>#] $"
        term.send("\r")
        term.expect(prompt)
        rtts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            term.send("status\r")
            term.expect(r"cloud .*\r\n" + prompt)
            rtts.append((time.perf_counter() - t0) * 1000)
        term.close()
        print(line("status round trip (bulk traffic)", rtts))
        sock = status["console"]["control_socket"]
        quiet = asyncio.run(probe_loop(sock, seconds))
        flooder = subprocess.Popen([sys.executable, "-c", FLOODER, status["console"]["pty"], str(seconds + 2)],
                                   stdout=subprocess.PIPE, text=True)
        flood = asyncio.run(probe_loop(sock, seconds))
        flooder.communicate(timeout=30)
        print(line("daemon loop probe, quiet", quiet))
        print(line("daemon loop probe, console flooded", flood))
        print(f"  p95 change under flood: {pct(flood, 0.95) - pct(quiet, 0.95):+.2f} ms (goal: within {GOAL_MS:.0f} ms)")
    finally:
        subprocess.run([sys.executable, "-m", "board.virtual.lab", "traffic", "stop"], env=env, capture_output=True,
                       check=False)
        pocket_lab("down")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-lab", dest="lab", action="store_false",
                        help="skip the part against the lab's real daemon (it runs by default as root)")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 20.0
    print(f"loop jitter, sample loop every {TICK_S * 1000:.0f} ms, {seconds:.0f} s per phase (goal: p95 change "
          f"under {GOAL_MS:.0f} ms)")
    quiet, flood, sent = jitter(seconds)
    print(line("quiet console", quiet))
    print(line("console flooded with garbage", flood))
    print(f"  flood offered {sent / seconds / 1000:.0f} kB/s; the console reads at most 11.5 kB/s (115200 8N1)")
    change = pct(flood, 0.95) - pct(quiet, 0.95)
    print(f"  p95 change: {change:+.2f} ms -> {'within' if change <= GOAL_MS else 'OVER'} the {GOAL_MS:.0f} ms goal")
    if args.lab:
        print("\nstatus round trip and the daemon's loop, real daemon in the lab")
        lab_bench(10 if args.quick else 50, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``make test``: the suite in parts that run at once, each with its own log and lab.

Why parts: nine tenths of the suite's wall time is spent waiting on lab clocks (a
2-minute stream, twenty swaps, a soak), not on the CPU. The lab already takes a
namespace prefix and a directory, so each lab group gets a lab of its own and the groups
wait side by side. Groups are chosen so that the tests that load the machine's CPU
(bulk traffic at the cell's 50 Mbit/s, twenty SIGKILLs) are in one group and never run
together (issue 21).

Each part writes ``build/test-<part>.log``; when all have ended the logs are printed in
order with each part's wall time and exit status, and the run fails if any part failed
or ran no test. Parts are named on the command line to run a subset
(``python tests/parts.py unit lab-a``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script (make test): tests.depreach from this checkout

from tests.depreach import reaches_pinned

BUILD = REPO / "build"
PYTEST = [sys.executable, "-m", "pytest", "-q", "--durations=15"]


@dataclass(frozen=True)
class Part:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


LAB_TIME_SCALE = "0.2"
"""The virtual modem's clock in the test labs (``pocket-lab up --time-scale``): every modelled
latency x 0.2, so a swap's ~6 modelled seconds (switch 3 s, attach 2 s, data 0.8 s) take
1.2 s. No lab test measures modem time (their bounds are ten times the modelled time or
more, and benchmarks bring their own lab up at 1.0); twenty back-to-back swaps and eight
killed ones were three minutes each of waiting on it (issue 21). Not faster: the lab's
carrier and the agent's own timers (the data check, the cloud round trip) do not scale,
and below about 0.05 the modem's events would race the agent's reactions on a loaded
machine (board/virtual/lab/ctl.py MIN_TIME_SCALE)."""


def lab_env(tag: str) -> dict[str, str]:
    """A lab of the part's own: namespaces ``pwt<tag>-*``, directory ``/run/pocket-lab-t<tag>``,
    the modem on the test labs' clock."""
    return {"POCKET_LAB_PREFIX": f"pwt{tag}", "POCKET_LAB_TEST_DIR": f"/run/pocket-lab-t{tag}",
            "POCKET_LAB_TIME_SCALE": LAB_TIME_SCALE}


LAB_HEAVY = ["tests/lab/test_lab_swap.py", "tests/lab/test_lab_usage.py"]
"""Bulk traffic at the cell's 50 Mbit/s with swaps and SIGKILLs under it: the lab tests that
load the CPU, kept in one group so that no two of them run at once. Their exactness bounds
are 0 by construction now (docs/testing.md), so sharing the CPU would not change a byte, but
two bulk loads at once on 2 cores stretch the twenty SIGKILLs past their time bound (tried:
split into two parts beside the others, 301 s against 238 s alone)."""
LAB_PLANS = ["tests/lab/test_lab_plans.py"]
"""Plans on lab time (issue 22): the lab brought up again with every plan of the table, its
clock advanced across 72 hours and month starts; about 8 minutes, in a part of its own since
the plan tests grew to every plan of the table (with health and the page in one part it was
the critical path: 981 s). Its bulk loads are short (the last megabytes before a cap), so
they rarely meet ``lab-heavy``'s."""
LAB_DEVICE = ["tests/lab/test_lab_update.py", "tests/lab/test_lab_remote_sim.py"]
"""The agent updating itself (issue 26: releases installed, committed, rolled back) and the
remote-SIM board (issue 24, whose module brings the lab up again on that board, so it goes
last: pytest runs the files in the order given)."""
LAB_FAULTS = ["tests/lab/test_lab_faults.py"]
"""Every fault kind, the restart loop and the short soak: mostly waiting on heal clocks."""
LAB_LIGHT = ["tests/lab/test_lab_own_traffic.py", "tests/lab/test_lab_console.py", "tests/lab/test_lab_sms.py",
             "tests/lab/test_lab_service.py"]
"""Lab tests with no bulk load (an idle router, a 128 kbps stream, the console's cable, SMS,
sd_notify): about four minutes of waiting on clocks, in a lab of their own beside the
others since a run of all of them in one part was the critical path (704 s)."""
LAB_CARRIERS = ["tests/lab/test_lab_carriers.py"]
"""Escaping a dead carrier (issue 23): a lab with two carriers of its own, seven tests of
about a minute each (6.7 minutes measured at modem time 1), nearly all of it waiting on the
escape bound, attaches and swaps, web traffic at most. Last in ``lab-light``: its module
brings its own lab up and gives the part's lab back."""
LAB_OTHER = [str(p.relative_to(REPO)) for p in sorted((REPO / "tests" / "lab").glob("test_*.py"))
             if str(p.relative_to(REPO)) not in LAB_HEAVY + LAB_FAULTS + LAB_PLANS + LAB_LIGHT + LAB_DEVICE + LAB_CARRIERS]
"""Every other lab test file: health, the status page, and any new module until it is placed."""

OLDEST_PYTHON = str(REPO / ".venv-oldest" / "bin" / "python")
"""The venv with the oldest dependency versions the packages declare (make oldest-setup)."""
OLDEST_UNIT = [str(p.relative_to(REPO)) for p in sorted((REPO / "tests" / "unit").glob("test_*.py"))
               if reaches_pinned(p)]
"""The unit tests that can reach cryptography, paho-mqtt, pyserial or pyroute2 (tests/depreach.py):
a unit test of pure logic (journal, classifier, policy, pacing, parsers) runs the same code on
both venvs, so the oldest run leaves it to part ``rest`` (about half the unit files and most
of their CPU: property tests of the journal and the classifier)."""
OLDEST_TESTS = [*OLDEST_UNIT, "tests/cloud", "tests/provision", "tests/cli", "tests/test_imports.py",
                "tests/integration/test_netlink.py", "tests/integration/test_tracegen.py",
                "tests/packaging/test_oldest_deps.py"]
"""Every test of certificates, provisioning, renewal, sealing, the cloud link and netlink,
every module imported for real, and the check that the venv holds the pins (issue 28)."""
OLDEST_ENV = {"OLDEST_DEPS": "packaging/oldest-deps.txt", "POCKET_TRACEGEN_PREFIX": "pwto-"}
"""The trace recorder's namespaces get their own prefix, so this run and the main one's
test_tracegen.py never share one."""
PAHO_161_WARNING = "ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning"
"""paho 1.6.1's tls_set uses ssl.PROTOCOL_TLS (deprecated since Python 3.10): its warning,
once per client, is paho's and would bury any other."""

PARTS = [
    # Longest first (AT_ONCE of them start at once; each later one takes the first free slot).
    Part("rest", [*PYTEST, "--ignore=tests/lab", "--ignore=tests/system", "tests"]),
    Part("lab-heavy", [*PYTEST, *LAB_HEAVY], lab_env("a")),
    Part("lab-plans", [*PYTEST, *LAB_PLANS], lab_env("e")),
    Part("lab-faults", [*PYTEST, *LAB_FAULTS], lab_env("b")),
    # The agent's tests on the oldest dependencies (issue 28); make oldest-setup holds the venv.
    Part("oldest", [OLDEST_PYTHON, "-m", "pytest", "-q", "--durations=10", "-p", "no:cacheprovider",
                    "-W", PAHO_161_WARNING, *OLDEST_TESTS], OLDEST_ENV),
    Part("lab-carriers", [*PYTEST, *LAB_CARRIERS], lab_env("g")),
    # The package under real systemd on its own lab (prefix pwsy, docs/system-test.md);
    # -s for its wall times, -rs so a local run says why it skipped.
    Part("system", [*PYTEST, "-s", "-rs", "tests/system"]),
    Part("lab-device", [*PYTEST, *LAB_DEVICE], lab_env("f")),
    Part("lab-other", [*PYTEST, *LAB_OTHER], lab_env("c")),
    Part("lab-light", [*PYTEST, *LAB_LIGHT], lab_env("d")),
]


AT_ONCE = 7
"""Parts running at once; the others wait for one to end, in the order of ``PARTS`` (the
longest first). Ten at once kept both cores busy the whole run (816 s of CPU in 851 s on 2
cores), and the timing of lab tests under that load failed runs s3-s6 once or more each;
seven at once was green in run s2 (docs/testing.md)."""


def run(parts: list[Part]) -> int:
    BUILD.mkdir(exist_ok=True)
    began = time.monotonic()
    slots = threading.Semaphore(AT_ONCE)
    started: dict[str, tuple[subprocess.Popen[bytes], float, Path]] = {}
    ended: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def run_part(part: Part) -> None:
        with slots:
            log = BUILD / f"test-{part.name}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(part.argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, **part.env))
            started[part.name] = (proc, time.monotonic(), log)
            print(f"make test: part {part.name} started ({' '.join(part.argv[3:] if part.argv[0] == sys.executable else part.argv)}), log {log.relative_to(REPO)}",
                  flush=True)
            # wait4, not wait: the part's CPU time (its pytest and every process it reaped:
            # labs, brokers, agents), for issue 21's figures of wall against CPU.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu[part.name] = usage.ru_utime + usage.ru_stime
            ended[part.name] = time.monotonic()

    waiters = []
    for part in parts:  # started in this order, so each takes its slot in PARTS' order
        waiter = threading.Thread(target=run_part, args=(part,))
        waiter.start()
        waiters.append(waiter)
        time.sleep(0.05)
    for waiter in waiters:
        waiter.join()
    order = [(part, *started[part.name]) for part in parts]
    results = [(part, proc.returncode, ended[part.name] - t0, log) for part, proc, t0, log in order]
    failed = 0
    for part, code, took, log in results:
        print(f"\n==== {part.name}: exit {code}, {took:.0f} s wall ({log.relative_to(REPO)}) ====", flush=True)
        sys.stdout.write(log.read_text(errors="replace"))
        failed += code != 0
    print("\nmake test parts: " + ", ".join(f"{p.name} exit {c} in {t:.0f} s wall, {cpu[p.name]:.0f} s CPU"
                                          for p, c, t, _ in results))
    print(f"make test: {time.monotonic() - began:.0f} s wall for the parts, {sum(cpu.values()):.0f} s CPU")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    chosen = [p for p in PARTS if not argv or p.name in argv]
    unknown = set(argv) - {p.name for p in PARTS}
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}; parts: {', '.join(p.name for p in PARTS)}")
        return 2
    return run(chosen)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``make mutation``: mutation testing of the pure modules that decide money, keys and swaps.

Why (issue 29): a test suite can pass every time and still miss the bugs that matter. This
changes each decision in a module the way a real bug would (a sign, a comparison, a
``True`` for a ``False``, a dropped check) with mutmut 3.8.1 and counts how many of those
changes some *fast* test notices. It runs on demand, like ``make bench``: never part of
``make test``. docs/testing.md says how to read the table and lists the survivors judged
equivalent or accepted.

How: mutmut reads its configuration from ``pyproject.toml`` in the directory it runs in and
copies the tree into ``mutants/`` there. So each module runs in a scratch project of its own,
``build/mutation/<module>/``: symlinks to the checkout's top-level entries, and a ``pyproject.toml``
that is the checkout's own plus a ``[tool.mutmut]`` section generated from ``MODULES``
below. ``mutants/`` is made afresh on every run (mutmut keeps a survivor's verdict even
after a new test would kill it; a table must be of the tests as they are now).

    make mutation                                   # every module in MODULES
    make mutation MODULES=agent/core/policy.py      # one (or several, space-separated)
    MUTATION_JOBS=1 make mutation ...               # fewer workers on a busy machine

Log lines are not mutated (``do_not_mutate_patterns``: a statement that is a ``LOGGER.``
call): their text is for people. Reason codes, error kinds and every other string that
leaves the module through a return value are behaviour, and stay mutated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "build" / "mutation"
"""The scratch projects mutmut runs in, one per module (build/ is ignored by git and removed
by make clean): ``cd build/mutation/<module> && ../../../.venv/bin/mutmut browse`` after a run."""


@dataclass(frozen=True)
class Target:
    path: str
    """The module, relative to the checkout."""
    decides: str
    """What a wrong mutant here would cost someone: why the module is on the list."""


MODULES: tuple[Target, ...] = (
    Target("agent/usage/journal.py", "money: the usage records billed, exactly once, across crashes"),
    Target("agent/usage/meter.py", "money: counter readings into per-SIM, per-day, per-region bytes"),
    Target("agent/health/classifier.py", "swaps: throttled, congested, no service"),
    Target("agent/core/policy.py", "swaps: when a SIM is swapped, how urgently, how often"),
    Target("agent/cloud/sealing.py", "keys: opening and checking sealed SIM profiles"),
    Target("agent/cloud/pacing.py", "the fleet's load on the platform: back-off and pacing"),
    Target("agent/modem/lex.py", "swaps and money: splitting every AT answer into fields"),
    Target("agent/modem/decode.py", "swaps and money: the typed values read from the modem"),
    Target("agent/plans/rules.py", "money and swaps: a plan's rules as the contract writes them (issue 22)"),
    Target("agent/plans/windows.py", "money: where a rule's window starts and ends, JST day, month, rolling"),
    Target("agent/plans/ledger.py", "money: the bytes in each rule's window, durable"),
    Target("agent/plans/predict.py", "swaps: when a rule will throttle at the current rate"),
    Target("agent/plans/update.py", "money: top-ups and add-ons, signed, once each"),
    Target("agent/usim/auth.py", "keys: AUTHENTICATE, RES/CK/IK or AUTS (issue 24)"),
    Target("agent/usim/sqn.py", "keys: which SQN the card accepts (replay protection)"),
    Target("agent/usim/apdu.py", "the card's answer to every APDU: status words, T=0"),
)
"""The modules mutated by default: the eight of issue 29, then the plan rules and the
host-side USIM (landed 2026-12-03; not yet in the last table of docs/testing.md)."""

FAST_TESTS = ("tests/unit", "tests/cloud")
"""Each module's fast tests: the folders that need no lab; tools/mutation_select.py drops the
tests there that start a broker or need root. Never tests/lab, integration, packaging or
console (pty) tests: a wrong decision in a pure module must fail a test that takes milliseconds."""

LOG_LINE = r"^\s*LOGGER\.\w+\("
"""A statement that is a log call: its text and arguments are for people, not behaviour."""

COPIED = ("board", "tests", "tools", "docs", "packaging", "README.md", "Makefile")
"""What the tests read besides agent/ (the mutated package): the virtual board, the tests
themselves and this selection plugin, the JSON schemas and docs some tests check, the
packaging files the import tests read."""

MUTMUT_VERSION = "3.8.1"
"""The version the tables in docs/testing.md were made with (pyproject's ``mutation`` extra
pins it: mutant names, operators and counts change between versions)."""

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 37: "type check", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          -9: "segfault", -11: "segfault", None: "not checked"}
"""mutmut's exit codes per mutant (mutmut/stats.py ``status_by_exit_code``); others are 'suspicious'."""


def toml_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def mutmut_section(module: str) -> str:
    """The ``[tool.mutmut]`` section for one module's run."""
    args = ["-p", "tools.mutation_select", "-p", "no:cacheprovider"]
    return "\n".join([
        "",
        "# Generated by tools/mutation.py for this run only.",
        "[tool.mutmut]",
        'source_paths = ["agent"]',
        f"only_mutate = {toml_list([module])}",
        f"also_copy = {toml_list(COPIED)}",
        f"pytest_add_cli_args = {toml_list(args)}",
        f"pytest_add_cli_args_test_selection = {toml_list(FAST_TESTS)}",
        f"do_not_mutate_patterns = {toml_list([LOG_LINE])}",
        "use_git_change_detection = false",
        'on_dependency_change = "ignore"',
        "",
    ])


def project(module: str, work: Path | None = None) -> Path:
    """The scratch project of one module: build/mutation/agent.usage.journal for agent/usage/journal.py."""
    return (work or WORK) / module.removesuffix(".py").replace("/", ".")


def prepare(module: str, work_root: Path) -> Path:
    """A fresh scratch project: links to the checkout, the generated pyproject.toml, and
    ``shared`` beside it (tests/conftest.py finds the AT corpus at the checkout's ../shared,
    which inside mutants/ is the scratch project's shared)."""
    work = project(module, work_root)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("agent", *COPIED):
        (work / name).symlink_to(REPO / name)
    (work / "shared").symlink_to(REPO.parent / "shared")
    own = (REPO / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(own + mutmut_section(module))
    return work


def run_mutmut(work: Path, jobs: int) -> float:
    """``mutmut run`` in the scratch project; its wall time in seconds."""
    mutmut = Path(sys.executable).parent / "mutmut"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutants must win
    started = time.monotonic()
    proc = subprocess.run([str(mutmut), "run", "--max-children", str(jobs)], check=False, cwd=work, env=env)
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"mutmut run failed (exit {proc.returncode}); see its output above")
    return took


def verdicts(module: str, work: Path | None = None) -> dict[str, str]:
    """mutant name -> status, from mutmut's per-file record of the run."""
    meta = json.loads((project(module, work) / "mutants" / f"{module}.meta").read_text())
    return {name: STATUS.get(code, "suspicious") for name, code in meta["exit_code_by_key"].items()}


@dataclass(frozen=True)
class Row:
    module: str
    mutants: int
    killed: int
    survived: int
    no_tests: int
    other: dict[str, int]

    @property
    def score(self) -> float:
        """Killed (timeouts included) over every mutant: one no test reaches counts against."""
        return 100.0 * self.killed / self.mutants if self.mutants else 0.0


def row(module: str, work: Path | None = None) -> Row:
    statuses = list(verdicts(module, work).values())
    killed = statuses.count("killed") + statuses.count("timeout")
    other: dict[str, int] = {}
    for s in statuses:
        if s not in ("killed", "timeout", "survived", "no tests"):
            other[s] = other.get(s, 0) + 1
    return Row(module, len(statuses), killed, statuses.count("survived"), statuses.count("no tests"), other)


def table(rows: list[Row]) -> str:
    lines = ["| module | mutants | killed | survived | no tests | score |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        extra = "".join(f", {n} {s}" for s, n in sorted(r.other.items()))
        lines.append(f"| {r.module} | {r.mutants} | {r.killed} | {r.survived} | {r.no_tests} | "
                     f"{r.score:.0f} %{extra} |")
    return "\n".join(lines)


def survivors(module: str, work: Path | None = None) -> dict[str, str]:
    """Each mutant no fast test killed: name -> 'survived' or 'no tests'."""
    return {n: s for n, s in sorted(verdicts(module, work).items()) if s in ("survived", "no tests")}


def commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False,
                         capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "agent", "tests"],
                           check=False, capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: every one in MODULES)")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", os.cpu_count() or 1)))
    parser.add_argument("--list-survivors", action="store_true", help="print each survivor's name after the table")
    parser.add_argument("--work", type=Path, default=WORK,
                        help="where the scratch projects go (two runs side by side need two)")
    args = parser.parse_args(argv)
    known = {t.path for t in MODULES}
    modules = args.modules or [t.path for t in MODULES]
    missing = [m for m in modules if not (REPO / m).is_file()]
    if missing:
        print(f"no such module: {', '.join(missing)}", file=sys.stderr)
        return 2
    unlisted = [m for m in modules if m not in known]
    if unlisted:
        print(f"note: not in MODULES (mutated anyway): {', '.join(unlisted)}")
    rows, times = [], {}
    for module in modules:
        # One module per mutmut run: its own stats run over the fast tests, its own wall time.
        work = prepare(module, args.work)
        print(f"\n=== make mutation: {module} (fast tests: {' '.join(FAST_TESTS)}; {args.jobs} workers)", flush=True)
        times[module] = run_mutmut(work, args.jobs)
        rows.append(row(module, args.work))
        if args.list_survivors:
            for name, status in survivors(module, args.work).items():
                print(f"    {status}: {name}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    print(f"\nmake mutation, {stamp}, commit {commit()}, mutmut {MUTMUT_VERSION}, fast tests only:\n")
    print(table(rows))
    print("\nscore = killed (a timeout counts as killed) / every mutant; 'no tests': no fast test reaches it.")
    print("wall time per module: " + ", ".join(f"{m} {t:.0f} s" for m, t in times.items()))
    print("to read a survivor: cd build/mutation/<module> && mutmut show <name> (or mutmut browse)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Which code tree a starting agent runs, and the trial guard that proves a new one.

``pocket-agent run`` calls ``start`` before anything else (agent/faces/cli/run.py). The
process that calls it first is always the **package's own code** (systemd's and procd's
``ExecStart`` is the package's launcher; the lab's ``python -m agent`` is the checkout),
so the code that chooses and judges is the one version known to work on this router, as
a boot loader is for an A/B system; a release cannot break its own rollback.

- No release linked (or the package changed since the link was made: ``apt upgrade``
  installed a newer agent): run here.
- A committed release linked: ``exec`` into it (the same pid, so systemd's main process
  and its notify socket stay the same).
- A release on trial: count the start (journal, fsync'd) and, past ``MAX_ATTEMPTS``, roll
  back without trying again (a crash loop, a watchdog kill loop, a power cut in every
  trial); otherwise run it as a **child** and judge it (``Trial``): its stderr passes
  through (the journal, logread, the lab's log) and its last lines are kept; the health
  gate (gate.py) reads the status file it writes. Commit: the guard stays its parent,
  passing signals and its exit status through. Crash, hang, never serving, no cloud, no
  acknowledged report within the bound: the child is stopped, the link goes back
  (install.rollback), and the guard starts afresh as the package's code (``exec``), which
  now runs the previous version.

The unit's ``NotifyAccess=main`` stays: the guard relays the child's READY=1, STATUS= and
watchdog pings to systemd (notifyrelay.py).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from agent import store
from agent.update import gate, install, journal, machine, scrub, slots
from agent.update.notifyrelay import NotifyRelay

LOGGER = logging.getLogger(__name__)

TREE_ENV = "POCKET_AGENT_TREE"
"""Set on a process exec'd or started into a chosen tree: it runs, and chooses nothing."""
GUARD_ENV = "POCKET_AGENT_GUARD"
"""The trial guard's pid, set on its child: a restart into a newer update is then the
guard's to do (``restart``), so guards never nest."""
ENTRY_ENV = "POCKET_AGENT_ENTRY"
"""The first start's command line (JSON): how any version starts the package's code again."""
CHILD_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]; sys.argv[0] = 'pocket-agent'; "
              "from agent.cli import main; sys.exit(main())")
"""How a chosen tree is run: its directory first on the module path, then the same entry
point as the launcher's. With ``-E -s``: no PYTHON* variable or user site changes what runs."""
UPDATE_RESTART = 79
"""A guard's child asks its guard to start afresh into a newly installed update (never
seen by a service manager: the guard execs instead of exiting with it)."""
POLL_S = 1.0
"""How often the guard reads the status file: it is refreshed every 2 s."""
STOP_GRACE_S = 5.0
"""A failed trial's child gets this long after SIGTERM (its stop contract is 3 s) before SIGKILL."""
NOTIFY_NAME = "notify.sock"
"""The relay's socket in the update directory (notifyrelay.py): the state directory is the
one the service may write, and a unix socket path must stay under 108 bytes."""
PACKAGE_FILE = "package.json"
"""The package tree's version when a release was first linked over it."""
LOG_KEEP = 200
"""Lines of the child's stderr held in memory; the report takes the last scrub.TAIL_LINES."""


def own_tree() -> Path:
    """The tree this code runs from (the directory holding the ``agent`` package)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Choice:
    """``here``, ``exec`` (into ``tree``) or ``trial`` (of ``tree``)."""

    action: str
    tree: Path | None = None


def choose(state_dir: Path, own: Path, pid: int) -> Choice:
    """The decision at start (journal and link; writes the attempt count before returning)."""
    state = install.recover(state_dir)
    if state.phase == "trial":
        state = journal.save(state_dir, machine.attempt(state, pid))
        tree = slots.current_tree(state_dir)
        if machine.exhausted(state):
            install.rollback(state_dir, f"crash_loop ({machine.MAX_ATTEMPTS} starts without passing the gate)")
        elif tree is None:
            install.rollback(state_dir, "release tree missing")
        else:
            return Choice("trial", tree)
    tree = slots.current_tree(state_dir)
    if tree is None or tree == own.resolve():
        return Choice("here")
    if state.phase in ("idle", "committed", "rolled_back") and _package_changed(state_dir, own):
        LOGGER.info("the installed package changed since release %s was linked: running the package",
                    slots.tree_version(tree))
        slots.switch(state_dir, None)
        slots.prune(state_dir, set())
        return Choice("here")
    return Choice("exec", tree)


def _package_changed(state_dir: Path, own: Path) -> bool:
    """The package's tree is not the one the release was installed over (an upgrade by the
    package manager): its version differs from the one recorded at the first switch."""
    recorded = store.read_json(journal.update_dir(state_dir) / PACKAGE_FILE) or {}
    return bool(recorded) and recorded.get("version") != slots.tree_version(own)


def note_package(state_dir: Path, own: Path) -> None:
    """Record the package's version before a release is linked over it (updater.py)."""
    if slots.current_tree(state_dir) is None:
        store.atomic_write_json(journal.update_dir(state_dir) / PACKAGE_FILE, {"version": slots.tree_version(own)})


def child_argv(tree: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-E", "-s", "-c", CHILD_BOOT, str(tree), *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (TREE_ENV, GUARD_ENV)}
    env.update(extra)
    return env


def start(state_dir: Path, args: list[str], status_file: Path | None, trial_s: float,
          hang_s: float = gate.HANG_S) -> None:
    """Return if this process should run the agent itself; otherwise exec into the chosen
    tree or guard its trial, and never return."""
    if os.environ.get(TREE_ENV):
        return
    os.environ.setdefault(ENTRY_ENV, json.dumps(sys.orig_argv))
    choice = choose(state_dir, own_tree(), os.getpid())
    if choice.action == "here":
        return
    assert choice.tree is not None
    if choice.action == "exec":
        LOGGER.info("running release %s (%s)", slots.tree_version(choice.tree), choice.tree.name)
        _flush()
        os.execve(sys.executable, child_argv(choice.tree, args), _env(**{TREE_ENV: str(choice.tree)}))
    code = Trial(state_dir, choice.tree, args, status_file, bound_s=trial_s, hang_s=hang_s).run()
    _flush()
    os._exit(code)


def restart() -> NoReturn:
    """Start afresh as the package's code, which then chooses (a new update, a rollback).
    Under a trial guard: exit with UPDATE_RESTART and the guard does it."""
    _flush()
    if os.environ.get(GUARD_ENV) == str(os.getppid()):
        os._exit(UPDATE_RESTART)
    entry = json.loads(os.environ.get(ENTRY_ENV) or json.dumps(sys.orig_argv))
    os.execve(sys.executable, [sys.executable, *entry[1:]], _env())


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when its parent dies."""


def _die_with_parent() -> None:
    """In the trial's child, before exec: SIGKILL it if the guard dies (a SIGKILL of the
    guard alone, as ``pocket-lab agent kill`` sends, must not leave an orphan holding the
    state directory's lock; under systemd the unit's cgroup is killed whole anyway)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class Trial:
    """Run ``tree`` as a child and commit it or roll it back (gate.py decides)."""

    def __init__(self, state_dir: Path, tree: Path, args: list[str], status_file: Path | None, *,
                 bound_s: float = gate.TRIAL_BOUND_S, hang_s: float = gate.HANG_S, poll_s: float = POLL_S,
                 clock: Callable[[], float] = time.monotonic, log_out: IO[bytes] | None = None):
        self.state_dir, self.tree, self.args, self.status_file = state_dir, tree, args, status_file
        self.bound_s, self.hang_s, self.poll_s, self.clock = bound_s, hang_s, poll_s, clock
        self.log_out = log_out if log_out is not None else sys.stderr.buffer
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_KEEP)
        self.stop_signal: int | None = None
        self.child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """The trial to its end; returns the exit status to leave with (after a commit or
        a stop), or does not return (a rollback or a restart starts afresh)."""
        version = slots.tree_version(self.tree)
        LOGGER.warning("trying release %s (%s): health gate within %.0f s", version, self.tree.name, self.bound_s)
        _flush()
        env = _env(**{TREE_ENV: str(self.tree), GUARD_ENV: str(os.getpid())})
        target = os.environ.get("NOTIFY_SOCKET")
        relay = NotifyRelay(journal.update_dir(self.state_dir) / NOTIFY_NAME, target) if target else None
        if relay is not None:
            env.update(relay.child_env())
            env.pop("WATCHDOG_PID", None)  # it names the guard; the release pings through the relay
        self.child = subprocess.Popen(child_argv(self.tree, self.args), stderr=subprocess.PIPE, env=env,
                                      # one prctl syscall between fork and exec: no lock or allocation
                                      # the relay's thread could hold (the pump starts after)
                                      preexec_fn=_die_with_parent)  # noqa: PLW1509
        pump = threading.Thread(target=self._pump, args=(self.child.stderr,), name="trial-log", daemon=True)
        pump.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        started, committed = self.clock(), False
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.child.wait(self.poll_s)
            code = self.child.poll()
            if self.stop_signal is not None or committed:
                if code is None:
                    continue
                pump.join(1.0)
                if committed and code == UPDATE_RESTART:
                    restart()
                return code if code >= 0 else 128 - code
            verdict = gate.judge(self._status(), elapsed_s=self.clock() - started, exited=code, now=time.time(),
                                 pid=self.child.pid, bound_s=self.bound_s, hang_s=self.hang_s)
            if verdict.action == "commit":
                install.commit(self.state_dir)
                committed = True
            elif verdict.action == "rollback":
                self._end_child()
                pump.join(1.0)
                install.rollback(self.state_dir, verdict.reason, scrub.tail(list(self.lines)))
                restart()

    def _status(self) -> dict[str, Any]:
        if self.status_file is None:
            return {}
        data = store.read_json(self.status_file, {})
        return data if isinstance(data, dict) else {}

    def _forward(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _end_child(self) -> None:
        assert self.child is not None
        if self.child.poll() is not None:
            return
        self.child.terminate()
        try:
            self.child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()

    def _pump(self, stream: IO[bytes] | None) -> None:
        """The child's stderr, line by line: passed through, and the recent lines kept."""
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace"))
            with contextlib.suppress(OSError, ValueError):
                self.log_out.write(raw)
                self.log_out.flush()

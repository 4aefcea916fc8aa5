"""The trial guard with real processes: a release that serves is committed; one that
crashes, never serves or hangs is stopped, the link goes back and the package's code
starts again; the failure is journaled with the release's last log lines, scrubbed.

The releases are cut from this tree by packaging/release.py with ``agent/cli.py``
replaced by FAKE_CLI, a small program that plays the agent's part the gate reads: the
status file (agent/core/status.py's fields) and stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.update import install, journal, machine, slots
from agent.update.manifest import parse

REPO = Path(__file__).resolve().parents[2]
BOUND_S = 6.0
"""The gate's bound in these tests: the fakes start in well under a second."""
HANG_S = 2.0

FAKE_CLI = '''
import json, os, sys, time
MODE = "@MODE@"
def write(path, state, acks):
    data = {"pid": os.getpid(), "state": state, "updated": time.time(),
            "cloud": {"connected": True, "usage_acks": acks}}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
def main():
    path = sys.argv[-1]
    print("INFO agent starting ki=00112233445566778899AABBCCDDEEFF", file=sys.stderr, flush=True)
    if os.environ.get("NOTIFY_SOCKET") and MODE == "good":
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(("READY=1\\nWATCHDOG_PID=" + os.environ.get("WATCHDOG_PID", "unset")).encode(),
                 os.environ["NOTIFY_SOCKET"])
    if MODE == "crash":
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: release broken at start", file=sys.stderr, flush=True)
        return 1
    while True:
        write(path, "serving" if MODE == "good" else "starting", 1 if MODE == "good" else 0)
        if MODE == "hang":
            time.sleep(3600)
        time.sleep(0.5)
'''


def release_with(cut, mode: str, version: str = "0.2.0"):
    def edit(files):
        return {**files, "agent/cli.py": FAKE_CLI.replace("@MODE@", mode).encode()}
    return cut(version=version, edit=edit)


def installed(tmp_path: Path, release) -> Path:
    artifact, manifest = release
    state_dir = tmp_path / "state"
    m = parse(json.loads(manifest.read_text()))
    state = machine.offered(journal.load(state_dir), m.to_dict(), m.version, m.rollout, m.sha256, m.floor)
    journal.save(state_dir, machine.advance(state, "fetched"))
    install.install(state_dir, artifact, REPO)
    return state_dir


def start(state_dir: Path, status: Path, **env: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "tests.update.trial_child", str(state_dir), str(status), str(BOUND_S), str(HANG_S)]
    return subprocess.Popen(argv, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_phase(state_dir: Path, phase: str, timeout: float) -> None:
    """Poll the journal of another process (there is no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while journal.load(state_dir).phase != phase:
        assert time.monotonic() < deadline, f"phase {phase} not reached: {journal.load(state_dir)}"
        time.sleep(0.1)


def test_a_release_that_serves_is_committed_and_keeps_running(tmp_path, cut):
    state_dir = installed(tmp_path, release_with(cut, "good"))
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # plays systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(30)
    proc = start(state_dir, tmp_path / "status.json", NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_PID="1")
    try:
        # the release's READY=1 reaches systemd through the guard's relay, with the guard's
        # WATCHDOG_PID dropped from the release's environment (NotifyAccess=main stays)
        assert systemd.recv(4096) == b"READY=1\nWATCHDOG_PID=unset"
        wait_phase(state_dir, "committed", BOUND_S + 10)
        assert proc.poll() is None  # the guard stays, the release runs on
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["pid"] != proc.pid  # the release is the guard's child
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM  # the fake dies of the forwarded signal; passed through
    assert slots.tree_version(slots.current_tree(state_dir)) == "0.2.0"
    assert "agent starting" in err  # the release's stderr passed through the guard


@pytest.mark.parametrize("mode,reason", [("crash", "crashed (exit 1)"), ("never_serving", "never_serving"),
                                         ("hang", "hung")])
def test_a_bad_release_is_rolled_back_and_the_package_runs_again(tmp_path, cut, mode, reason):
    state_dir = installed(tmp_path, release_with(cut, mode))
    proc = start(state_dir, tmp_path / "status.json")
    out, err = proc.communicate(timeout=BOUND_S + 60)
    assert proc.returncode == 0 and out.strip() == "HERE", err  # restarted as the package, serving here
    state = journal.load(state_dir)
    assert (state.phase, state.reason) == ("rolled_back", reason)
    assert slots.current_tree(state_dir) is None
    tail = "\n".join(state.log_tail)
    assert "agent starting" in tail and "00112233445566778899" not in tail
    if mode == "crash":
        assert "RuntimeError: release broken at start" in tail


def test_a_stop_during_the_trial_leaves_it_to_the_next_start(tmp_path, cut):
    state_dir = installed(tmp_path, release_with(cut, "never_serving"))
    proc = start(state_dir, tmp_path / "status.json")
    deadline = time.monotonic() + 20
    while not (tmp_path / "status.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    state = journal.load(state_dir)
    assert (state.phase, state.attempts) == ("trial", 1)  # counted, not judged


def test_the_relay_drops_stopping_and_passes_the_rest():
    from agent.update.notifyrelay import without_stopping
    assert without_stopping(b"STATUS=stopping\nSTOPPING=1") == b"STATUS=stopping"
    assert without_stopping(b"STOPPING=1") == b""
    assert without_stopping(b"READY=1\nSTATUS=serving on SIM 1") == b"READY=1\nSTATUS=serving on SIM 1"

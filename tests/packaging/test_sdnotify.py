"""sd_notify and the progress watchdog against a real unix datagram socket.

The test plays systemd: it binds the notify socket (a path, and an abstract name), runs
the real notifier and watchdog in a separate process with ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` in its environment, and reads what arrives.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sdnotify import (
    STATUS_MAX_CHARS,
    STATUS_MIN_INTERVAL_S,
    Notifier,
    ProgressWatchdog,
    StatusLine,
    watchdog_interval,
)
from tests.conftest import REPO

WATCHDOG_USEC = 300_000
"""0.3 s watchdog: the harness pings every 0.15 s, so the test sees several pings fast."""
EVENT_TIMEOUT_S = 10.0
"""Only a guard against a hang: every wait below is for a message or a ping decision,
never a window of wall time (a busy 2-core machine may delay a ping by seconds)."""


class NotifySocket:
    """The service manager's end: a bound SOCK_DGRAM socket and what it received."""

    def __init__(self, sock: socket.socket, name: str):
        self.sock, self.name = sock, name

    def recv(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def recv_until(self, key: str, timeout: float) -> list[dict[str, str]]:
        """Messages up to and including the first carrying ``key``."""
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.recv(deadline - time.monotonic())
            if msg is None:
                break
            got.append(msg)
            if key in msg:
                return got
        raise AssertionError(f"no {key} within {timeout} s; got {got}")


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifySocket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify")
        sock.bind(name)
    else:
        name = f"@pocket-agent-test-{os.getpid()}-{id(sock)}"
        sock.bind(b"\0" + name[1:].encode())
    yield NotifySocket(sock, name)
    sock.close()


def start_harness(notify: NotifySocket) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": notify.name, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    return subprocess.Popen([sys.executable, "-m", "tests.packaging.notify_harness"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)


def decisions_while_stuck(proc: subprocess.Popen[str], silent: int) -> list[str]:
    """The harness's ping decisions ("ping"/"silent") made while stuck, read until
    ``silent`` of them in a row were silent."""
    assert proc.stdout is not None
    seen: list[str] = []
    while seen[-silent:] != ["silent"] * silent:
        ready, _, _ = select.select([proc.stdout], [], [], EVENT_TIMEOUT_S)
        line = proc.stdout.readline() if ready else ""
        assert line, f"no ping decision within {EVENT_TIMEOUT_S} s; decisions so far {seen}"
        kind, stuck = line.split()[1:3]
        if stuck == "stuck=1":
            seen.append(kind)
    return seen


def drain(notify: NotifySocket) -> list[dict[str, str]]:
    """What the notify socket holds now (the harness sends before it prints a decision)."""
    got = []
    while (msg := notify.recv(timeout=0.001)) is not None:
        got.append(msg)
    return got


def test_ready_then_pings_then_silence_when_the_loop_is_stuck(notify_socket: NotifySocket) -> None:
    proc = start_harness(notify_socket)
    try:
        first = notify_socket.recv_until("READY", timeout=EVENT_TIMEOUT_S)
        assert first[-1] == {"READY": "1", "STATUS": "serving on SIM test"}
        pings = [notify_socket.recv(timeout=EVENT_TIMEOUT_S) for _ in range(3)]
        assert pings == [{"WATCHDOG": "1"}] * 3  # the loop makes progress: pings keep coming
        proc.send_signal(signal.SIGUSR1)  # the main loop gets stuck on an await
        # At most one ping decided on progress made before the signal landed; then none.
        stuck = decisions_while_stuck(proc, silent=2)
        assert stuck.count("ping") <= 1 and stuck[stuck.count("ping"):] == ["silent"] * (len(stuck) - stuck.count("ping"))
        assert all(m == {"WATCHDOG": "1"} for m in drain(notify_socket))  # pings from before, if any
        decisions_while_stuck(proc, silent=2)  # two more watchdog intervals, the process alive ...
        assert drain(notify_socket) == []  # ... and not one ping in them
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert notify_socket.recv_until("STOPPING", timeout=EVENT_TIMEOUT_S)[-1] == {"STOPPING": "1"}
        assert proc.wait(timeout=EVENT_TIMEOUT_S) == 0
    finally:
        proc.kill()
        proc.wait()


def test_no_socket_means_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.send(READY=1, STATUS="x") and not notifier.watchdog()


def test_gone_service_manager_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.enabled and notifier.send(READY=1) is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_pings_during_startup_then_only_on_progress() -> None:
    sent: list[str] = []

    class Recorder(Notifier):
        def send(self, **fields: str | int) -> bool:
            sent.extend(fields)
            return True

    wd = ProgressWatchdog(Recorder("@x"), 10.0)
    assert wd.tick() and wd.tick()  # start-up: bounded by TimeoutStartSec, pings anyway
    wd.serving()
    assert not wd.tick() and wd.missed == 1  # serving, no pass since READY
    wd.mark()
    assert wd.tick() and wd.missed == 0
    assert not wd.tick()
    assert sent == ["WATCHDOG", "WATCHDOG", "READY", "WATCHDOG"]


class Ticks:
    """A monotonic clock the test moves (the rate bound is logic, not a timing)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def status_line(notify: NotifySocket) -> tuple[StatusLine, Ticks]:
    ticks = Ticks()
    return StatusLine(Notifier(notify.name), min_interval=STATUS_MIN_INTERVAL_S, clock=ticks), ticks


def test_status_is_sent_on_change_only(notify_socket: NotifySocket) -> None:
    line, ticks = status_line(notify_socket)
    assert line.offer("serving on SIM 1") is True
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "serving on SIM 1"}
    ticks.now += 60
    assert line.offer("serving on SIM 1") is False and line.offer(None) is False  # unchanged, nothing to say
    assert drain(notify_socket) == []


def test_changes_inside_the_interval_are_held_and_the_latest_wins(notify_socket: NotifySocket) -> None:
    line, ticks = status_line(notify_socket)
    line.offer("serving on SIM 1")
    ticks.now += 1
    assert line.offer("swapping away from SIM 1") is False  # held: 1 s after the last
    ticks.now += 1
    assert line.offer("serving on SIM 2") is False  # replaces the held one
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "serving on SIM 1"} and drain(notify_socket) == []
    ticks.now += STATUS_MIN_INTERVAL_S
    assert line.flush() is True
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "serving on SIM 2"}
    assert line.sent == "serving on SIM 2" and line.pending is None


def test_a_change_back_cancels_the_held_text(notify_socket: NotifySocket) -> None:
    line, ticks = status_line(notify_socket)
    line.offer("serving on SIM 1")
    ticks.now += 1
    line.offer("outage on SIM 1: no_data (pdn_deactivated); healing")
    line.offer("serving on SIM 1")  # healed within the interval: systemd already shows this
    ticks.now += STATUS_MIN_INTERVAL_S
    assert line.flush() is False
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "serving on SIM 1"} and drain(notify_socket) == []


def test_ready_and_stopping_go_at_once(notify_socket: NotifySocket) -> None:
    line, ticks = status_line(notify_socket)
    line.offer("swapping away from SIM 1")
    ticks.now += 1
    assert line.offer("serving on SIM 2", READY=1) is True  # not held by the rate bound
    assert [notify_socket.recv(EVENT_TIMEOUT_S) for _ in range(2)] == [
        {"STATUS": "swapping away from SIM 1"}, {"READY": "1", "STATUS": "serving on SIM 2"}]
    line.offer("serving on SIM 3")  # resumed without a swap: the line went out before READY=1
    ticks.now += STATUS_MIN_INTERVAL_S
    line.flush()
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "serving on SIM 3"}
    assert line.offer("serving on SIM 3", READY=1) is True  # READY=1 still names it
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"READY": "1", "STATUS": "serving on SIM 3"}
    ticks.now += 1
    line.offer("swapping away from SIM 3")
    assert line.offer(None, STOPPING=1) is True
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STOPPING": "1"}  # the held line is dropped
    assert line.pending is None and drain(notify_socket) == []


def test_a_newline_in_a_cause_cannot_add_a_field(notify_socket: NotifySocket) -> None:
    line, _ = status_line(notify_socket)
    line.offer("outage on SIM 1: no_data (modem said\nREADY=1\rWATCHDOG=1)" + "x" * 400)
    raw = notify_socket.sock.recv(4096).decode()
    assert raw.count("\n") == 0 and raw.startswith("STATUS=outage on SIM 1: no_data (modem said READY=1 WATCHDOG=1)")
    assert len(raw) == len("STATUS=") + STATUS_MAX_CHARS and raw.endswith("...")
    Notifier(notify_socket.name).status("cannot start: configuration: line 3\nREADY=1")
    assert notify_socket.recv(EVENT_TIMEOUT_S) == {"STATUS": "cannot start: configuration: line 3 READY=1"}

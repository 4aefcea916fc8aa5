"""The real daemon on the virtual board under a systemd-style notify socket.

The test plays systemd for the lab's agent: it binds a unix datagram socket, restarts
the agent with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` in its environment (through
``pocket-lab agent restart``, as a unit's ``Type=notify`` and ``WatchdogSec=`` would set
them), and reads what the agent says: READY=1 once it serves, WATCHDOG=1 while its
sample loop makes progress, STOPPING=1 on SIGTERM. (That a stuck loop stops the pings
is shown on the same code in tests/packaging/test_sdnotify.py.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.lab.conftest import LAB_DIR

WATCHDOG_USEC = 2_000_000
"""2 s: the agent pings every second, after each one-second sample pass."""


def lab_with(env: dict[str, str], *args: str) -> None:
    full = dict(os.environ, POCKET_LAB_DIR=str(LAB_DIR), **env)
    done = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True, capture_output=True,
                          env=full, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def receive(sock: socket.socket, until: str, timeout: float) -> list[dict[str, str]]:
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        got.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        if until in got[-1]:
            return got
    raise AssertionError(f"no {until} within {timeout} s; got {got}")


def test_agent_says_ready_pings_while_serving_and_says_stopping(running_lab: dict[str, Any],
                                                               tmp_path: Path) -> None:
    path = tmp_path / "notify"  # a path, not an abstract name: the agent runs in another netns
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        lab_with(env, "agent", "restart")
        ready = receive(sock, "READY", timeout=60)[-1]
        assert ready["READY"] == "1" and ready["STATUS"].startswith("serving on SIM ")
        start = time.monotonic()
        pings = [receive(sock, "WATCHDOG", timeout=WATCHDOG_USEC / 1e6 * 2) for _ in range(3)]
        assert all(p[-1] == {"WATCHDOG": "1"} for p in pings)
        assert time.monotonic() - start < 3 * WATCHDOG_USEC / 1e6  # at the pace systemd asked for
        lab_with({}, "agent", "stop")
        assert receive(sock, "STOPPING", timeout=30)[-1] == {"STOPPING": "1"}
    finally:
        sock.close()
        lab_with({}, "agent", "restart")  # the lab's own agent again (no notify socket) for the other tests

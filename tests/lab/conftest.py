"""The whole virtual board, brought up once for the lab tests (root only).

Lab tests drive the lab exactly as outside tests and the cloud team do: through the
``pocket-lab`` command line (docs/virtual-board.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.control import ControlClient
from tests.conftest import need_root, need_tool

LAB_DIR = Path(os.environ.get("POCKET_LAB_TEST_DIR", "/run/pocket-lab-test"))


def lab(*args: str, check: bool = True, timeout: float = 180,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POCKET_LAB_DIR=str(LAB_DIR), **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True, capture_output=True,
                          env=env, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"pocket-lab {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def lab_json(*args: str) -> Any:
    return json.loads(lab(*args, "--json").stdout)


def in_ns(ns: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], text=True, capture_output=True, timeout=timeout,
                          check=False)


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll an external process's observable state (no event to await across processes)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")


def cloud_events(kind: str | None = None) -> list[dict[str, Any]]:
    """What the reference cloud recorded (events.jsonl), optionally of one kind."""
    path = LAB_DIR / "cloud" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in events if kind is None or e.get("kind") == kind]


def event_data(kind: str) -> list[dict[str, Any]]:
    """The ``data`` of every event record of ``kind`` the cloud ingested, in order."""
    return [e["body"]["body"]["data"] for e in cloud_events(kind)]


def control(running_lab: dict[str, Any], op: str, **args: Any) -> dict[str, Any]:
    """One op on the running daemon's control socket (what the console asks), one connection."""
    async def ask() -> dict[str, Any]:
        client = ControlClient(running_lab["console"]["control_socket"])
        try:
            return await client.request(op, **args)
        finally:
            client.close()
    return asyncio.run(ask())


def agent_status() -> dict[str, Any]:
    try:
        return json.loads((LAB_DIR / "agent" / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


@pytest.fixture(scope="session")
def running_lab() -> Iterator[dict[str, Any]]:
    need_root()
    for tool in ("mosquitto", "nft", "tc", "ip"):
        need_tool(tool)
    lab("down", check=False)
    proc = lab("up", check=False, timeout=240)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted((LAB_DIR / "logs").glob("*.log"))) if (LAB_DIR / "logs").exists() else ""
        lab("down", check=False)
        raise AssertionError(f"pocket-lab up failed:\n{proc.stdout}\n{proc.stderr}\n{logs}")
    try:
        yield lab_json("status")
    finally:
        lab("traffic", "stop", check=False)
        keep_logs()
        lab("down", check=False)


KEPT_LOGS = Path(__file__).resolve().parents[2] / "build" / "lab-logs"
"""Where each lab's logs (agent, modem, carrier, cloud, broker) are copied before it goes
down: ``pocket-lab down`` removes its directory, and a failed run's story is in them."""


def keep_logs(tag: str = "") -> None:
    """Copy this lab's logs to ``build/lab-logs/<lab directory name>[-tag]/`` (replacing the
    last); a module that brings its own lab up keeps that lab's under its tag."""
    source = LAB_DIR / "logs"
    if not source.is_dir():
        return
    target = KEPT_LOGS / (f"{LAB_DIR.name}-{tag}" if tag else LAB_DIR.name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def lab_needed_after(request: pytest.FixtureRequest) -> bool:
    """Whether a lab test of another module runs after the requesting module in this session.

    A module that faults or re-plans the lab brings it up afresh for the modules after it;
    when it is the last lab module of the run (its own part of ``make test``), the session's
    teardown takes the lab down anyway and a fresh ``up`` would cost half a minute for nothing."""
    this = request.node.path
    items = request.session.items
    last = max((i for i, item in enumerate(items) if item.path == this), default=len(items))
    return any(item.path != this and item.path.parent == this.parent for item in items[last + 1:])


POLICY_TIMEOUT = 15.0
"""A policy reaches the agent over its live MQTT session in well under a second; fifteen
covers a loaded machine."""


def set_policy(**values: int) -> None:
    """Set top-level policy knobs at the cloud and wait until the agent has persisted them:
    a command sent before the new policy arrived is judged under the old one (a swap refused
    by a spent hourly limit)."""
    lab("policy", *(arg for key, value in values.items() for arg in ("--set", f"{key}={value}")))
    saved = LAB_DIR / "agent" / "state" / "policy.json"
    wait_until(f"the agent persisting {values}",
               lambda: saved.exists() and all(json.loads(saved.read_text()).get(k) == v for k, v in values.items()),
               POLICY_TIMEOUT)

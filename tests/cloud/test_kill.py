"""SIGKILL the agent mid-upload: on restart it resends exactly what the cloud had not acked."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config

REPO = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 15.0
"""Bound on waiting for the harness to report (it normally takes well under a second)."""


def expect(proc: subprocess.Popen, wanted: str) -> None:
    """Read the harness's stdout until ``wanted`` (with a deadline; it is another process)."""
    deadline = time.monotonic() + LINE_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip() == wanted:
                return
    raise AssertionError(f"harness did not report {wanted!r}")


def spawn(config: Path, state: Path, count: int, iccid: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.cloud.agent_harness", str(config), str(state), str(count),
                             iccid], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_sigkilled_agent_resends_only_what_was_not_acknowledged(
        broker: Broker, pki: LabPki, make_cloud: Callable[..., ReferenceCloud], tmp_path: Path,
        pool_data: dict[str, Any]) -> None:
    iccid = pool_data["sims"][0]["iccid"]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                  for k, v in asdict(device_config(pki, broker)).items()}))
    state = tmp_path / "agent"
    cloud = make_cloud(state_dir=tmp_path / "cloud")
    first = spawn(config, state, 30, iccid)
    try:
        expect(first, "drained")  # 1..30 acknowledged
        cloud.stop()  # nobody acks from here on
        assert first.stdin is not None
        first.stdin.write("more 30\n")
        first.stdin.flush()
        expect(first, "sent 60")  # 31..60 reached the broker, never the cloud
        first.kill()  # SIGKILL: no goodbye, no flush beyond what put() made durable
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # Same durable state as the first cloud, but a new MQTT session: whatever the broker
    # queued for the first one cannot reach it, so 31..60 can only come from a resend.
    cloud2 = make_cloud(state_dir=tmp_path / "cloud", client_id="cloud-2")
    second = spawn(config, state, 60, iccid)
    try:
        expect(second, "drained")
        # The kill left a will (session 1, offline); the restarted agent's birth (session 2) wins.
        assert cloud2.wait_for(lambda: cloud2.sessions.get("dev-a", 0) >= 2 and cloud2.online.get("dev-a"), 5)
    finally:
        second.kill()
        second.wait()
    total = cloud2.totals()[iccid]
    assert total["rx_bytes"] == sum(5000 + i for i in range(1, 61))
    assert total["tx_bytes"] == sum(50 + i for i in range(1, 61))
    resent = [e["body"]["seq"] for e in cloud2.events() if e["kind"] == "usage"]
    assert min(resent) == 31 and sorted(set(resent)) == list(range(31, 61))  # only the unacknowledged

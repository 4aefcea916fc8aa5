"""`pocket-lab broker`, `pocket-lab cloud` and `pocket-lab events --json`, as processes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.cloud.link import CloudLink
from board.virtual.cloud.broker import tls_probe
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.pool import make_pool, save_pool
from tests.cloud import events as ev
from tests.cloud.conftest import HOST, Broker, device_config, free_port, run
from tests.cloud.test_link import until
from tests.conftest import need_tool

REPO = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 15.0
"""Bound on a subprocess printing its ready line (normally well under a second)."""


def lab(*args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-m", "board.virtual.lab", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, **kw)


def ready_line(proc: subprocess.Popen, prefix: str) -> str:
    deadline = time.monotonic() + LINE_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
            if not line:
                break
    proc.kill()
    raise AssertionError(f"no {prefix!r} line; stderr: {proc.stderr.read() if proc.stderr else ''}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(10)


def test_pocket_lab_broker_runs_and_stops_mosquitto(tmp_path: Path) -> None:
    need_tool("mosquitto")
    port = free_port()
    proc = lab("broker", "--dir", str(tmp_path), "--host", HOST, "--port", str(port), "--device", "dev-x")
    try:
        ready_line(proc, "broker on")
        pki_dir = tmp_path / "pki"
        pki = LabPki(pki_dir, pki_dir / "ca.pem", pki_dir / "ca.key", pki_dir / "broker.pem", pki_dir / "broker.key",
                     pki_dir / "cloud.pem", pki_dir / "cloud.key", pki_dir / "platform.key", pki_dir / "platform.pub",
                     pki_dir / "devices", pki_dir / "foreign/ca.pem", pki_dir / "foreign/ca.key",
                     pki_dir / "foreign/device.pem", pki_dir / "foreign/device.key")
        assert tls_probe(pki, HOST, port)
        assert (pki_dir / "devices" / "dev-x" / "cert.pem").exists()
    finally:
        stop(proc)
    assert not tls_probe(pki, HOST, port, timeout=0.5)  # mosquitto went with it


def test_pocket_lab_cloud_and_events_json(broker: Broker, pki: LabPki, tmp_path: Path) -> None:
    pool = tmp_path / "pool.json"
    save_pool(pool, make_pool(5, seed=9))
    state = tmp_path / "cloud"
    proc = lab("cloud", "--state-dir", str(state), "--broker", f"{broker.host}:{broker.port}",
               "--ca", str(pki.ca_cert), "--cert", str(pki.cloud_cert), "--key", str(pki.cloud_key),
               "--pool", str(pool), "--platform-key", str(pki.platform_key), "--device-keys", str(pki.devices_dir),
               "--max-concurrent-swaps", "5")
    try:
        ready_line(proc, "reference cloud on")

        async def body() -> None:
            link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
            await link.start()
            try:
                a = await link.request_assignment("boot", timeout=10)
                await link.emit("health", ev.health("ok", a.profile.iccid))
                await until(lambda: len(link.events) == 0)
            finally:
                await link.stop()
        run(body())
    finally:
        assert stop(proc) == 0
    out = subprocess.run([sys.executable, "-m", "board.virtual.lab", "events", "--json", "--state-dir", str(state)],
                         cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    events = json.loads(out)
    assert [e["kind"] for e in events][:3] == ["state", "assign/request", "health"]
    assert all(e["device"] == "dev-a" and isinstance(e["t"], float) for e in events)
    totals = json.loads((state / "totals.json").read_text())
    assert sum(1 for t in totals.values() if t["device"] == "reserved:dev-a") == 1
    pool_keys = [s["ki"] for s in json.loads(pool.read_text())["sims"]]
    dumped = (state / "events.jsonl").read_text() + (state / "totals.json").read_text() + out
    assert not any(k in dumped for k in pool_keys)  # no Ki ever reaches the cloud's records



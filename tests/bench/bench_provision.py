"""Benchmark: factory provisioning time per device, alone and 8 in parallel.

Each device is what the line runs: one ``pocket-agent provision`` process against its own
virtual modem on a real pty, both passes (keys + CSR offline; then ``--cert`` with one
broker connection to a real mosquitto with TLS). Printed per pass, median and p95 of:

* ``wall``: the process from exec to exit (interpreter start and imports included);
* ``ours``: the run's own total minus its modem phase (``timings_s`` in the record: the
  AT answers and the seed SIM's registration are the modem's latency, not ours).

Goal (issue 13): under 2 s per device excluding modem latency, and 8 parallel runs that
do not slow one another beyond the machine's cores (slowdown <= 8 / cores).

Run: .venv/bin/python tests/bench/bench_provision.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.cloud.certs import sign_csr
from board.virtual.cloud import broker as lab_broker
from board.virtual.cloud.pki import LabPki, create_lab_pki
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig

GOAL_S = 2.0
"""Per device, excluding modem latency (issue 13)."""
PARALLEL = 8
"""Units on one station at once (issue 13)."""
HOST = "127.0.0.1"
CERT_DAYS = 365


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Unit:
    """One device: a virtual modem, a console pty and its own directories."""

    def __init__(self, root: Path, pki: LabPki, broker: str, n: int):
        self.root, self.pki, self.broker = root / f"unit{n}", pki, broker
        self.modem = VirtualModem(ModemConfig(time_scale=FAST_SCALE, imei=f"35693803564{n:04d}"))
        self.modem.start()
        self.console_fds = os.openpty()

    def close(self) -> None:
        self.modem.stop()
        for fd in self.console_fds:
            os.close(fd)

    def provision(self, *extra: str) -> tuple[float, dict]:
        cmd = [sys.executable, "-m", "agent", "provision", "--port", self.modem.path, "--broker", self.broker,
               "--ca", str(self.pki.ca_cert), "--platform-key", str(self.pki.platform_pub),
               "--key-dir", str(self.root / "keys"), "--config", str(self.root / "agent.toml"),
               "--state-dir", str(self.root / "state"), "--console-port", os.ttyname(self.console_fds[1]), *extra]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
        wall = time.monotonic() - t0
        record = json.loads(proc.stdout.splitlines()[-1])
        if proc.returncode != 0:
            raise RuntimeError(f"provisioning failed ({proc.returncode}): {proc.stderr[-500:]}")
        return wall, record

    def both_passes(self) -> dict[str, tuple[float, float]]:
        """{"csr": (wall, ours), "cert": (wall, ours)} for a fresh unit."""
        shutil.rmtree(self.root, ignore_errors=True)
        wall1, rec1 = self.provision("--offline")
        cert = self.root / "cert.pem"
        ca = x509.load_pem_x509_certificate(self.pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.pki.ca_key.read_bytes(), password=None)
        cert.write_bytes(sign_csr(rec1["csr"].encode(), ca_cert=ca, ca_key=ca_key, days=CERT_DAYS,  # type: ignore[arg-type]
                                  now=dt.datetime.now(dt.UTC)))
        wall2, rec2 = self.provision("--cert", str(cert))
        assert rec2["cert"] and all(c["ok"] for c in rec2["selftest"]), rec2["selftest"]

        def ours(rec: dict) -> float:
            return float(rec["timings_s"]["total"] - rec["timings_s"]["modem"])

        return {"csr": (wall1, ours(rec1)), "cert": (wall2, ours(rec2))}


def report(label: str, samples: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Prints the figures; returns {phase: (median wall, median ours)}."""
    out = {}
    for phase in ("csr", "cert"):
        wall = [s[phase][0] for s in samples]
        ours = [s[phase][1] for s in samples]
        print(f"  {label:9} pass {phase:4}: wall median {statistics.median(wall):.3f} s p95 {pct(wall, 0.95):.3f} s"
              f" | ours (excl. modem) median {statistics.median(ours):.3f} s p95 {pct(ours, 0.95):.3f} s")
        out[phase] = (statistics.median(wall), statistics.median(ours))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds (< 1 min)")
    ap.add_argument("--runs", type=int, default=5, help="rounds: each is 1 unit alone, then 8 in parallel")
    args = ap.parse_args()
    runs = 2 if args.quick else args.runs
    if shutil.which("mosquitto") is None and shutil.which("mosquitto", path="/usr/sbin:/sbin") is None:
        print("mosquitto is not installed (make setup installs it)")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp:
        root = Path(tmp)
        pki = create_lab_pki(root / "pki", [], [HOST])
        port = free_port()
        proc = lab_broker.start_broker(root / "broker", pki, HOST, port)
        units = [Unit(root, pki, f"{HOST}:{port}", n) for n in range(PARALLEL)]
        try:
            alone: list[dict[str, tuple[float, float]]] = []
            together: list[dict[str, tuple[float, float]]] = []
            for r in range(runs):
                alone.append(units[0].both_passes())
                with ThreadPoolExecutor(PARALLEL) as pool:
                    together += list(pool.map(Unit.both_passes, units))
                print(f"round {r + 1}/{runs} done", flush=True)
        finally:
            for u in units:
                u.close()
            lab_broker.stop_broker(proc)
    cores = os.cpu_count() or 1
    print(f"\nprovisioning per device, {runs} rounds ({cores} cores; modem time_scale {FAST_SCALE}):")
    a = report("alone", alone)
    p = report(f"{PARALLEL} par.", together)
    allowed = PARALLEL / min(PARALLEL, cores)
    for phase in ("csr", "cert"):
        print(f"  parallel slowdown, pass {phase}: wall {p[phase][0] / a[phase][0]:.2f}x, "
              f"ours {p[phase][1] / a[phase][1]:.2f}x (cores allow up to {allowed:.1f}x)")
    print(f"  goal: under {GOAL_S:.0f} s per device excluding modem latency; slowdown within {allowed:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Over-the-air updates on the lab (issue 26): offer to committed, a bad release to serving
on the old version, and bytes per update.

    sudo .venv/bin/python tests/bench/bench_update.py [--quick] [--runs 5]
    POCKET_LAB_PREFIX=pwhb POCKET_LAB_DIR=/run/pocket-lab-pwhb ... --running   # a lab you brought up

It brings up its own lab (prefix ``pwup``, ``/run/pocket-lab-update``) and takes it down
after; ``--running`` uses the lab named by the environment. Each run cuts a release from
this tree (packaging/release.py, signed with the lab's release key), offers it with
``pocket-lab update`` and reads the agent's status file, its update journal and the
reference cloud's events from outside; nothing inside the agent is timed by the agent.

Prints, median and p95 (over ``--runs`` releases; one in ``--quick``):

- offer -> committed: from the offer handed to the cloud (``pocket-lab update``, about a
  second of its own) to the journal's ``committed`` with the new version running; and to
  the status file showing no update in progress (the outcome reported to the cloud);
- bad release start -> serving on the old version: from the journal's ``trial`` (the
  release is started) to the status file showing the old version serving again, for a
  release that crashes at start (the trial bound does not enter) and, once, for one that
  never serves (the lab's 60 s bound does);
- bytes per update: the artifact, the device's count of the update's messages (the
  ``fetched`` event), and the lab carrier's count for the SIM from offer to committed
  (the restart's reconnect included).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import serialization

from tests.bench.labrun import lab

OWN_LAB = {"POCKET_LAB_PREFIX": "pwup", "POCKET_LAB_DIR": "/run/pocket-lab-update"}
"""The bench's own lab unless --running (it installs releases into the lab's agent)."""
POLL_S = 0.1
"""Status-file polling: the status is refreshed every 2 s and on every state change."""
BOUND_S = 300.0
"""Give up a run after this: an offer commits in seconds and a rollback within the lab's
60 s trial bound plus a restart."""


def release_module() -> Any:
    spec = importlib.util.spec_from_file_location("pocket_release_bench", REPO / "packaging" / "release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Bench:
    def __init__(self, lab_dir: Path, out: Path):
        self.lab_dir, self.out = lab_dir, out
        self.release = release_module()
        self.key = serialization.load_pem_private_key((lab_dir / "pki" / "release.key").read_bytes(), None)
        self.rollout = int(time.time())
        self.minor = 0

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.lab_dir / "agent" / "status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def phase(self) -> str:
        try:
            return str(json.loads((self.lab_dir / "agent/state/update/state.json").read_text()).get("phase"))
        except (OSError, ValueError):
            return "idle"

    def running(self) -> str:
        return str(self.status().get("version", "")).split(" ")[0]

    def serving_on(self, version: str) -> bool:
        status = self.status()
        return (self.running() == version and status.get("state") == "serving"
                and (status.get("update") or {}).get("phase") == "idle")

    def wait(self, what: str, check: Any) -> float:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > BOUND_S:
                raise SystemExit(f"{what}: not within {BOUND_S:.0f} s")
            time.sleep(POLL_S)
        return time.monotonic()

    def cut(self, edit: Any = None) -> tuple[str, Path, Path]:
        self.rollout += 1
        self.minor += 1
        version = f"1.{self.minor}.0"
        artifact, manifest = self.release.cut(self.key, self.out / version, version=version, rollout=self.rollout,
                                              build=f"bench {version}", edit=edit)
        return version, artifact, manifest

    def carrier_bytes(self) -> int:
        iccid = (self.status().get("sim") or {}).get("iccid")
        row = json.loads(lab("usage", "--json")).get(iccid, {}).get("carrier", {})
        return int(row.get("up", 0)) + int(row.get("down", 0))

    def fetched_bytes(self, version: str) -> int:
        path = self.lab_dir / "cloud" / "events.jsonl"
        for line in reversed(path.read_text().splitlines()):
            record = json.loads(line)
            if record.get("kind") == "update":
                data = record["body"]["body"]["data"]
                if data.get("version") == version and data.get("status") == "fetched":
                    return int(data.get("bytes", 0))
        return 0

    def good(self) -> dict[str, float]:
        version, artifact, manifest = self.cut()
        before = self.carrier_bytes()
        start = time.monotonic()
        lab("update", "--artifact", str(artifact), "--manifest", str(manifest))
        committed = self.wait(f"{version} committed", lambda: self.phase() in ("committed", "idle")
                              and self.running() == version)
        end = self.wait(f"{version} reported", lambda: self.serving_on(version))
        return {"seconds": committed - start, "reported": end - start, "artifact": artifact.stat().st_size,
                "device_bytes": self.fetched_bytes(version), "carrier_bytes": self.carrier_bytes() - before}

    def bad(self, kind: str) -> float:
        old = self.running()
        if kind == "crash":
            edit = edit_file("agent/faces/cli/run.py", "def main(args: argparse.Namespace) -> int:\n",
                             "def main(args: argparse.Namespace) -> int:\n    raise RuntimeError('bench: broken')\n")
        else:
            edit = edit_file("agent/core/supervisor.py", 'self.status.update(state="serving")\n',
                             'self.status.update(state="starting")\n')
        version, artifact, manifest = self.cut(edit)
        lab("update", "--artifact", str(artifact), "--manifest", str(manifest))
        start = self.wait(f"{version} on trial", lambda: self.phase() == "trial")
        end = self.wait(f"serving on {old} again", lambda: self.phase() in ("rolled_back", "idle")
                        and self.running() == old and self.status().get("state") == "serving")
        return end - start


def edit_file(path: str, old: str, new: str) -> Any:
    def change(files: dict[str, bytes]) -> dict[str, bytes]:
        return {**files, path: files[path].decode().replace(old, new, 1).encode()}
    return change


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.1f}, p95 {p95:.1f} (n={len(ordered)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one release of each kind")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--running", action="store_true", help="use the lab named by the environment")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_update: needs root (the lab); skipped")
        return 0
    if not args.running:
        os.environ.update(OWN_LAB)
        lab("down")
        lab("up")
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    runs = 1 if args.quick else args.runs
    try:
        bench = Bench(lab_dir, lab_dir / "bench-releases")
        goods = [bench.good() for _ in range(runs)]
        crashes = [bench.bad("crash") for _ in range(max(1, runs // 2))]
        never = bench.bad("never_serving")
    finally:
        if not args.running:
            lab("down")
    print(f"offer -> committed, s:                      {spread([g['seconds'] for g in goods])}")
    print(f"offer -> committed and reported, s:         {spread([g['reported'] for g in goods])}")
    print(f"crashing release start -> serving old, s:   {spread(crashes)}")
    print(f"never-serving release start -> serving old: {never:.1f} s (the lab's trial bound is 60 s)")
    print(f"artifact, bytes:                            {spread([g['artifact'] for g in goods])}")
    print(f"update's messages (device count), bytes:    {spread([g['device_bytes'] for g in goods])}")
    print(f"carrier, offer -> committed, bytes:         {spread([g['carrier_bytes'] for g in goods])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Over-the-air updates on the whole virtual board (issue 26; docs/update.md).

Releases are cut from this tree by packaging/release.py and signed with the lab's release
key; ``pocket-lab update`` shelves them at the reference cloud and offers them. The lab's
agent is the package's code (the checkout): it fetches over its MQTT session, installs
beside itself and restarts into the release, whose trial its guard judges. Bad releases
are edited trees: one that crashes at start, one that never reaches serving. The tests
run in order (rollouts only grow, and each starts from the version the last one left).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.lab.conftest import LAB_DIR, agent_status, cloud_events, event_data, lab, wait_until
from tests.lab.test_lab_usage import exact_cut, since

REPO = Path(__file__).resolve().parents[2]
UPDATE_S = 150.0
"""Offer to committed on the lab: a 0.4 MB fetch over the session (about 12 chunks), the
restart (SIM resumed without touching the radio), and the gate's usage ack; measured well
under a minute, so this is a bound for a loaded machine, not the expected time."""
ROLLBACK_S = 180.0
"""Trial bound in the lab (60 s, ctl.UPDATE_TRIAL_S) + restart into the old version + slack."""
REFUSE_S = 30.0
"""A refusal needs no fetch: the event is out within a second of the offer."""


def _release_module() -> Any:
    spec = importlib.util.spec_from_file_location("pocket_release_lab", REPO / "packaging" / "release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = _release_module()
_rollout = [int(time.time())]


def cut(tmp_path: Path, version: str, **kw: Any) -> tuple[Path, Path]:
    key = kw.pop("key", None) or serialization.load_pem_private_key((LAB_DIR / "pki" / "release.key").read_bytes(),
                                                                      None)
    _rollout[0] += 1
    return release.cut(key, tmp_path / version, version=version, rollout=_rollout[0], build=f"lab {version}", **kw)


def offer(release_files: tuple[Path, Path], *extra: str) -> None:
    lab("update", "--artifact", str(release_files[0]), "--manifest", str(release_files[1]), *extra)


def running() -> str:
    return str(agent_status().get("version", "")).split(" ")[0]


def serving_on(version: str) -> bool:
    status = agent_status()
    return running() == version and status.get("state") == "serving" and (status.get("update") or {}).get(
        "phase") == "idle"


def update_events(version: str, status: str) -> list[dict[str, Any]]:
    return [d for d in event_data("update") if d.get("version") == version and d.get("status") == status]


def edit(path: str, old: str, new: str):
    def change(files: dict[str, bytes]) -> dict[str, bytes]:
        text = files[path].decode()
        assert old in text, f"{path} no longer holds {old!r}"
        return {**files, path: text.replace(old, new, 1).encode()}
    return change


@pytest.fixture(scope="module")
def lab_up(running_lab):
    return running_lab


USAGE: dict[str, Any] = {}
"""The exact cut (cloud + journal pending - carrier) before the first update, for the last test."""
TRAFFIC_S = 20
"""Bulk download through the router while the first update is fetched and installed: the
restart into the release happens under load (short, so no cap is reached and no swap)."""


def test_a_good_release_installs_commits_and_serves(lab_up, tmp_path):
    before = running()
    USAGE["iccid"] = agent_status()["sim"]["iccid"]
    USAGE["before"] = exact_cut(USAGE["iccid"])
    good = cut(tmp_path, "0.2.0")
    lab("traffic", "start", "--kind", "bulk", "--duration", str(TRAFFIC_S))
    try:
        offer(good)
        wait_until("release 0.2.0 committed and serving",
                   lambda: serving_on("0.2.0") and update_events("0.2.0", "committed"), UPDATE_S)
    finally:
        lab("traffic", "stop")
    fetched = update_events("0.2.0", "fetched")[0]
    assert fetched["bytes"] >= good[0].stat().st_size  # the update's own bytes, reported
    assert before != "0.2.0"


def test_a_release_that_crashes_at_start_is_rolled_back(lab_up, tmp_path):
    crashing = cut(tmp_path, "0.3.0", edit=edit("agent/faces/cli/run.py", "def main(args: argparse.Namespace) -> int:\n",
                                                "def main(args: argparse.Namespace) -> int:\n"
                                                "    raise RuntimeError('release 0.3.0 broken at start')\n"))
    offer(crashing)
    wait_until("0.3.0 rolled back", lambda: update_events("0.3.0", "rolled_back"), ROLLBACK_S)
    wait_until("serving on 0.2.0 again", lambda: serving_on("0.2.0"), ROLLBACK_S)
    event = update_events("0.3.0", "rolled_back")[0]
    assert event["reason"].startswith("crashed")
    assert any("broken at start" in line for line in event["log_tail"])


def test_a_release_that_never_serves_is_rolled_back(lab_up, tmp_path):
    stuck = cut(tmp_path, "0.3.1", edit=edit("agent/core/supervisor.py", 'self.status.update(state="serving")\n',
                                             'self.status.update(state="starting")\n'))
    offer(stuck)
    wait_until("0.3.1 rolled back", lambda: update_events("0.3.1", "rolled_back"), ROLLBACK_S)
    wait_until("serving on 0.2.0 again", lambda: serving_on("0.2.0"), ROLLBACK_S)
    assert update_events("0.3.1", "rolled_back")[0]["reason"] == "never_serving"


@pytest.mark.parametrize("case", ["bad_signature", "other_board", "below_floor"])
def test_bad_manifests_are_refused_and_the_agent_keeps_serving(lab_up, tmp_path, case):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    kw = {"bad_signature": {"key": Ed25519PrivateKey.generate()},
          "other_board": {"board_names": ["quectel-ec25-openwrt"]},
          "below_floor": {"floor": "0.5.0"}}[case]
    version = {"bad_signature": "0.4.0", "other_board": "0.4.1", "below_floor": "0.4.2"}[case]
    offer(cut(tmp_path, version, **kw))
    reason = {"bad_signature": "signature", "other_board": "board", "below_floor": "downgrade"}[case]
    wait_until(f"{version} refused", lambda: [e for e in update_events(version, "refused") if e["reason"] == reason],
               REFUSE_S)
    assert serving_on("0.2.0")


def test_an_artifact_whose_bytes_are_not_the_manifests_is_refused(lab_up, tmp_path):
    artifact, manifest = cut(tmp_path, "0.4.3")
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    assert hashlib.sha256(data).hexdigest() != json.loads(manifest.read_text())["sha256"]
    offer((artifact, manifest), "--as-manifest-says")
    wait_until("0.4.3 refused for its hash", lambda: [e for e in update_events("0.4.3", "refused")
                                                      if e["reason"] == "hash"], UPDATE_S)
    wait_until("serving on 0.2.0, no update in progress", lambda: serving_on("0.2.0"), REFUSE_S)


def test_truncated_chunks_are_refused_and_a_new_offer_replaces_the_stuck_one(lab_up, tmp_path):
    offer(cut(tmp_path, "0.4.4"), "--fault", "truncate")
    wait_until("a truncated chunk refused", lambda: [e for e in event_data("error") if e.get("reason") == "update"
                                                     and "truncated" in e.get("detail", "")], REFUSE_S)
    assert serving_on("0.2.0") or agent_status().get("state") == "serving"
    good = cut(tmp_path, "0.4.5")
    offer(good)
    wait_until("0.4.5 committed", lambda: serving_on("0.4.5") and update_events("0.4.5", "committed"), UPDATE_S)
    assert not [e for e in cloud_events("rejected") if "update" in json.dumps(e)]  # every update/get fit the contract


def test_usage_stays_exact_across_every_update_and_rollback(lab_up):
    """Seven offers, two installs, two rollbacks and their restarts (one under load) later,
    the cloud's total plus the journal's pending bytes still equal the carrier's count."""
    assert agent_status()["sim"]["iccid"] == USAGE["iccid"], "no swap was expected during the update tests"
    cut_now = since(USAGE["before"], exact_cut(USAGE["iccid"]))
    assert cut_now["diff"] == {"up": 0, "down": 0}, cut_now
    wait_until("serving on 0.4.5 after the cut's restart", lambda: serving_on("0.4.5"), UPDATE_S)

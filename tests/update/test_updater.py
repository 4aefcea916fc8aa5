"""The daemon's updater (agent/core/updater.py) with a release cut from this tree, its real
download, install and journal, and the cloud played by the hooks: refusals are reported,
the fetch waits on the seed SIM, during a swap and with the allowance low (unless the
release is urgent), and a fetched release is installed and the restart asked for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.core import updater as upd
from agent.faces.console.commands import render_status
from agent.update import chunks, journal, slots


class Cloud:
    """The hooks: a cloud that answers each update/get from the artifact, and flags."""

    def __init__(self, artifact: bytes):
        self.artifact = artifact
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.gets = 0
        self.restarted = asyncio.Event()
        self.seed = self.swapping = self.low = False
        self.updater: upd.Updater | None = None

    def publish(self, leaf: str, body: dict[str, Any]) -> bool:
        assert leaf == upd.GET_LEAF
        self.gets += 1
        piece = self.artifact[body["offset"]:body["offset"] + body["length"]]
        chunk = chunks.encode(body["sha256"], body["offset"], piece, len(self.artifact))
        asyncio.get_running_loop().call_soon(self.updater.on_chunk, chunk)
        return True

    async def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def hooks(self) -> upd.UpdateHooks:
        return upd.UpdateHooks(publish=self.publish, emit=self.emit, connected=lambda: True,
                               swapping=lambda: self.swapping, on_seed=lambda: self.seed,
                               allowance_low=lambda: self.low, restart=self.restarted.set, prove=lambda: None)

    def statuses(self) -> list[tuple[str, str]]:
        return [(d["status"], d.get("reason", "")) for k, d in self.events if k == "update"]


def setup(tmp_path: Path, cut, pinned, **kw) -> tuple[upd.Updater, Cloud, dict[str, Any]]:
    """An updater pinning ``pinned``'s public key, and a release cut with ``kw``."""
    artifact, manifest = cut(**kw)
    cloud = Cloud(artifact.read_bytes())
    updater = upd.Updater(tmp_path / "state", pinned.public_key(), "virtual", cloud.hooks())
    cloud.updater = updater
    return updater, cloud, json.loads(manifest.read_text())


async def settle(cloud: Cloud, until, timeout: float = 30.0) -> None:
    async def wait() -> None:
        while not until():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(wait(), timeout)


def test_an_offer_is_fetched_installed_and_the_restart_asked_for(tmp_path, cut, release_key):
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key)
        task = asyncio.get_running_loop().create_task(updater.run())
        updater.offer("c1", manifest)
        await asyncio.wait_for(cloud.restarted.wait(), 60)
        task.cancel()
        assert cloud.gets == -(-manifest["size"] // chunks.CHUNK_BYTES)
        assert [s for s, _ in cloud.statuses()] == ["offered", "fetched", "installing"]
        fetched = next(d for k, d in cloud.events if d.get("status") == "fetched")
        assert fetched["bytes"] >= manifest["size"]  # base64 and headers on top of the artifact
        state = journal.load(tmp_path / "state")
        assert state.phase == "trial" and slots.tree_version(slots.current_tree(tmp_path / "state")) == "0.2.0"
    asyncio.run(main())


def test_refusals_are_reported_with_their_reason_and_nothing_is_fetched(tmp_path, cut, release_key):
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key, key=Ed25519PrivateKey.generate())
        updater.offer("c1", manifest)
        other = setup(tmp_path / "b", cut, release_key, board_names=["quectel-ec25-openwrt"])[2]
        updater.offer("c2", other)
        await asyncio.sleep(0)
        assert cloud.statuses() == [("refused", "signature"), ("refused", "board")]
        assert [d["reason"] for k, d in cloud.events if k == "error"] == ["update", "update"]
        assert cloud.gets == 0 and journal.load(tmp_path / "state").phase == "idle"
    asyncio.run(main())


def test_the_fetch_waits_on_the_seed_sim_during_a_swap_and_with_the_allowance_low(tmp_path, cut, release_key):
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key)
        cloud.seed = True
        task = asyncio.get_running_loop().create_task(updater.run())
        updater.offer("c1", manifest)
        await settle(cloud, lambda: ("deferred", "seed_sim") in cloud.statuses())
        cloud.seed, cloud.swapping = False, True
        updater._wake.set()
        await settle(cloud, lambda: ("deferred", "swap_in_progress") in cloud.statuses())
        cloud.swapping, cloud.low = False, True
        updater._wake.set()
        await settle(cloud, lambda: ("deferred", "allowance_low") in cloud.statuses())
        assert cloud.gets == 0 and updater.summary()["deferred"] == "allowance_low"
        task.cancel()
    asyncio.run(main())


def test_an_urgent_release_is_fetched_even_on_the_seed_sim(tmp_path, cut, release_key):
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key, urgent=True)
        cloud.seed = cloud.low = True
        task = asyncio.get_running_loop().create_task(updater.run())
        updater.offer("c1", manifest)
        await asyncio.wait_for(cloud.restarted.wait(), 60)
        task.cancel()
        assert not [s for s in cloud.statuses() if s[0] == "deferred"]
    asyncio.run(main())


def test_a_second_offer_while_one_is_installed_waits(tmp_path, cut, release_key):
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key)
        task = asyncio.get_running_loop().create_task(updater.run())
        updater.offer("c1", manifest)
        await asyncio.wait_for(cloud.restarted.wait(), 60)
        task.cancel()
        newer = setup(tmp_path / "b", cut, release_key, version="0.3.0", rollout=2)[2]
        updater.offer("c2", newer)
        assert journal.load(tmp_path / "state").version == "0.2.0"
    asyncio.run(main())


def test_the_console_status_shows_the_version_and_the_update_in_progress():
    base = {"device_id": "d", "state": "serving"}
    lines = render_status({**base, "update": {"running": "0.1.0", "phase": "idle"}})
    assert lines[-1] == "version     0.1.0"
    lines = render_status({**base, "update": {"running": "0.1.0", "phase": "fetching", "version": "0.2.0",
                                              "have": 8192, "size": 390000, "deferred": "seed_sim"}})
    assert lines[-1] == "version     0.1.0; update to 0.2.0: fetching 8192/390000 bytes, waiting (seed_sim)"


def test_an_offer_of_the_running_version_abandons_the_fetch_in_progress(tmp_path, cut, release_key):
    """The platform's abort: offered the version it runs, a device stops fetching."""
    async def main() -> None:
        updater, cloud, manifest = setup(tmp_path, cut, release_key)
        cloud.seed = True  # held before its first chunk
        task = asyncio.get_running_loop().create_task(updater.run())
        updater.offer("c1", manifest)
        await settle(cloud, lambda: ("deferred", "seed_sim") in cloud.statuses())
        stay = setup(tmp_path / "b", cut, release_key, version="0.1.0", rollout=2)[2]
        updater.offer("c2", stay)
        await asyncio.sleep(0)
        task.cancel()
        assert ("refused", "aborted") in cloud.statuses()
        state = journal.load(tmp_path / "state")
        assert state.phase == "idle" and state.rollout == 2
    asyncio.run(main())

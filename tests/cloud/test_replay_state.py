"""Replay protection fails closed (issue 20, finding 6), through the real broker.

The attack: a device's replay state (``replay.json``: the highest envelope seq accepted)
cannot be read after a restart (flash corruption, a directory or a root-owned file in its
place, a state file of the wrong shape). Before the fix ``store.read_json`` turned that
into ``{}``: the high-water mark fell to 0 and, with the clock not yet trusted, any older
signed envelope for this device opened again. Whoever can publish on the device's topics
(the broker operator) answers the device's next request with an envelope it already
accepted, and the device loads a SIM the platform has since given to someone else.

Now the guard is closed: every envelope is refused (``replay_state``, reported upstream)
until a reply carries the platform's floor signed for that very request (docs/protocol.md
4.1); with the floor, the old envelope is a plain ``replay``; the next genuine one opens.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cloud import platformsig, sealing
from agent.cloud.link import CloudLink
from agent.errors import SealError
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until
from tests.cloud.test_sealed_delivery import EvilCloud


def corrupt(path: Path) -> None:
    path.write_bytes(b'{"last_seq": 2, "last_assig\x00\xff')


def a_directory(path: Path) -> None:
    """Every read fails (EISDIR, as EACCES or EIO would), and so does every write: the
    guard stays closed even with a genuine floor, since a floor not on flash is not kept."""
    path.unlink()
    path.mkdir()


def wrong_shape(path: Path) -> None:
    path.write_text('{"last_seq": "2"}')


def replayed_without_floor(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    old = cloud.issued[0]  # the first assignment, accepted by the device long ago
    out = {**reply, "assignment_id": old["assignment_id"], "seq": old["seq"], "envelope": old["envelope"]}
    out.pop("floor", None)
    return out


def replayed_with_the_real_floor(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    return {**replayed_without_floor(cloud, reply), "floor": reply["floor"]}


def requests(cloud: ReferenceCloud) -> list[dict[str, Any]]:
    return [e["body"] for e in cloud.events() if e["kind"] == "assign/request"]


@pytest.mark.parametrize("damage", [corrupt, a_directory, wrong_shape])
def test_an_unreadable_replay_state_refuses_old_envelopes_until_the_cloud_sends_a_floor(
        broker: Broker, pki: LabPki, make_cloud: Callable[..., ReferenceCloud], tmp_path: Path,
        damage: Callable[[Path], None]) -> None:
    cloud = make_cloud(cls=EvilCloud)
    assert isinstance(cloud, EvilCloud)
    state = tmp_path / "agent"

    async def first_life() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=state)
        await link.start()
        try:
            for _ in range(2):  # two assignments accepted: the high-water mark is 2
                good = await link.request_assignment("boot", timeout=10)
                await link.report_assignment_result(good.assignment_id, False, "test: not loaded")
                await until(lambda: not cloud.swaps)
        finally:
            await link.stop()

    async def second_life() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=state)
        assert link.assignments.guard.closed
        await link.start()
        try:
            cloud.mutate = replayed_without_floor
            with pytest.raises(SealError) as err:
                await link.request_assignment("throttled", timeout=10)
            assert err.value.reason == "replay_state"
            assert requests(cloud)[-1].get("need_floor") is True
            await until(lambda: any(e["reason"] == "replay_state" for e in errors(cloud)))
            cloud.mutate = replayed_with_the_real_floor
            with pytest.raises(SealError) as err:
                await link.request_assignment("throttled", timeout=10)
            if damage is a_directory:
                assert err.value.reason == "replay_state" and link.assignments.guard.closed
                return
            assert err.value.reason == "replay", "the floor is in force: the old seq is below it"
            cloud.mutate = None
            fresh = await link.request_assignment("throttled", timeout=10)
            assert fresh.seq > 2 and not link.assignments.guard.closed
            assert "need_floor" not in requests(cloud)[-1]
        finally:
            await link.stop()

    run(first_life())
    damage(state / "replay.json")
    run(second_life())
    if damage is not a_directory:
        assert sealing.ReplayGuard(state / "replay.json").last_seq > 2, "the re-established state is on flash"


# --- the guard and the floor on their own -------------------------------------------

def test_permission_denied_closes_the_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "replay.json"
    sealing.ReplayGuard(path).accept("a-1", 1)

    def denied(self: Path) -> bytes:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    guard = sealing.ReplayGuard(path)
    monkeypatch.undo()
    with pytest.raises(SealError) as err:
        guard.check("a-1", 1)
    assert err.value.reason == "replay_state" and guard.closed_because == "unreadable (Permission denied)"
    with pytest.raises(SealError):
        guard.accept("a-0", 0)


def test_a_missing_file_is_a_fresh_device_and_a_floor_never_lowers_an_open_guard(tmp_path: Path) -> None:
    guard = sealing.ReplayGuard(tmp_path / "replay.json")
    assert not guard.closed and guard.check("a-1", 1) == "new"
    guard.accept("a-5", 5)
    guard.reestablish(2)
    assert guard.last_seq == 5 and guard.check("a-5", 5) == "duplicate"


def test_a_state_that_cannot_be_written_is_not_in_force(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    guard = sealing.ReplayGuard(state / "replay.json")
    state.chmod(0o500)
    (state / "replay.json").mkdir()  # root ignores the mode; a directory in the way does not
    with pytest.raises(SealError) as err:
        guard.accept("a-1", 1)
    assert err.value.reason == "replay_state" and guard.last_seq == 0


def test_a_floor_is_bound_to_the_device_and_the_request() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    floor = platformsig.sign_floor(device_id="dev-a", request_id="r1", seq=41, key=key)
    assert platformsig.verify_floor(floor, device_id="dev-a", request_id="r1", public=key.public_key()) == 41
    for device, request in (("dev-b", "r1"), ("dev-a", "r2")):
        with pytest.raises(Exception, match="signature"):
            platformsig.verify_floor(floor, device_id=device, request_id=request, public=key.public_key())
    with pytest.raises(Exception, match="signature"):
        platformsig.verify_floor({**floor, "seq": 40}, device_id="dev-a", request_id="r1", public=key.public_key())

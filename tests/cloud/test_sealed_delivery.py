"""Bad envelopes delivered for real (broker, link): each refused with a reason, reported
upstream as an error event, and the agent keeps running and accepts the next good one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud import sealing
from agent.cloud.link import CloudLink
from agent.errors import SealError
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until


class EvilCloud(ReferenceCloud):
    """The reference cloud with a hook that corrupts the next assignment replies."""

    mutate: Callable[[EvilCloud, dict[str, Any]], dict[str, Any]] | None = None
    issued: list[dict[str, Any]]

    def _decide(self, device: str, req: dict[str, Any]) -> dict[str, Any]:
        reply = super()._decide(device, req)
        if reply["status"] == "ok":
            self.issued = [*getattr(self, "issued", []), reply]
            if self.mutate is not None:
                reply = self.mutate(self, reply)
        return reply

    def reseal(self, reply: dict[str, Any], **changes: Any) -> dict[str, Any]:
        env = reply["envelope"]
        iccid = self.swaps[reply["assignment_id"]]["iccid"]
        kw: dict[str, Any] = {"device_id": env["device"], "platform_key": self.platform_key,
                              "assignment_id": env["assignment_id"], "seq": env["seq"],
                              "issued_at": env["issued_at"], "expires_at": env["expires_at"]}
        kw.update(changes)
        kw["device_public"] = sealing.load_public_x25519(self.device_keys_dir / kw["device_id"] / "sealing.pub")
        return {**reply, "envelope": sealing.seal(self.profile(iccid), **kw)}


def forged(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    return cloud.reseal(reply, platform_key=Ed25519PrivateKey.generate())


def tampered(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    env = dict(reply["envelope"])
    env["ct"] = ("A" if env["ct"][0] != "A" else "B") + env["ct"][1:]
    return {**reply, "envelope": env}


def replayed(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    old = cloud.issued[0]  # the first assignment, already accepted by the device
    return {**reply, "assignment_id": old["assignment_id"], "seq": old["seq"], "envelope": old["envelope"]}


def expired(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    now = int(cloud.clock.wall())
    return cloud.reseal(reply, issued_at=now - 7200, expires_at=now - 3600)


def wrong_device(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
    return cloud.reseal(reply, device_id="dev-b")


@pytest.mark.parametrize("mutate, reason", [(forged, "signature"), (tampered, "signature"), (replayed, "replay"),
                                            (expired, "expired"), (wrong_device, "wrong_device")])
def test_bad_envelope_is_refused_reported_and_survived(broker: Broker, pki: LabPki,
                                                       make_cloud: Callable[..., ReferenceCloud], tmp_path: Path,
                                                       mutate: Callable[..., Any], reason: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    cloud = make_cloud(cls=EvilCloud)
    assert isinstance(cloud, EvilCloud)

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            for _ in range(2):  # two good assignments first: the device's high-water mark is 2
                good = await link.request_assignment("boot", timeout=10)
                await link.report_assignment_result(good.assignment_id, False, "test: not loaded")
                await until(lambda: not cloud.swaps)
            cloud.mutate = mutate
            with pytest.raises(SealError) as err:
                await link.request_assignment("throttled", timeout=10)
            assert err.value.reason == reason
            await until(lambda: any(e["reason"] == reason for e in errors(cloud)))
            cloud.mutate = None
            again = await link.request_assignment("throttled", timeout=10)
            assert again.seq > 2 and link.connected
        finally:
            await link.stop()
    run(body())
    assert f"({reason})" in caplog.text  # the log says why
    event = next(e for e in errors(cloud) if e["reason"] == reason)
    assert event["topic"] == "pw/v1/dev-a/assignment" and event["assignment_id"].startswith("a-dev-a-")

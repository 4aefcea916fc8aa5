"""A plan update from the reference cloud through the broker (docs/protocol.md 4.3): the
device's inbox hands the checked update to its command callback; an unsigned or a
tampered one is refused with an error event naming the reason. And the cloud flags the
wholesaler contract of a SIM throttled below every cap (3.3, ``no_rule_explains``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.cloud.link import CloudLink
from agent.plans.update import PlanUpdate
from board.virtual.cloud import signer
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until

TOPUP = {"iccid": "8981100000001000019", "update_id": "u-7", "version": 7,
         "credits": [{"id": "topup-7", "kind": "topup", "bytes": 1_000_000_000, "bought": 1_767_225_600}]}


def command(command_id: str, update: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "command_id": command_id, "action": "plan_update", "plan_update": update}


def test_a_plan_update_reaches_the_device_checked_and_a_forged_one_does_not(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    got: list[Any] = []

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        link.on_command(got.append)
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.publish_unchecked("dev-a", "command", command("c-1", TOPUP))  # unsigned
            await until(lambda: [e["reason"] for e in errors(cloud)] == ["signature"])
            signed = signer.sign_plan_update(TOPUP, device_id="dev-a", key=cloud.platform_key)
            tampered = {**signed, "credits": [dict(TOPUP["credits"][0], bytes=10**15)]}
            cloud.publish_unchecked("dev-a", "command", command("c-2", tampered))
            await until(lambda: [e["reason"] for e in errors(cloud)] == ["signature"] * 2)
            cloud.send_command("dev-a", command("c-3", TOPUP))
            await until(lambda: len(got) == 1)
        finally:
            await link.stop()

    run(body())
    update = got[0].plan_update
    assert isinstance(update, PlanUpdate)
    assert (update.iccid, update.version, update.credits[0].bytes) == (TOPUP["iccid"], 7, 1_000_000_000)


def test_a_throttle_no_rule_explains_flags_the_sims_contract(cloud: ReferenceCloud) -> None:
    iccid = next(iter(cloud.pool))
    health = {"state": "throttled", "iccid": iccid, "kbps": 128, "since": None, "rule": None,
              "no_rule_explains": True}
    cloud._on_event("dev-a", {"kind": "health", "data": health})
    assert cloud.sims[iccid]["throttled"] and cloud.sims[iccid]["contract_changed"]
    assert [e["iccid"] for e in cloud.contracts_changed[cloud.pool[iccid]["carrier"]]] == [iccid]
    other = list(cloud.pool)[1]
    cloud._on_event("dev-a", {"kind": "health", "data": {**health, "iccid": other, "rule": "month",
                                                          "no_rule_explains": False}})
    assert cloud.sims[other]["throttled"] and not cloud.sims[other].get("contract_changed")

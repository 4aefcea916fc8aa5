"""The reference cloud's half of issue 23: a request that avoids a carrier never gets one
of its SIMs, several routers' reports take a carrier away from everyone, and its return
moves nobody. The cloud is not started: its decisions are called as the broker's thread
calls them, so no MQTT is needed to judge them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from board.virtual.cloud.carrierwatch import DOWN_REPORTERS, REPORT_TTL_S
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import HOST

B = "44020"


@pytest.fixture
def cloud(pki: LabPki, pool_data: dict[str, Any], tmp_path: Path) -> ReferenceCloud:
    return ReferenceCloud(state_dir=tmp_path / "cloud", host=HOST, port=1, ca_file=pki.ca_cert,
                          cert_file=pki.cloud_cert, key_file=pki.cloud_key, pool=pool_data,
                          platform_key_file=pki.platform_key, device_keys_dir=pki.devices_dir)


def plmn(cloud: ReferenceCloud, iccid: str | None) -> str | None:
    return None if iccid is None else str(cloud.pool[iccid]["plmn"])


def ask(cloud: ReferenceCloud, device: str, avoid: list[str] | None = None) -> dict[str, Any]:
    req: dict[str, Any] = {"request_id": f"r-{device}", "reason": "no_service", "current_iccid": None}
    if avoid is not None:
        req["avoid_plmns"] = avoid
    return cloud._decide(device, req)


def assigned_plmn(cloud: ReferenceCloud, reply: dict[str, Any]) -> str | None:
    aid = reply.get("assignment_id")
    return plmn(cloud, cloud.swaps[aid]["iccid"]) if aid else None


def health(cloud: ReferenceCloud, device: str, state: str, cause: str | None = None) -> None:
    cloud._on_event(device, {"kind": "health", "data": {"state": state, "plmn": B, "iccid": None,
                                                         "evidence": {"cause": cause} if cause else {}}})


def test_an_escape_request_never_gets_a_sim_of_the_carrier_it_avoids(cloud: ReferenceCloud) -> None:
    for _ in range(5):
        reply = ask(cloud, "dev-a", [B])
        assert reply["status"] == "ok" and assigned_plmn(cloud, reply) != B
        cloud._on_result("dev-a", {"assignment_id": reply["assignment_id"], "ok": False})
    every = sorted({s["plmn"] for s in cloud.pool.values()})
    refused = ask(cloud, "dev-a", every)
    assert refused == {"status": "refused", "request_id": "r-dev-a", "reason": "no SIM on another carrier"}


def test_several_routers_reporting_a_carrier_take_it_from_everyone(cloud: ReferenceCloud) -> None:
    for i in range(DOWN_REPORTERS):
        health(cloud, f"rtr-{i}", "no_service", "blackhole")
    assert cloud.carriers.down(cloud.clock.wall()) == {B}
    picks = []
    while (iccid := cloud.pick_sim("dev-b", None)) is not None:
        picks.append(iccid)
        cloud.sims[iccid]["device"] = "someone-else"  # taken: the next pick is another one
    assert picks and all(plmn(cloud, i) != B for i in picks), picks
    for i in range(DOWN_REPORTERS):  # B serves its routers again: its SIMs are the ones left
        health(cloud, f"rtr-{i}", "ok")
    assert plmn(cloud, cloud.pick_sim("dev-b", None)) == B


def test_one_router_alone_does_not_take_a_carrier_from_the_fleet(cloud: ReferenceCloud) -> None:
    health(cloud, "rtr-0", "no_service", "not_registered")
    assert cloud.carriers.down(cloud.clock.wall()) == set()
    assert plmn(cloud, cloud.pick_sim("dev-b", None)) is not None


def test_when_the_carrier_returns_its_sims_are_offered_and_nobody_is_moved(cloud: ReferenceCloud) -> None:
    for i in range(DOWN_REPORTERS):
        health(cloud, f"rtr-{i}", "no_service", "blackhole")
    health(cloud, "rtr-0", "ok")  # one of them serves on B again: below the threshold
    assert cloud.carriers.down(cloud.clock.wall()) == set()
    assert not [e for e in cloud.events() if e.get("kind") == "command"], "no device is commanded back"
    later = cloud.clock.wall() + REPORT_TTL_S
    health(cloud, "rtr-0", "no_service", "blackhole")
    assert cloud.carriers.down(later) == set()  # rtr-1's report has aged out by then


def test_a_misassigning_platform_is_a_lab_control(cloud: ReferenceCloud) -> None:
    """``misassign``: the next escape request gets the carrier it avoids (the device's
    refusal is tested in the lab, tests/lab/test_lab_carriers.py)."""
    cloud.control({"op": "misassign", "count": 1})
    assert assigned_plmn(cloud, ask(cloud, "dev-a", [B])) == B
    assert assigned_plmn(cloud, ask(cloud, "dev-c", [B])) != B

"""The reference cloud reads and writes the contract through its schemas and its own sealer.

No broker: messages go straight into the cloud's handler and what it publishes is caught
on the way out, so each test shows one rule of docs/protocol.md at work in the cloud.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.cloud import platformsig, sealing
from agent.cloud import protocol as proto
from agent.plans.update import parse_update
from board.virtual.cloud.contract import ContractError
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.plans import PLANS as TABLE_PLANS
from board.virtual.cloud.pool import make_pool
from board.virtual.cloud.reference import ReferenceCloud
from board.virtual.network import labclock
from tests.cloud import events

DEVICE = "dev-a"


class Capturing(ReferenceCloud):
    """The reference cloud with its MQTT client replaced by a list of what it sends."""

    sent: list[tuple[str, dict[str, Any]]]

    def publish_unchecked(self, device: str, leaf: str, body: dict[str, Any], props: Properties | None = None,
                          *, topic: str | None = None, retain: bool = False) -> None:
        self.sent.append((topic or proto.topic(device, leaf), json.loads(proto.encode(body))))

    def receive(self, leaf: str, payload: bytes, props: Properties | None = None) -> None:
        msg = mqtt.MQTTMessage(mid=1, topic=proto.topic(DEVICE, leaf).encode())
        msg.payload = payload
        if props is not None:
            msg.properties = props
        with self.lock:
            self._handle(msg)

    def rejections(self) -> list[str]:
        return [e["body"]["reason"] for e in self.events() if e["kind"] == "rejected"]


@pytest.fixture
def cloud(pki: LabPki, tmp_path: Path) -> Capturing:
    c = Capturing(state_dir=tmp_path / "cloud", host="127.0.0.1", port=1, ca_file=pki.ca_cert,
                  cert_file=pki.cloud_cert, key_file=pki.cloud_key, pool=make_pool(4, seed=5),
                  platform_key_file=pki.platform_key, device_keys_dir=pki.devices_dir)
    c.sent = []
    return c


def _request(request_id: str = "r-1") -> tuple[bytes, Properties]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = proto.topic(DEVICE, proto.ASSIGNMENT)
    props.CorrelationData = request_id.encode()
    return proto.encode({"request_id": request_id, "reason": "boot", "current_iccid": None}), props


def test_an_assignment_sealed_by_the_clouds_own_sealer_opens_on_the_device(cloud: Capturing, pki: LabPki) -> None:
    cloud.receive(proto.ASSIGN_REQUEST, *_request())
    [(topic, reply)] = cloud.sent
    assert topic == proto.topic(DEVICE, proto.ASSIGNMENT) and reply["status"] == "ok"
    opened = sealing.open_envelope(reply["envelope"], device_id=DEVICE,
                                   device_key=sealing.load_private_x25519(pki.devices[DEVICE].sealing_key),
                                   platform_public=sealing.load_public_ed25519(pki.platform_pub), now=None)
    assert sealing.profile_to_dict(opened.profile) == cloud.profile_document(opened.profile.iccid)
    assert (opened.assignment_id, opened.seq) == (reply["assignment_id"], reply["seq"])


def test_a_corrupted_ki_still_fits_the_contract_and_differs(cloud: Capturing, pki: LabPki) -> None:
    """The lab's "carrier refuses this Ki" control changes the key, not the message's shape."""
    cloud.corrupt_next = 1
    cloud.receive(proto.ASSIGN_REQUEST, *_request())
    opened = sealing.open_envelope(cloud.sent[0][1]["envelope"], device_id=DEVICE,
                                   device_key=sealing.load_private_x25519(pki.devices[DEVICE].sealing_key),
                                   platform_public=sealing.load_public_ed25519(pki.platform_pub), now=None)
    assert opened.profile.ki.hex() != cloud.profile_document(opened.profile.iccid)["ki"]


@pytest.mark.parametrize("leaf, payload, reason", [
    (proto.STATE, proto.encode({"online": True}), "schema"),
    (proto.STATE, b'{"v": 1, "online": true, "session": NaN}', "malformed"),
    (proto.STATE, b'{"v": 2, "online": true, "session": 1}', "version"),
    (proto.ASSIGN_REQUEST, proto.encode({"request_id": "r-2", "reason": "boot", "current_iccid": "123"}), "schema"),
    (proto.CERT_REQUEST, proto.encode({"request_id": "r-3", "csr": "junk"}), "schema"),
    ("gossip", proto.encode({"hello": 1}), "topic"),
])
def test_a_message_breaking_the_contract_is_refused_counted_and_not_answered(
        cloud: Capturing, leaf: str, payload: bytes, reason: str) -> None:
    cloud.receive(leaf, payload)
    assert cloud.rejections() == [reason] and cloud.rejected == 1
    assert cloud.sent == []


def test_a_record_with_a_bad_body_is_refused_and_still_acknowledged(cloud: Capturing) -> None:
    """docs/protocol.md 3.6: one bad record cannot block the stream."""
    bad = events.health("throttled", "8981100000001000019", imsi=None)  # a throttled report must name the IMSI
    record = {"stream": "event", "seq": 1, "base": 1,
              "body": {"kind": "health", "at": "2026-02-03T14:05:11+09:00", "data": bad}}
    cloud.receive("event/health", proto.encode(record))
    assert cloud.rejections() == ["schema"]
    assert cloud.sent == [(proto.topic(DEVICE, proto.ACK), {"v": 1, "stream": "event", "upto": 1})]


def test_the_cloud_sends_nothing_that_breaks_the_contract(cloud: Capturing) -> None:
    with pytest.raises(ContractError):
        cloud._publish(DEVICE, proto.ACK, {"stream": "gossip", "upto": 1})
    with pytest.raises(ContractError):
        cloud.send_command(DEVICE, {"command_id": "c-1", "action": "selfdestruct"})
    with pytest.raises(ContractError):
        cloud.set_policy(DEVICE, {"version": 3, "max_per_hour": 99})
    assert cloud.sent == []
    cloud.publish_unchecked(DEVICE, proto.ACK, {"stream": "gossip", "upto": 1})  # a test's deliberate breakage
    cloud.send_command(DEVICE, {"command_id": "c-2", "action": "report"})
    assert [body for _, body in cloud.sent] == [{"v": 1, "stream": "gossip", "upto": 1},
                                                {"v": 1, "command_id": "c-2", "action": "report"}]


def test_a_lab_control_breaking_the_contract_is_refused_and_the_cloud_goes_on(cloud: Capturing) -> None:
    """``pocket-lab policy --set max_per_hour=99`` is logged and recorded, not a crash of the
    cloud process's spool loop; the next control still works."""
    cloud.control({"op": "policy", "device": DEVICE, "body": {"version": 1, "max_per_hour": 99}})
    cloud.control({"op": "command", "device": DEVICE, "body": {"command_id": "c-3", "action": "report"}})
    refused = [e for e in cloud.events() if e["kind"] == "refused"]
    assert len(refused) == 1 and "max_per_hour" in refused[0]["body"]["why"]
    assert [body["command_id"] for _, body in cloud.sent] == ["c-3"]


# ---- a shared SIM's bytes in other routers, on lab time -------------------------------------
@pytest.fixture
def table_cloud(pki: LabPki, tmp_path: Path) -> Capturing:
    """The cloud of ``pocket-lab up --plans table``, on a lab clock 72 hours ahead of the host
    (as after the plan lab's 72-hour tests)."""
    labclock.advance(tmp_path, 72 * 3600)
    c = Capturing(state_dir=tmp_path / "cloud", host="127.0.0.1", port=1, ca_file=pki.ca_cert,
                  cert_file=pki.cloud_cert, key_file=pki.cloud_key,
                  pool=make_pool(14, seed=5, plans=list(TABLE_PLANS.values())),
                  platform_key_file=pki.platform_key, device_keys_dir=pki.devices_dir,
                  clock=labclock.LabClock(tmp_path))
    c.sent = []
    return c


def test_an_envelope_is_stamped_on_lab_time_so_the_device_on_lab_time_opens_it(table_cloud: Capturing,
                                                                               pki: LabPki) -> None:
    """The plan lab's 200 kbps SIM after the 72-hour tests: a cloud on the host's clock
    sealed envelopes that had expired 72 lab hours before the device opened them."""
    table_cloud.receive(proto.ASSIGN_REQUEST, *_request())
    [(_, reply)] = table_cloud.sent
    lab_now = time.time() + 72 * 3600
    opened = sealing.open_envelope(reply["envelope"], device_id=DEVICE,
                                   device_key=sealing.load_private_x25519(pki.devices[DEVICE].sealing_key),
                                   platform_public=sealing.load_public_ed25519(pki.platform_pub), now=lab_now)
    assert opened.assignment_id == reply["assignment_id"]
    assert reply["window"]["not_before"] >= lab_now - 60


def test_bytes_used_elsewhere_reach_the_device_as_a_signed_correction(table_cloud: Capturing, pki: LabPki) -> None:
    """``pocket-lab used-elsewhere``: the cloud counts 4.9 GB used on a 5 GB SIM four days
    ago and tells the device holding it what each rule has left now: the month 100 MB, the
    72 hours all of it; the update fits the contract and verifies as the platform's."""
    five = next(i for i, s in table_cloud.pool.items() if s["plan"]["name"] == "5GB-month")
    now = table_cloud.plan_time()
    table_cloud.used_elsewhere(five, 4_900_000_000, now - 96 * 3600, DEVICE, 1)
    [(topic, command)] = table_cloud.sent
    assert topic == proto.topic(DEVICE, proto.COMMAND) and command["action"] == "plan_update"
    verified = platformsig.verify_plan_update(command["plan_update"], device_id=DEVICE,
                                              public=sealing.load_public_ed25519(pki.platform_pub))
    update = parse_update(verified)
    assert update.iccid == five and update.version == 1
    assert update.remaining == {"month": 100_000_000, "72h": 800_000_000}
    assert update.as_of is not None and abs(update.as_of - now) < 60
    table_cloud.sent.clear()
    table_cloud.used_elsewhere(five, 1, now, None, None)  # counted, nobody told
    assert table_cloud.sent == []

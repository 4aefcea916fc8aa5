"""A huge retained message never reaches the device (issue 20, finding 16).

A platform broker may accept far bigger messages than a device does (its limit serves
every client). Before the fix the device's CONNECT named no Maximum Packet Size, so a
retained message of any size on its policy topic, published by anyone allowed to, was
sent to it and buffered whole in paho before the 16 KiB body limit refused it: on a
router with a few MiB free, a way to exhaust memory at every reconnect. Now the device
tells the broker its limit (MQTT 5 Maximum Packet Size) and the broker keeps the
message to itself. Checked here with a real mosquitto whose own limit is 1 MiB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.cloud import protocol as proto
from agent.cloud.link import CloudLink
from board.virtual.cloud import broker as lab_broker
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import HOST, Broker, device_config, free_port, run
from tests.cloud.test_link import until
from tests.conftest import need_tool

BROKER_LIMIT = 1 << 20
"""The big broker's own max_packet_size: room for the huge message."""
HUGE = 256 * 1024


@pytest.fixture
def big_broker(pki: LabPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    need_tool("mosquitto")
    monkeypatch.setattr(lab_broker, "MAX_MESSAGE_BYTES", BROKER_LIMIT)  # the config's max_packet_size
    b = Broker(tmp_path / "broker", pki, HOST, free_port())
    b.start()
    yield b
    b.stop()


def test_a_retained_message_over_the_device_limit_is_never_delivered(big_broker: Broker, pki: LabPki,
                                                                     pool_data: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    cloud = ReferenceCloud(state_dir=tmp_path / "cloud", host=big_broker.host, port=big_broker.port,
                           ca_file=pki.ca_cert, cert_file=pki.cloud_cert, key_file=pki.cloud_key, pool=pool_data,
                           platform_key_file=pki.platform_key, device_keys_dir=pki.devices_dir)
    cloud.start()
    delivered: list[int] = []
    applied: list[dict[str, Any]] = []

    async def body() -> None:
        link = CloudLink(device_config(pki, big_broker), state_dir=tmp_path / "agent")
        deliver = link.inbox.deliver

        def counting(msg: mqtt.MQTTMessage) -> None:
            delivered.append(len(msg.payload))
            deliver(msg)

        link.inbox.deliver = counting  # type: ignore[method-assign]
        link.on_policy(applied.append)
        await link.start()
        try:
            assert await link.wait_connected(5)
            assert cloud._client is not None
            huge = proto.topic("dev-a", proto.POLICY)
            cloud._client.publish(huge, b'{"v": 1, "version": 1, "pad": "' + b"x" * HUGE + b'"}', qos=1, retain=True)
            cloud.set_policy("dev-a", {"version": 2})  # a normal one after it, on the same topic
            await until(lambda: len(applied) == 1)
        finally:
            await link.stop()

    try:
        run(body())
    finally:
        cloud.stop()
    assert max(delivered) < proto.MAX_PACKET_BYTES, f"a {max(delivered)}-byte message reached the device"
    assert applied[0]["version"] == 2

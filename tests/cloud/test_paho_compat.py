"""The paho adapter (agent/cloud/paho_compat.py) on whichever paho is installed; the
packaging tests run this file and test_link.py again under paho-mqtt 1.6.1."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

from agent.cloud import paho_compat


def test_client_is_mqtt5_without_paho_reconnect() -> None:
    client = paho_compat.make_client("dev-a", reconnect_on_failure=False)
    assert client._protocol == mqtt.MQTTv5
    assert client._reconnect_on_failure is False
    paho_compat.set_connect_timeout(client, 15.0)
    assert client._connect_timeout == 15.0


def test_callbacks_get_the_version_2_shape() -> None:
    """Whatever paho calls them with, our callbacks see (client, userdata, flags, reason, props)."""
    client = paho_compat.make_client("dev-a")
    seen: list[tuple[str, Any]] = []
    paho_compat.set_callbacks(
        client,
        on_disconnect=lambda cl, ud, flags, rc, props: seen.append(("disconnect", (rc.is_failure, str(rc)))),
        on_publish=lambda cl, ud, mid, rc, props: seen.append(("publish", (mid, rc.is_failure))),
    )
    # Drive them the way this paho version does internally.
    client._do_on_disconnect(*([mqtt.MQTT_ERR_CONN_LOST] if not paho_compat.PAHO_2 else
                               [False, _reason(0x80)]))
    if paho_compat.PAHO_2:
        client.on_publish(client, None, 7, _reason(0), None)
    else:
        client.on_publish(client, None, 7)
    assert seen[0][0] == "disconnect" and seen[0][1][0] is True
    assert seen[1] == ("publish", (7, False))


def test_reason_from_an_error_number() -> None:
    lost = paho_compat.Reason(mqtt.MQTT_ERR_CONN_LOST)
    assert lost.is_failure and str(lost) == mqtt.error_string(mqtt.MQTT_ERR_CONN_LOST)
    assert not paho_compat.Reason(mqtt.MQTT_ERR_SUCCESS).is_failure


def _reason(value: int) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode  # type: ignore[attr-defined]

    return ReasonCode(PacketTypes.DISCONNECT, identifier=value)


def test_a_short_disconnect_from_the_broker_keeps_its_reason() -> None:
    """A broker's DISCONNECT of one or two bytes (reason code, then an empty property
    length) reaches on_disconnect with its reason: "session taken over" (0x8E) is how the
    link learns its certificate is in use elsewhere. paho 2.x reads it itself; 1.6.1 only
    through paho_compat (it read the reason only when properties followed). This runs on
    2.x in the main suite and on 1.6.1 in ``make test-oldest``: both sides covered."""
    client = paho_compat.make_client("dev-a")
    seen: list[tuple[int, bool]] = []
    paho_compat.set_callbacks(client, on_disconnect=lambda cl, ud, flags, rc, props:
                              seen.append((rc.value, rc.is_failure)))
    for packet in (b"\x8e", b"\x8e\x00", b"\x00", b""):
        client._in_packet.update(command=0xE0, packet=packet, remaining_length=len(packet))
        client._handle_disconnect()
    assert seen == [(0x8E, True), (0x8E, True), (0x00, False), (0x00, False)]

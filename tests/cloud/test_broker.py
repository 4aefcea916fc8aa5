"""The lab broker, for real: TLS only, client certificates from our CA only, ACL per device."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.cloud import paho_compat
from board.virtual.cloud.broker import acl_text, tls_probe
from board.virtual.cloud.pki import LabPki
from tests.cloud.conftest import Broker

WAIT_S = 5.0
"""Loopback round trips take milliseconds; 5 s only bounds a failing test."""


class Client:
    """A synchronous paho client for probing the broker: every wait is on an event. Made
    through agent.cloud.paho_compat, so it runs on paho-mqtt 1.6.1 (make test-oldest) and 2.x."""

    def __init__(self, broker: Broker, cert: Path | None, key: Path | None, cid: str, ca: Path | None = None):
        self.c = paho_compat.make_client(cid)
        self.c.tls_set(ca_certs=str(ca or broker.pki.ca_cert), certfile=str(cert) if cert else None,
                       keyfile=str(key) if key else None)
        self.connected = threading.Event()
        self.suback = threading.Event()
        self.sub_codes: list[Any] = []
        self.messages: list[mqtt.MQTTMessage] = []
        self.got = threading.Condition()
        paho_compat.set_callbacks(self.c, on_connect=lambda *a: self.connected.set(), on_subscribe=self._on_sub,
                                  on_message=self._on_msg)
        self.broker = broker

    def _on_sub(self, client: Any, ud: Any, mid: int, codes: list[Any], props: Any) -> None:
        self.sub_codes = codes
        self.suback.set()

    def _on_msg(self, client: Any, ud: Any, msg: mqtt.MQTTMessage) -> None:
        with self.got:
            self.messages.append(msg)
            self.got.notify_all()

    def connect(self) -> bool:
        self.c.connect(self.broker.host, self.broker.port, 30)
        self.c.loop_start()
        return self.connected.wait(WAIT_S)

    def subscribe(self, topic: str) -> list[Any]:
        self.suback.clear()
        self.c.subscribe(topic, qos=1)
        assert self.suback.wait(WAIT_S)
        return self.sub_codes

    def wait_topic(self, topic: str) -> list[str]:
        with self.got:
            assert self.got.wait_for(lambda: any(m.topic == topic for m in self.messages), WAIT_S)
            return [m.topic for m in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _handshake(broker: Broker, ca: Path, cert: Path | None, key: Path | None) -> None:
    """A bare TLS handshake. TLS 1.2 so a refused client certificate fails the handshake
    itself (TLS 1.3 would report it only on the first read)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection((broker.host, broker.port), timeout=WAIT_S) as raw, \
            ctx.wrap_socket(raw, server_hostname=broker.host) as tls:
        tls.do_handshake()


def test_valid_device_certificate_connects(broker: Broker, pki: LabPki) -> None:
    d = pki.devices["dev-a"]
    c = Client(broker, d.cert, d.key, "dev-a")
    try:
        assert c.connect()
    finally:
        c.close()


def test_refused_without_a_client_certificate(broker: Broker, pki: LabPki) -> None:
    _handshake(broker, pki.ca_cert, pki.devices["dev-a"].cert, pki.devices["dev-a"].key)  # control: accepted
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _handshake(broker, pki.ca_cert, None, None)
    assert tls_probe(pki, broker.host, broker.port)  # the broker itself is fine


def test_refused_with_a_certificate_from_another_ca(broker: Broker, pki: LabPki) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _handshake(broker, pki.ca_cert, pki.foreign_device_cert, pki.foreign_device_key)


def test_device_cannot_subscribe_to_another_devices_tree(broker: Broker, pki: LabPki) -> None:
    """mosquitto 2.0 grants the SUBACK but its ACL never delivers what %u forbids: check delivery."""
    cloud = Client(broker, pki.cloud_cert, pki.cloud_key, "cloud")
    a = Client(broker, pki.devices["dev-a"].cert, pki.devices["dev-a"].key, "dev-a")
    try:
        assert cloud.connect() and a.connect()
        a.subscribe("pw/v1/dev-b/command")
        a.subscribe("pw/v1/+/assignment")
        a.subscribe("pw/v1/dev-a/command")
        cloud.c.publish("pw/v1/dev-b/command", b'{"v":1}', qos=1)
        cloud.c.publish("pw/v1/dev-b/assignment", b'{"v":1}', qos=1)
        cloud.c.publish("pw/v1/dev-a/command", b'{"v":1}', qos=1)  # allowed, published last
        assert a.wait_topic("pw/v1/dev-a/command") == ["pw/v1/dev-a/command"]
    finally:
        a.close()
        cloud.close()


def test_device_cannot_publish_into_another_tree_or_against_direction(broker: Broker, pki: LabPki) -> None:
    observer = Client(broker, pki.cloud_cert, pki.cloud_key, "cloud")
    a = Client(broker, pki.devices["dev-a"].cert, pki.devices["dev-a"].key, "dev-a")
    try:
        assert observer.connect() and a.connect()
        observer.subscribe("pw/v1/#")
        for forbidden in ("pw/v1/dev-b/usage", "pw/v1/dev-b/state", "pw/v1/dev-a/command", "pw/v1/dev-a/ack",
                          "elsewhere/x"):
            a.c.publish(forbidden, b'{"v":1}', qos=1)
        a.c.publish("pw/v1/dev-a/usage", b'{"v":1}', qos=1)  # allowed, sent last on the same connection
        seen = observer.wait_topic("pw/v1/dev-a/usage")
        assert seen == ["pw/v1/dev-a/usage"]
    finally:
        a.close()
        observer.close()


def test_acl_uses_identity_patterns() -> None:
    text = acl_text()
    assert "pattern write pw/v1/%u/usage" in text and "pattern read pw/v1/%u/command" in text
    assert "user cloud\ntopic readwrite pw/v1/#" in text

"""One MQTT connection attempt with a given certificate, to prove it works.

Factory provisioning ends with it ("when online, connect to the broker once"), and
certificate renewal uses it to prove the *new* certificate before switching to it, so a
router never trades a working identity for one the broker refuses. It uses its own
client id (``<device>~probe``): the broker lets it in beside the daemon's live session,
whose id is the bare device id, without kicking that session off.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
"""TCP + TLS + CONNACK over cellular: the same bound as the cloud link's (agent.cloud.link)."""

PROBE_SUFFIX = "~probe"
"""Appended to the device id for the probe's MQTT client id (not a topic level: any
character is allowed in a client id, and the ACL keys on the certificate's CN)."""


@dataclass(frozen=True)
class ConnectResult:
    ok: bool
    detail: str


def connect_once(host: str, port: int, *, ca: Path, cert: Path, key: Path, client_id: str,
                 timeout: float = CONNECT_TIMEOUT_S) -> ConnectResult:
    """Blocking: TLS + CONNACK, then a clean DISCONNECT. Never raises for a refusal."""
    done = threading.Event()
    outcome: list[ConnectResult] = []

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: mqtt.ReasonCode, props: object) -> None:
        outcome.append(ConnectResult(not rc.is_failure, str(rc)))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id + PROBE_SUFFIX, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=False)
    client.on_connect = on_connect
    client.on_disconnect = lambda *a: done.set()
    client.connect_timeout = timeout
    try:
        client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        client.connect(host, port, keepalive=30)
    except (OSError, ValueError) as exc:
        return ConnectResult(False, f"{exc.__class__.__name__}: {exc}")
    client.loop_start()
    try:
        if not done.wait(timeout):
            return ConnectResult(False, f"no CONNACK within {timeout:g} s")
        return outcome[0] if outcome else ConnectResult(False, "connection closed before CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()

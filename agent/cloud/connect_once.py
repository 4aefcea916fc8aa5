"""One MQTT connection attempt with a given certificate, to prove it works.

Factory provisioning ends with it ("when online, connect to the broker once"), and
certificate renewal proves the *new* certificate before switching to it, so a router
never trades a working identity for one the broker refuses.

Two forms. ``connect_once`` is a whole MQTT session (TLS + CONNECT + CONNACK): the factory
runs it when no daemon is connected. A broker that binds client ids to certificates (the
lab's does: ``use_username_as_clientid``) gives that session the certificate's CN as its
id, so beside a live daemon it would take the daemon's session over. Renewal therefore
uses ``tls_accepts``: the TLS handshake with the new certificate, which is where the
broker checks the chain (``require_certificate``), and nothing after it.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from agent.cloud import paho_compat
from agent.cloud.linkconfig import CONNECT_TIMEOUT_S

LOGGER = logging.getLogger(__name__)
# One attempt gets the link's own bound on TCP + TLS + CONNACK over cellular (CONNECT_TIMEOUT_S).

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

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: paho_compat.Reason,
                   props: object) -> None:
        outcome.append(ConnectResult(not rc.is_failure, str(rc)))
        done.set()

    # paho_compat: the same probe on paho-mqtt 1.6.1 (Debian 12, OpenWrt) and 2.x
    client = paho_compat.make_client(client_id + PROBE_SUFFIX, reconnect_on_failure=False)
    paho_compat.set_callbacks(client, on_connect=on_connect, on_disconnect=lambda *a: done.set())
    paho_compat.set_connect_timeout(client, timeout)
    try:
        client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
        client.connect(host, port, keepalive=30)
    except (OSError, ValueError) as exc:
        return ConnectResult(False, f"{exc.__class__.__name__}: {exc}")
    paho_compat.loop_start(client)  # on 1.6.1 a TLS refusal on the first read must not kill its thread
    try:
        if not done.wait(timeout):
            return ConnectResult(False, f"no CONNACK within {timeout:g} s")
        return outcome[0] if outcome else ConnectResult(False, "connection closed before CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()


TLS_SETTLE_S = 0.5
"""After the handshake, how long to wait for a late refusal: under TLS 1.3 a server sends
its verdict on the client certificate after the handshake, within one round trip."""


def tls_accepts(host: str, port: int, *, ca: Path, cert: Path, key: Path,
                timeout: float = CONNECT_TIMEOUT_S) -> ConnectResult:
    """Blocking: does the broker accept ``cert`` at the TLS layer? No MQTT is spoken, so
    no session (and no live session with the same identity) is touched."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.check_hostname = False  # the broker is named by the config, its chain by the pinned CA
    try:
        ctx.load_cert_chain(str(cert), str(key))
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(TLS_SETTLE_S)
            try:
                if tls.recv(1) == b"":
                    return ConnectResult(False, "broker closed the connection after the handshake")
            except TimeoutError:
                pass  # silence: the broker waits for our CONNECT, so it took the certificate
            return ConnectResult(True, f"TLS accepted ({tls.version()})")
    except (OSError, ssl.SSLError, ValueError) as exc:
        return ConnectResult(False, f"{exc.__class__.__name__}: {exc}")

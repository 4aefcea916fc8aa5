"""Client ids are tied to certificates: a device cannot knock another off the broker, and a
second holder of a device's own certificate is reported as a security event."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agent.cloud.link import CloudLink
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_broker import Client

SETTLE_S = 1.5
"""Longer than a takeover takes to show on loopback (one CONNECT, one DISCONNECT)."""


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_another_devices_certificate_cannot_take_our_client_id(broker: Broker, pki: LabPki,
                                                                cloud: ReferenceCloud, tmp_path: Path) -> None:
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            drops = link.stats.drops
            spare = pki.devices["dev-b"]
            for _ in range(3):  # the lab incident: three takeovers in eight seconds
                intruder = Client(broker, spare.cert, spare.key, "dev-a")
                assert intruder.connect()  # it is let in, as dev-b
                await asyncio.sleep(SETTLE_S / 3)
                intruder.c.disconnect()
                intruder.c.loop_stop()
            await asyncio.sleep(SETTLE_S)
            assert link.connected and link.stats.drops == drops
        finally:
            await link.stop()
    run(body())


def test_mosquitto_closes_a_cloned_session_without_telling(broker: Broker, pki: LabPki, cloud: ReferenceCloud,
                                                           tmp_path: Path) -> None:
    """The lab's mosquitto (2.0.11) drops the older of two connections with one certificate
    without an MQTT 5 DISCONNECT: the device sees a plain drop and reconnects."""
    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            mine = pki.devices["dev-a"]
            clone = Client(broker, mine.cert, mine.key, "whatever")
            assert clone.connect()
            await until(lambda: link.stats.drops >= 1)
            clone.c.disconnect()
            clone.c.loop_stop()
            await until(lambda: link.connected)
        finally:
            await link.stop()
    run(body())


class TakeoverBroker:
    """A TLS MQTT 5 endpoint on loopback that does what brokers that implement MQTT 5's
    "session taken over" do (EMQX, HiveMQ, newer mosquitto): its first session ends with
    DISCONNECT reason 0x8E; later sessions are served plainly (CONNACK, SUBACK, PUBACK),
    and every PUBLISH topic is recorded."""

    def __init__(self, pki: LabPki) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
        self.ctx.load_cert_chain(str(pki.broker_cert), str(pki.broker_key))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sessions = 0
        self.topics: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _read_packet(conn: ssl.SSLSocket) -> tuple[int, bytes]:
        head = conn.recv(1)
        if not head:
            raise ConnectionError("closed")
        length, shift = 0, 0
        while True:
            byte = conn.recv(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        return head[0], body

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            with contextlib.suppress(OSError, ConnectionError, IndexError), \
                    self.ctx.wrap_socket(raw, server_side=True) as conn:
                self._session(conn)

    def _session(self, conn: ssl.SSLSocket) -> None:
        self.sessions += 1
        kind, _ = self._read_packet(conn)
        assert kind >> 4 == 1  # CONNECT
        conn.sendall(bytes([0x20, 3, 0, 0, 0]))  # CONNACK: no session present, success, no properties
        while True:
            kind, body = self._read_packet(conn)
            ptype = kind >> 4
            if ptype == 8:  # SUBSCRIBE: grant QoS 1 to each filter
                pid = body[:2]
                count = max(1, body.count(b"pw/v1/"))
                conn.sendall(bytes([0x90, 3 + count]) + pid + b"\x00" + bytes([1] * count))
                if self.sessions == 1:
                    conn.sendall(bytes([0xE0, 2, 0x8E, 0]))  # DISCONNECT: session taken over
                    return
            elif ptype == 3:  # PUBLISH
                tlen = int.from_bytes(body[:2], "big")
                self.topics.append(body[2:2 + tlen].decode())
                if (kind >> 1) & 3:
                    conn.sendall(bytes([0x40, 2]) + body[2 + tlen:4 + tlen])  # PUBACK
            elif ptype == 12:  # PINGREQ
                conn.sendall(bytes([0xD0, 0]))
            elif ptype == 14:
                return

    def close(self) -> None:
        self.sock.close()


def test_session_taken_over_is_reported_once_back(pki: LabPki, tmp_path: Path) -> None:
    stub = TakeoverBroker(pki)
    try:
        async def body() -> None:
            config = replace(device_config(pki, Broker(tmp_path, pki, "127.0.0.1", stub.port)), host="127.0.0.1",
                             port=stub.port)
            link = CloudLink(config, state_dir=tmp_path / "agent")
            await link.start()
            try:
                await until(lambda: "pw/v1/dev-a/event/security" in stub.topics)
                assert stub.sessions >= 2 and link.stats.drops >= 1
            finally:
                await link.stop()
        run(body())
    finally:
        stub.close()
    assert stub.topics.count("pw/v1/dev-a/event/security") >= 1

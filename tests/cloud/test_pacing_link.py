"""The real CloudLink under fleet pacing: CONNACK "server busy" / "connection rate exceeded"
widen its back-off, and the platform's pacing policy is adopted, persisted and bounded.

mosquitto 2.0 never answers CONNACK with 0x89 or 0x9F and has no connection rate limit,
so a tiny TLS front (``BusyFront``) sits before the real mosquitto: it answers the first
connections itself with a refusing CONNACK (five bytes), then pipes every later
connection, untouched, to mosquitto, where the link's session goes live for real.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path

from agent.cloud import pacing
from agent.cloud.link import CloudLink
from agent.cloud.pacing import CONNECTION_RATE_EXCEEDED, SERVER_BUSY
from board.virtual.cloud import ReferenceCloud
from board.virtual.pki import LabPki
from tests.cloud.conftest import HOST, Broker, device_config, run
from tests.cloud.test_link import errors, until

IO_TIMEOUT_S = 5.0
"""Bound on every socket operation of the front: loopback answers in milliseconds."""


def connack(reason: int) -> bytes:
    """MQTT 5 CONNACK: type 2, remaining length 3, no session present, reason, no properties."""
    return bytes([0x20, 0x03, 0x00, reason, 0x00])


def read_packet(conn: ssl.SSLSocket) -> bytes:
    """One MQTT packet (fixed header with variable-length remaining length, then the body)."""
    head = conn.recv(1)
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return head + body


class BusyFront:
    """Loopback TLS front: refuses with ``codes`` in turn, then forwards to the real broker."""

    def __init__(self, pki: LabPki, broker: Broker, codes: list[int]):
        self.codes = list(codes)
        self.broker = broker
        self.refused_at: list[float] = []
        self.forwarded_at: list[float] = []
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(pki.broker_cert, pki.broker_key)
        self.sock = socket.create_server((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(IO_TIMEOUT_S)

    def _serve(self) -> None:
        while not self._stop:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            raw.settimeout(IO_TIMEOUT_S)
            if self.codes:
                self._refuse(raw, self.codes.pop(0))
            else:
                self.forwarded_at.append(time.monotonic())
                upstream = socket.create_connection((self.broker.host, self.broker.port), IO_TIMEOUT_S)
                upstream.settimeout(None)
                raw.settimeout(None)
                for a, b in ((raw, upstream), (upstream, raw)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def _refuse(self, raw: socket.socket, code: int) -> None:
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                packet = read_packet(conn)
                assert packet[0] >> 4 == 1, "expected CONNECT"
                self.refused_at.append(time.monotonic())
                conn.sendall(connack(code))
        except (OSError, AssertionError, IndexError):
            raw.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_busy_and_rate_exceeded_connacks_widen_the_real_links_backoff(broker: Broker, pki: LabPki,
                                                                      tmp_path: Path) -> None:
    front = BusyFront(pki, broker, [SERVER_BUSY, CONNECTION_RATE_EXCEEDED, SERVER_BUSY])
    window, base, cap = 0.05, 0.05, 2.0
    config = device_config(pki, broker, port=front.port, backoff_base=base, backoff_cap=cap,
                           first_delay_max=window)

    async def body() -> CloudLink:
        link = CloudLink(config, state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(15), "the link never reached mosquitto through the front"
        finally:
            await link.stop()
        return link

    try:
        link = run(body())
    finally:
        front.close()
    assert len(front.refused_at) == 3 and len(front.forwarded_at) == 1
    assert link.stats.attempts == 4 and link.stats.connects == 1
    # Each refusal's wait was drawn from the upper half of a doubling ceiling (0.1, 0.2,
    # 0.4 s); plain failures would wait anywhere in [0, 0.05], [0, 0.1], [0, 0.2] s.
    d1, d2, d3 = link.stats.delays[:3]
    assert 2 * base / 2 <= d1 <= 2 * base
    assert 4 * base / 2 <= d2 <= 4 * base
    assert 8 * base / 2 <= d3 <= 8 * base
    assert max(link.stats.delays) <= cap
    gaps = [b - a for a, b in zip(front.refused_at, [*front.refused_at[1:], front.forwarded_at[0]])]
    assert all(g >= d for g, d in zip(gaps, (d1, d2, d3)))  # the broker saw the waits, not just the counters


def test_platform_pacing_is_adopted_persisted_and_a_reckless_one_refused(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    state = tmp_path / "agent"

    async def first_run() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=state)
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.set_policy("dev-a", {"version": 4, "pacing": {"reconnect_window_s": 350, "request_window_s": 60,
                                                                "backoff_cap_s": 600}})
            await until(lambda: link.pacer.policy.version == 4)
            cloud.set_policy("dev-a", {"version": 5, "pacing": {"backoff_cap_s": 1}})  # would hammer
            await until(lambda: any(e["reason"] == "policy_bounds" for e in errors(cloud)))
            assert link.pacer.policy.version == 4 and link.pacer.policy.backoff_cap_s == 600
        finally:
            await link.stop()

    async def after_restart() -> pacing.PacingPolicy:
        return CloudLink(device_config(pki, broker), state_dir=state).pacer.policy

    run(first_run())
    kept = asyncio.run(after_restart())
    assert (kept.version, kept.reconnect_window_s, kept.request_window_s, kept.backoff_cap_s) == (4, 350, 60, 600)

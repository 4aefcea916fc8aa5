"""Fixtures for the cloud tests: a lab PKI, a real mosquitto on loopback, the reference cloud.

Everything listens on 127.0.0.1 on a free port; nothing leaves the machine. Each
broker is a real mosquitto process, stopped by the fixture's finalizer.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from agent.cloud.link import CloudConfig
from board.virtual.cloud import broker as lab_broker
from board.virtual.cloud.pki import LabPki, create_lab_pki
from board.virtual.cloud.pool import make_pool
from board.virtual.cloud.reference import ReferenceCloud
from tests.conftest import need_tool

HOST = "127.0.0.1"
DEVICES = ["dev-a", "dev-b", "dev-c"]
TEST_TIMEOUT_S = 30.0
"""Upper bound for one async test body; each normally finishes in a second or two."""


LISTEN_PORTS = range(10_000, 32_768)
"""Where the test brokers listen: below Linux's ephemeral range (ip_local_port_range, 32768
and up by default), so no outgoing connection on this machine can take a broker's port while
a test has killed the broker and is starting it again on the same port. A port from
``bind(0)`` is an ephemeral one: in that window another process's connection (``make test``
runs two cloud suites at once) or the device's own reconnect (a TCP self-connect to a port
nothing listens on) could take it, and the restarted broker would never see the device. The
broker-restart test failed that way twice in full runs, never alone."""


def free_port() -> int:
    """A port in ``LISTEN_PORTS`` that is free now (chosen at random, tried by binding)."""
    low, _ = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = range(LISTEN_PORTS.start, min(LISTEN_PORTS.stop, low))
    for port in random.Random().sample(ports, 200):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}..{ports.stop - 1} on {HOST} after 200 tries")


def run(coro: Coroutine[Any, Any, Any], timeout: float = TEST_TIMEOUT_S) -> Any:
    """Run one async test body with a deadline (pytest-asyncio is not installed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    return create_lab_pki(tmp_path_factory.mktemp("pki"), DEVICES, [HOST])


@dataclass
class Broker:
    directory: Path
    pki: LabPki
    host: str
    port: int
    proc: Any = None

    def start(self) -> None:
        self.proc = lab_broker.start_broker(self.directory, self.pki, self.host, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            lab_broker.stop_broker(self.proc)

    def kill(self) -> None:
        """Abrupt death: what it held in memory is lost."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def broker(pki: LabPki, tmp_path: Path) -> Iterator[Broker]:
    need_tool("mosquitto")
    b = Broker(tmp_path / "broker", pki, HOST, free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def pool_data() -> dict[str, Any]:
    return make_pool(10, seed=3)


@pytest.fixture
def make_cloud(broker: Broker, pki: LabPki, pool_data: dict[str, Any], tmp_path: Path
               ) -> Iterator[Callable[..., ReferenceCloud]]:
    clouds: list[ReferenceCloud] = []

    def make(**kw: Any) -> ReferenceCloud:
        cls = kw.pop("cls", ReferenceCloud)
        c = cls(state_dir=kw.pop("state_dir", tmp_path / "cloud"), host=broker.host, port=broker.port,
                           ca_file=pki.ca_cert, cert_file=pki.cloud_cert, key_file=pki.cloud_key, pool=pool_data,
                           platform_key_file=pki.platform_key, device_keys_dir=pki.devices_dir, **kw)
        c.start()
        clouds.append(c)
        return c

    yield make
    for c in clouds:
        c.stop()


@pytest.fixture
def cloud(make_cloud: Callable[..., ReferenceCloud]) -> ReferenceCloud:
    return make_cloud()


def device_config(pki: LabPki, broker: Broker, device_id: str = "dev-a", **overrides: Any) -> CloudConfig:
    """A config tuned for tests: short back-off and ack timeout so recovery takes ~a second."""
    d = pki.devices[device_id]
    base = CloudConfig(device_id=device_id, host=broker.host, port=broker.port, ca_file=pki.ca_cert,
                       cert_file=d.cert, key_file=d.key, sealing_key_file=d.sealing_key,
                       platform_key_file=pki.platform_pub, backoff_base=0.1, backoff_cap=0.5,
                       first_delay_max=0.2, ack_timeout=2.0, connect_timeout=3.0, request_attempt=5.0,
                       request_window=0.0)
    return replace(base, **overrides)

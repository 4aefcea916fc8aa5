"""A light rig for the real daemon: ``python -m agent run`` on a virtual modem and a veth.

Lighter than the lab (board/virtual/lab): no carrier namespace, no labd, no services.

- the agent runs in its own network namespace (``pwsg-d<pid>``), so the default route it
  installs is not the host's; its data interface ``wwan0`` is one end of a veth whose
  other end stays in the host namespace with the "carrier" address, where a real
  mosquitto (board/virtual/cloud/broker.py), the reference cloud (in this process) and a
  UDP echo reflector listen;
- the modem is the virtual modem on a pty (board/virtual/modem/device.py), run in this
  process, with a carrier that hands every SIM the same address, so the veth needs no
  re-plumbing across a swap;
- IPv6 is off on both ends and the neighbours are static, so the only packets on the
  veth are the agent's own IP packets: the interface's IP-level byte counts are exactly
  what the agent's journal must hold (plus what the cloud acknowledged).

The modem and the cloud tell the test, through events it can wait on, when the agent is
in the phase a test wants (``StagedModem``, ``SilentCloud``); nothing waits on a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.core.swap import REGISTERED
from agent.usage.journal import UsageJournal
from board.virtual.cloud import broker as lab_broker
from board.virtual.cloud.pki import LabPki, create_lab_pki
from board.virtual.cloud.pool import make_pool
from board.virtual.cloud.reference import ReferenceCloud
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig, NullCarrier
from tests.conftest import REPO

DEVICE_ID = "dev-sg"
_NET = os.getpid() % 4096
"""One /30 per test process, so runs in other worktrees on this machine do not collide."""
CARRIER_ADDR = f"198.19.{128 + _NET // 64}.{4 * (_NET % 64) + 1}"
"""The host end of the veth: broker, reflector and gateway (RFC 2544 space, never routed;
198.19.128.0/18, apart from the other tests' namespaced 198.19.100.0/24 and 198.19.200.0/24)."""
DEVICE_ADDR = f"198.19.{128 + _NET // 64}.{4 * (_NET % 64) + 2}"
PREFIX = 30
SEED_SLOT = 0
"""The board profile's seed slot (the bootstrap SIM)."""
HEADER_BYTES = 14
"""A veth is Ethernet-framed: the board profile's link_header_bytes."""
START_TIMEOUT_S = 60.0
"""From spawn to the phase under test: imports, the modem, the seed SIM, the cloud. About
3 s on an idle machine; the bound is for a machine shared with other test runs."""
EXIT_CHECK_S = 0.25
"""While waiting for a phase, how often to look whether the agent died instead (a crash
should fail the test with its log at once, not after START_TIMEOUT_S)."""
KILL_AFTER_S = 20.0
"""The unit's TimeoutStopSec=20 (packaging/systemd/pocket-agent.service): after it systemd
SIGKILLs, and so does this rig, so a failing test ends."""


class FixedCarrier(NullCarrier):
    """Every SIM gets the same address on the veth, with the host end as its gateway."""

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        return {"address": DEVICE_ADDR, "prefix": PREFIX, "gateway": CARRIER_ADDR, "dns": [], "mtu": 1500}


class StagedModem(VirtualModem):
    """The virtual modem, with events a test waits on instead of sleeping.

    ``searching``: it has just answered a registration query with "not registered", so
    the agent is inside a registration wait. ``hold_after_switch()``: the next switch to a
    vSIM slot also takes the cell away, so a swap stays in its ``attach`` phase:
    ``switched`` is set when that switch arrives and ``held`` when the agent's first
    registration query after it is answered "not registered"."""

    def __init__(self, config: ModemConfig, carrier: NullCarrier):
        super().__init__(config, carrier)
        self.searching = threading.Event()
        self.switched = threading.Event()
        self.held = threading.Event()
        self._hold_switch = False

    def hold_after_switch(self) -> None:
        self._hold_switch = True

    def take_cell(self) -> None:
        """No cell to register on (applied before this returns)."""
        self.call_wait(lambda: self.cmds.set_conditions(replace(self.conditions, registered=False)))

    def give_cell(self) -> None:
        """The cell is back: registration follows, with its URC; no more holds."""
        self._hold_switch = False
        self.call_wait(lambda: self.cmds.set_conditions(replace(self.conditions, registered=True)))

    def _handle(self, line: str) -> None:  # on the modem's thread
        text = line.strip().upper()
        if self._hold_switch and text.startswith("AT+VSIMSEL=") and text != f"AT+VSIMSEL={SEED_SLOT}":
            self.cmds.set_conditions(replace(self.conditions, registered=False))
            self.switched.set()
        super()._handle(line)
        if text.startswith("AT+CEREG?") and self.cmds.stat not in REGISTERED:
            (self.held if self.switched.is_set() else self.searching).set()


class SilentCloud(ReferenceCloud):
    """The reference cloud that takes every assignment request and never answers it (the
    platform is overloaded or its answer is lost); it still acknowledges usage."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.asked = threading.Event()

    def _on_request(self, device: str, msg: Any, body: dict[str, Any]) -> None:
        self.asked.set()


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20).stdout


@dataclass
class Stopped:
    """How one stop went."""

    seconds: float
    """From the signal to the exit, as the service manager sees it."""
    code: int
    said: list[dict[str, str]]
    """What the agent sent on its notify socket, in order."""


class Rig:
    """One device: namespace and veth, broker, modem, reflector, agent config; see the module doc."""

    def __init__(self, tmp: Path):
        tag = str(os.getpid() % 100000)
        self.tmp = tmp
        self.ns = f"pwsg-d{tag}"
        self.host_if = f"pwsgh{tag}"
        self.state = tmp / "state"
        self.status_file = tmp / "status.json"
        self.log = tmp / "agent.log"
        self.notify_path = tmp / "notify"
        self.pki: LabPki | None = None
        self.broker: Any = None
        self.port = 0
        self.modem: StagedModem | None = None
        self.cloud: ReferenceCloud | None = None
        self._reflector: socket.socket | None = None
        self._notify: socket.socket | None = None
        self._silent: socket.socket | None = None
        self.counters_at_start: tuple[int, int] | None = None

    # ---- set-up ------------------------------------------------------------------------
    def up(self) -> None:
        self._network()
        self.pki = create_lab_pki(self.tmp / "pki", [DEVICE_ID], [CARRIER_ADDR])
        self.port = self._free_port()
        self.broker = lab_broker.start_broker(self.tmp / "broker", self.pki, CARRIER_ADDR, self.port)
        self._start_reflector()
        self.modem = StagedModem(ModemConfig(time_scale=FAST_SCALE), FixedCarrier())
        self.modem.start()
        self._write_config()
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))  # a path: the agent is in another netns
        self.counters_at_start = self.ip_bytes()

    def _network(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "wwan0", "netns", self.ns)
        sh("sysctl", "-qw", f"net.ipv6.conf.{self.host_if}.disable_ipv6=1")
        sh("ip", "addr", "add", f"{CARRIER_ADDR}/{PREFIX}", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "-n", self.ns, "link", "set", "wwan0", "up")  # the agent sets it up too; neighbours need it up
        host_mac = json.loads(sh("ip", "-j", "link", "show", self.host_if))[0]["address"]
        dev_mac = json.loads(sh("ip", "-n", self.ns, "-j", "link", "show", "wwan0"))[0]["address"]
        sh("ip", "neigh", "replace", DEVICE_ADDR, "lladdr", dev_mac, "dev", self.host_if, "nud", "permanent")
        sh("ip", "-n", self.ns, "neigh", "replace", CARRIER_ADDR, "lladdr", host_mac, "dev", "wwan0", "nud", "permanent")

    def _free_port(self) -> int:
        with socket.socket() as s:
            s.bind((CARRIER_ADDR, 0))
            return int(s.getsockname()[1])

    def _start_reflector(self) -> None:
        """UDP echo on the carrier side: the swap's reachability check (agent/net/reach.py)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((CARRIER_ADDR, 0))
        self._reflector = sock

        def echo() -> None:
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                    if not data:
                        return  # shut down by down()
                    sock.sendto(data, addr)
                except OSError:
                    return

        threading.Thread(target=echo, name="reflector", daemon=True).start()

    def _write_config(self) -> None:
        assert self.pki and self.modem and self._reflector
        dev = self.pki.devices[DEVICE_ID]
        profile = self.tmp / "board.toml"
        profile.write_text(f"""name = "stop-rig"
at_port = "{self.modem.path}"
baud = 115200
dialect = "virtual"
data_interface = "wwan0"
link_header_bytes = {HEADER_BYTES}
vsim_slots = [1, 2]
seed_slot = {SEED_SLOT}
lan_interface = "lo"                     # no LAN here; the health sampler reads its counters
""")
        (self.tmp / "agent.toml").write_text(f"""device_id = "{DEVICE_ID}"
state_dir = "{self.state}"
board_profile = "{profile}"
status_file = "{self.status_file}"

[cloud]
host = "{CARRIER_ADDR}"
port = {self.port}
ca = "{self.pki.ca_cert}"
cert = "{dev.cert}"
key = "{dev.key}"
sealing_key = "{dev.sealing_key}"
platform_key = "{self.pki.platform_pub}"

[usage]
report_interval_s = 1
flush_interval_s = 60

[health]
reflector = "{CARRIER_ADDR}:{self._reflector.getsockname()[1]}"
""")

    def use_silent_broker(self) -> threading.Event:
        """Point the agent at a broker that takes the TCP connection and never answers the
        TLS handshake (a broker host that hangs); the event is set when the agent connects."""
        listener = socket.socket()
        listener.bind((CARRIER_ADDR, 0))
        listener.listen(4)
        self._silent = listener
        self.port = int(listener.getsockname()[1])
        self._write_config()
        connected = threading.Event()

        def accept() -> None:
            held = []
            while True:
                try:
                    held.append(listener.accept()[0])  # held open, never read: the handshake hangs
                except OSError:
                    for conn in held:
                        conn.close()
                    return  # closed by down()
                connected.set()

        threading.Thread(target=accept, name="silent-broker", daemon=True).start()
        return connected

    def start_cloud(self, cls: type[ReferenceCloud] = ReferenceCloud) -> ReferenceCloud:
        assert self.pki
        self.cloud = cls(state_dir=self.tmp / "cloud", host=CARRIER_ADDR, port=self.port, ca_file=self.pki.ca_cert,
                         cert_file=self.pki.cloud_cert, key_file=self.pki.cloud_key, pool=make_pool(10, seed=3),
                         platform_key_file=self.pki.platform_key, device_keys_dir=self.pki.devices_dir)
        self.cloud.start()
        return self.cloud

    def down(self) -> None:
        if self.cloud is not None:
            self.cloud.stop()
        if self.modem is not None:
            self.modem.stop()
        if self.broker is not None:
            lab_broker.stop_broker(self.broker)
        for sock in (self._reflector, self._notify, self._silent):
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the reflector's recvfrom, so the close frees it
                sock.close()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20, check=False)

    def exec(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.ns, *args)

    # ---- the agent ---------------------------------------------------------------------
    def spawn(self) -> subprocess.Popen[bytes]:
        """``python -m agent run`` in the device namespace, importing this checkout, under a
        systemd-style notify socket."""
        env = dict(os.environ, PYTHONPATH=str(REPO), NOTIFY_SOCKET=str(self.notify_path))
        with open(self.log, "ab") as log:
            return subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, "-m", "agent", "run",
                                     "--config", str(self.tmp / "agent.toml")],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_phase(self, phase: threading.Event, agent: subprocess.Popen[bytes]) -> None:
        """Wait until the modem or the cloud says the agent reached ``phase``; fail at once
        with its log if the agent exits first (the wait is sliced only to see that)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not phase.wait(EXIT_CHECK_S):
            if agent.poll() is not None:
                raise AssertionError(f"the agent exited ({agent.returncode}) before the phase; log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"phase not reached within {START_TIMEOUT_S} s; log:\n{self.log_tail()}")

    def said(self, until: str, timeout: float) -> list[dict[str, str]]:
        """What the agent sent on the notify socket, up to the datagram holding ``until``."""
        assert self._notify is not None
        got: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._notify.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self._notify.recv(4096)
            except TimeoutError:
                break
            got.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
            if until in got[-1]:
                return got
        raise AssertionError(f"no {until} within {timeout} s; got {got}; log:\n{self.log_tail()}")

    def sigterm(self, agent: subprocess.Popen[bytes]) -> Stopped:
        """``systemctl stop``: SIGTERM, then what the service manager sees."""
        t0 = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
            raise AssertionError(f"no exit within TimeoutStopSec ({KILL_AFTER_S} s); log:\n{self.log_tail()}")
        seconds = time.monotonic() - t0
        return Stopped(seconds, code, self.said("STOPPING", timeout=1.0))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_file.read_text())

    def swap_file(self) -> dict[str, Any] | None:
        path = self.state / "swap.json"
        return json.loads(path.read_text()) if path.exists() else None

    # ---- usage -------------------------------------------------------------------------
    def ip_bytes(self) -> tuple[int, int]:
        """IP-level (rx, tx) bytes of the device's wwan0: what the carrier would bill."""
        stats = json.loads(sh("ip", "-n", self.ns, "-s", "-j", "link", "show", "wwan0"))[0]["stats64"]
        rx, tx = stats["rx"], stats["tx"]
        return rx["bytes"] - HEADER_BYTES * rx["packets"], tx["bytes"] - HEADER_BYTES * tx["packets"]

    def moved(self) -> tuple[int, int]:
        """Bytes the interface moved since the rig came up (before the agent's first reading)."""
        assert self.counters_at_start is not None
        now = self.ip_bytes()
        return now[0] - self.counters_at_start[0], now[1] - self.counters_at_start[1]

    def counted(self) -> tuple[int, int]:
        """Bytes the agent counted: from the rig's start to its journal's durable baseline
        (the counter reading its last flush was computed up to)."""
        assert self.counters_at_start is not None
        journal = UsageJournal(self.state / "usage.journal", clock=Clock())
        try:
            base = journal.baseline()
        finally:
            journal.close()
        if base is None:
            return 0, 0
        rx = base.rx_bytes - HEADER_BYTES * base.rx_packets
        tx = base.tx_bytes - HEADER_BYTES * base.tx_packets
        return rx - self.counters_at_start[0], tx - self.counters_at_start[1]

    def accounted(self) -> tuple[int, int]:
        """What the stopped agent accounted for: its journal's records on disk (read afresh,
        so only what was flushed counts) plus what the cloud took in and so let it drop.
        A record the cloud took in whose ack came after the disconnect is in both; the
        cloud de-duplicates by seq, and so does this sum (tests/lab/test_lab_usage.py)."""
        ingested: set[int] = set()
        rx = tx = 0
        if self.cloud is not None:
            ingested = {e["body"]["seq"] for e in self.cloud.events() if e["kind"] == "usage"}
            for sim in self.cloud.totals().values():
                rx, tx = rx + sim["rx_bytes"], tx + sim["tx_bytes"]
        journal = UsageJournal(self.state / "usage.journal", clock=Clock())
        try:
            for seq, body in journal.pending(10**6):
                if seq not in ingested:
                    rx, tx = rx + body["rx_bytes"], tx + body["tx_bytes"]
        finally:
            journal.close()
        return rx, tx


@contextmanager
def rig(tmp: Path) -> Iterator[Rig]:
    r = Rig(tmp)
    try:
        r.up()
        yield r
    finally:
        r.down()

"""Live sampling of the data path: interface counters, active flows, reflector RTT/loss.

These are the adapters under the classifier: each reads one outside thing and returns
plain numbers. ``record`` uses them to write a trace; the supervisor uses the same
``LiveSampler`` to feed the classifier, so what a technician records is exactly what
the daemon sees.

- counters come from sysfs (``/sys/class/net/IF/statistics``), the cheapest read there
  is (no netlink socket, one small file each);
- flows come from conntrack with byte accounting (``conntrack -L -o extended``): a flow
  counts as active when its byte count moved in the last ``FLOW_ACTIVE_SECONDS``. We
  count the SIM's *total* traffic, not single flows (the issue: per-flow detectors
  collapse when several flows share the link);
- RTT and loss come from a UDP echo reflector probed once a second (``UdpEchoProber``).
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.errors import NetError, ParseError
from agent.health.sample import Sample
from agent.modem import parse

LOGGER = logging.getLogger(__name__)

SYSFS_NET = Path("/sys/class/net")

FLOW_ACTIVE_SECONDS = 3.0
"""A flow that moved bytes in the last 3 s is "active": longer than a web page's
think-time gap between objects, shorter than the idle hold of the classifier."""

CONNTRACK_TIMEOUT = 2.0
"""A conntrack dump of a router's few hundred flows takes milliseconds; 2 s means stuck."""

PROBE_LOSS_SECONDS = 2.0
"""A probe unanswered after 2 s is lost: a shaper's queue holds at most ~0.5-1 s (tbf
latency settings, carrier shapers), so a later echo is not waiting, it is gone."""

PROBE_MAGIC = b"PWHP"
RECV_POLL_SECONDS = 0.2
"""How often the receiver thread checks for shutdown; bounds close() to ~0.2 s."""

_PROBE = struct.Struct(">4sId")  # magic, sequence, send time (monotonic)

_CT_KEY = re.compile(r"src=(\S+) dst=(\S+) (?:sport=(\d+) dport=(\d+))?")
_CT_BYTES = re.compile(r"bytes=(\d+)")


def read_counters(ifname: str, root: Path = SYSFS_NET) -> tuple[int, int]:
    """(rx_bytes, tx_bytes) of an interface; a vanished interface reads as NetError."""
    base = root / ifname / "statistics"
    try:
        rx = int((base / "rx_bytes").read_text())
        tx = int((base / "tx_bytes").read_text())
    except (OSError, ValueError) as exc:
        raise NetError(f"cannot read counters of {ifname!r}: {exc}") from exc
    return rx, tx


def parse_conntrack(text: str) -> dict[str, int]:
    """``conntrack -L -o extended`` output -> {flow key: total bytes both ways}.

    Lines without byte accounting (nf_conntrack_acct=0) count 0 bytes; the caller then
    falls back to counting entries.
    """
    flows: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        match = _CT_KEY.search(line)
        if not match:
            continue
        proto = parts[2] if parts[0] in ("ipv4", "ipv6") else parts[0]
        key = f"{proto} {match.group(0)}"
        flows[key] = sum(int(b) for b in _CT_BYTES.findall(line))
    return flows


class FlowCounter:
    """Counts connections that moved data recently, from conntrack's byte accounting."""

    def __init__(self, conntrack: str | None = None, active_seconds: float = FLOW_ACTIVE_SECONDS,
                 ignore: tuple[tuple[str, int], ...] = ()):
        """``ignore``: (host, port) destinations that are the agent's own (the reflector),
        not user flows through the router."""
        self._ignore = tuple(f"dst={h} " for h, _ in ignore), tuple(f"dport={p}" for _, p in ignore)
        self._binary = conntrack or shutil.which("conntrack") or shutil.which(
            "conntrack", path="/usr/sbin:/sbin")
        self._active_seconds = active_seconds
        self._bytes: dict[str, int] = {}
        self._moved_at: dict[str, float] = {}
        self._warned = False

    def dump(self) -> str:
        """Raw conntrack listing ('' when conntrack is missing or fails: logged once)."""
        if self._binary is None:
            self._warn("conntrack not installed; flows read as 0")
            return ""
        try:
            done = subprocess.run([self._binary, "-L", "-o", "extended"], capture_output=True,
                                  text=True, timeout=CONNTRACK_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._warn(f"conntrack failed: {exc}")
            return ""
        return done.stdout

    def _warn(self, message: str) -> None:
        if not self._warned:
            LOGGER.warning("%s", message)
            self._warned = True

    def ignore(self, host: str, port: int) -> None:
        """Also leave out flows to ``host:port`` (the agent's own, e.g. its reflector)."""
        dsts, ports = self._ignore
        self._ignore = (*dsts, f"dst={host} "), (*ports, f"dport={port}")

    def _ignored(self, key: str) -> bool:
        return any(d in key and key.endswith(p) for d, p in zip(*self._ignore))

    def update(self, now: float, text: str | None = None) -> int:
        """Active flows at ``now`` given a fresh dump (``text``; dumped here if None)."""
        flows = parse_conntrack(self.dump() if text is None else text)
        for key in [k for k in flows if self._ignored(k)]:
            del flows[key]
        for key, total in flows.items():
            if total != self._bytes.get(key):
                self._moved_at[key] = now
            self._bytes[key] = total
        for key in list(self._bytes):
            if key not in flows:
                del self._bytes[key]
                self._moved_at.pop(key, None)
        return sum(1 for key in flows if now - self._moved_at.get(key, -1e9) <= self._active_seconds)


class UdpEchoProber:
    """Sends one small UDP datagram per tick to an echo reflector; tracks RTT and loss.

    Echoes are timestamped on arrival by a small receiver thread (a blocking ``recv``
    with a short timeout), so the RTT is the real one and not rounded up to the
    sampling period; ``tick()`` itself never blocks, so a dead reflector never stalls
    the sampling loop.
    """

    def __init__(self, host: str, port: int, clock: object = time):
        self._addr = (host, port)
        self.address = (host, port)
        self._clock = clock
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.settimeout(RECV_POLL_SECONDS)
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}
        self._last_rtt: float | None = None
        self._stop = threading.Event()
        self.sent = 0
        self.lost = 0
        self._thread = threading.Thread(target=self._receive, name="udp-echo-rx", daemon=True)
        self._thread.start()

    def _now(self) -> float:
        return float(self._clock.monotonic())  # type: ignore[attr-defined]

    def tick(self) -> float | None:
        """Expire old probes, send the next; returns the RTT (ms) of the last probe
        answered since the previous tick, or None."""
        now = self._now()
        with self._lock:
            rtt, self._last_rtt = self._last_rtt, None
            for seq, sent in list(self._pending.items()):
                if now - sent > PROBE_LOSS_SECONDS:
                    del self._pending[seq]
                    self.lost += 1
            self._seq += 1
            seq = self._seq
            self._pending[seq] = now
            self.sent += 1
        try:
            self._sock.sendto(_PROBE.pack(PROBE_MAGIC, seq, now), self._addr)
        except OSError as exc:  # unreachable network during an outage: counted lost on expiry
            LOGGER.debug("probe %d not sent: %s", seq, exc)
        return rtt

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(2048)
            except TimeoutError:
                continue
            except OSError as exc:  # ICMP unreachable surfaces here; a closed socket ends us
                if self._sock.fileno() < 0:
                    return
                LOGGER.debug("probe socket: %s", exc)
                self._stop.wait(RECV_POLL_SECONDS)
                continue
            arrived = self._now()
            if len(data) < _PROBE.size:
                continue
            magic, seq, _sent = _PROBE.unpack_from(data)
            with self._lock:
                sent = self._pending.pop(seq, None) if magic == PROBE_MAGIC else None
                if sent is not None:  # else a stranger's datagram or an echo we gave up on
                    self._last_rtt = (arrived - sent) * 1000.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * RECV_POLL_SECONDS + 1)
        self._sock.close()


@dataclass(frozen=True)
class RadioReading:
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    registered: bool = True


class LiveSampler:
    """Puts the adapters together into one ``Sample`` per call."""

    def __init__(self, wan: str, lan: str | None, prober: UdpEchoProber | None,
                 flows: FlowCounter | None, radio: object | None = None,
                 root: Path = SYSFS_NET, clock: object = time):
        self.wan, self.lan = wan, lan
        self.prober, self.flows, self.radio = prober, flows, radio
        if prober is not None and flows is not None:
            # The reflector probe is the agent's own flow, not a user's: counting it would
            # make an idle user look busy (flows >= 1 forever).
            flows.ignore(*prober.address)
        self.root = root
        self._clock = clock

    def sample(self, t: float) -> Sample:
        """Read every source now; ``t`` is stamped on the sample (trace seconds)."""
        wan_rx, wan_tx = read_counters(self.wan, self.root)
        lan_rx, lan_tx = read_counters(self.lan, self.root) if self.lan else (0, 0)
        now = float(self._clock.monotonic())  # type: ignore[attr-defined]
        flows = self.flows.update(now) if self.flows else 0
        rtt = self.prober.tick() if self.prober else None
        radio = self.radio.read() if self.radio is not None else RadioReading()  # type: ignore[attr-defined]
        return Sample(
            t=t, wan_rx_bytes=wan_rx, wan_tx_bytes=wan_tx, lan_rx_bytes=lan_rx,
            lan_tx_bytes=lan_tx, flows=flows, rtt_ms=None if rtt is None else round(rtt, 2),
            probes_sent=self.prober.sent if self.prober else 0,
            probes_lost=self.prober.lost if self.prober else 0,
            rsrp_dbm=radio.rsrp_dbm, rsrq_db=radio.rsrq_db, sinr_db=radio.sinr_db,
            registered=radio.registered,
        )

    def close(self) -> None:
        if self.prober:
            self.prober.close()


AT_READ_TIMEOUT = 1.0
"""+CESQ and +CEREG? answer within ~100 ms on real basebands; 1 s keeps one sampling
second from being eaten by a modem that stopped answering."""

def _answer_line(text: str, prefix: str) -> str | None:
    """The line of an AT answer that carries ``prefix`` (echo, URCs and OK around it)."""
    return next((line.strip() for line in text.splitlines() if line.strip().startswith(prefix)), None)


def parse_cesq(text: str) -> tuple[float | None, float | None]:
    """(rsrp dBm, rsrq dB) from a +CESQ answer, with the modem parsers' 27.007 tables."""
    line = _answer_line(text, "+CESQ:")
    try:
        sig = parse.parse_cesq(line) if line else None
    except ParseError:
        return None, None
    return (sig.rsrp_dbm, sig.rsrq_db) if sig else (None, None)


def parse_cereg_registered(text: str) -> bool | None:
    """Registered (stat 1 home or 5 roaming) from a +CEREG? answer; None if absent."""
    line = _answer_line(text, "+CEREG:")
    try:
        return parse.parse_registration(line).stat in (1, 5) if line else None
    except ParseError:
        return None


class AtRadioReader:
    """Reads RSRP/RSRQ and registration from a modem's AT port (no SINR in 27.007).

    Only for ``record`` on a bench: on the device the supervisor owns the AT port and
    feeds radio values from the modem driver instead.
    """

    def __init__(self, port: str):
        import serial  # pyserial: only needed when an AT port is given

        self._port = serial.Serial(port, 115200, timeout=AT_READ_TIMEOUT)

    def _ask(self, command: str) -> str:
        self._port.reset_input_buffer()
        self._port.write(command.encode() + b"\r")
        deadline = time.monotonic() + AT_READ_TIMEOUT
        buf = b""
        while time.monotonic() < deadline and not re.search(rb"\r\n(OK|ERROR|\+CME ERROR[^\r]*)\r\n", buf):
            buf += self._port.read(self._port.in_waiting or 1)
        return buf.decode(errors="replace")

    def read(self) -> RadioReading:
        rsrp, rsrq = parse_cesq(self._ask("AT+CESQ"))
        registered = parse_cereg_registered(self._ask("AT+CEREG?"))
        return RadioReading(rsrp_dbm=rsrp, rsrq_db=rsrq, registered=registered is not False)

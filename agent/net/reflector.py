"""The UDP echo prober: RTT and loss to a reflector, one small datagram per tick.

An adapter (socket I/O) under the health classifier. Echoes are timestamped on arrival
by a small receiver thread (a blocking ``recv`` with a short timeout), so the RTT is the
real one and not rounded up to the sampling period; ``tick()`` never blocks, so a dead
reflector never stalls the sampling loop.

Every datagram is the user's money: the prober counts the IP bytes it sent and
received (``own_bytes``) so the agent can report what its own curiosity cost, and the
health task only ticks it while there is traffic to judge (``Classifier.wants_traffic_probe``).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

LOGGER = logging.getLogger(__name__)

PROBE_LOSS_SECONDS = 2.0
"""A probe unanswered after 2 s is lost: a shaper's queue holds at most ~0.5-1 s (tbf
latency settings, carrier shapers), so a later echo is not waiting, it is gone."""

PROBE_MAGIC = b"PWHP"
RECV_POLL_SECONDS = 0.2
"""How often the receiver thread checks for shutdown; bounds close() to ~0.2 s."""

IP_UDP_HEADER_BYTES = 28
"""IPv4 (20) + UDP (8) header: what the carrier bills on top of each datagram's payload."""

_PROBE = struct.Struct(">4sId")  # magic, sequence, send time (monotonic)


class UdpEchoProber:
    """Sends one small UDP datagram per tick to an echo reflector; tracks RTT and loss."""

    def __init__(self, host: str, port: int, clock: object = time):
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
        self.bytes_sent = 0
        self.bytes_received = 0
        self._thread = threading.Thread(target=self._receive, name="udp-echo-rx", daemon=True)
        self._thread.start()

    @property
    def own_bytes(self) -> int:
        """IP bytes this prober put on the SIM both ways (headers included)."""
        return self.bytes_sent + self.bytes_received

    def _now(self) -> float:
        return float(self._clock.monotonic())  # type: ignore[attr-defined]

    def tick(self) -> float | None:
        """Expire old probes, send the next; returns the RTT (ms) of the last probe
        answered since the previous tick, or None."""
        now = self._now()
        with self._lock:
            rtt, self._last_rtt = self._last_rtt, None
            self._expire(now)
            self._seq += 1
            seq = self._seq
            self._pending[seq] = now
            self.sent += 1
        try:
            self._sock.sendto(_PROBE.pack(PROBE_MAGIC, seq, now), self.address)
            self.bytes_sent += _PROBE.size + IP_UDP_HEADER_BYTES
        except OSError as exc:  # unreachable network during an outage: counted lost on expiry
            LOGGER.debug("probe %d not sent: %s", seq, exc)
        return rtt

    def idle(self) -> None:
        """A tick without sending (the probe is paused): echoes still in flight are
        expired as usual, so a pause never reads as loss later."""
        with self._lock:
            self._last_rtt = None
            self._expire(self._now())

    def _expire(self, now: float) -> None:
        for seq, sent in list(self._pending.items()):
            if now - sent > PROBE_LOSS_SECONDS:
                del self._pending[seq]
                self.lost += 1

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
            self.bytes_received += len(data) + IP_UDP_HEADER_BYTES
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

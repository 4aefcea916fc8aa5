"""The active check: one bounded download burst from a probe endpoint (socket I/O).

Only run when the passive signals disagree (see agent/health/classifier.py). SIM data
costs money, so every check is capped twice: the classifier's ``PROBE_BYTES`` and
``PROBE_SECONDS`` here per check, and a per-day budget across checks that the caller
keeps durable (``agent.usage.own.OwnTraffic``), so a restart does not reset it.

The endpoint is a TCP server that streams bytes as soon as a client connects (the
virtual board's byte source, board/virtual/network/services.py, sends N bytes after a
``"N\\n"`` request line, which we send; a plain "chargen"-like server ignores it).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from agent.clock import Clock
from agent.errors import NetError

LOGGER = logging.getLogger(__name__)

PROBE_SECONDS = 3.0
"""3 s: enough to pass a policer's initial bucket (typ. 0.5-1 s of tokens) and measure
the rate behind it; short enough that the user barely notices."""

CONNECT_TIMEOUT = 3.0
"""Connecting to the endpoint over a throttled link: a few RTTs of up to ~500 ms."""

SKIP_SECONDS = 0.5
"""The rate is measured after the first 0.5 s, so a policer's bucket burst does not make
a capped SIM look fast."""


@dataclass(frozen=True)
class ProbeMeasurement:
    kbps: float | None
    bytes_used: int
    seconds: float
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def download_burst(host: str, port: int, max_bytes: int, max_seconds: float = PROBE_SECONDS,
                   clock: Clock | None = None) -> ProbeMeasurement:
    """Read at most ``max_bytes`` or for ``max_seconds`` from host:port; the rate is
    measured over the part after ``SKIP_SECONDS``. Raises NetError if it cannot connect."""
    clk = clock or Clock()
    start = clk.monotonic()
    got = 0
    mark: tuple[float, int] | None = None
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
            sock.sendall(f"{max_bytes}\n".encode())
            while got < max_bytes:
                left = max_seconds - (clk.monotonic() - start)
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data = sock.recv(min(65536, max_bytes - got))
                except TimeoutError:
                    break
                if not data:
                    break
                got += len(data)
                if mark is None and clk.monotonic() - start >= SKIP_SECONDS:
                    mark = (clk.monotonic(), got)
    except OSError as exc:
        raise NetError(f"probe endpoint {host}:{port}: {exc}") from exc
    end = clk.monotonic()
    if mark is not None and end - mark[0] > 0.2:
        kbps = (got - mark[1]) * 8 / 1000 / (end - mark[0])
    else:  # done inside the skip period: that alone proves a fast link
        kbps = got * 8 / 1000 / max(end - start, 1e-3)
    return ProbeMeasurement(round(kbps, 1), got, round(end - start, 3))


TCP_IP_OVERHEAD = 1.05
"""IP and TCP headers over payload on a full-size segment (52 of ~1,448 bytes) plus the
handshake and ACKs: what the carrier bills beyond the bytes read."""


def run_check(allowance: int, host: str, port: int, clock: Clock | None = None) -> ProbeMeasurement:
    """One check of at most ``allowance`` bytes; never raises: a failure (or no
    allowance left) is a measurement with kbps None. ``bytes_used`` includes headers."""
    if allowance <= 0:
        LOGGER.warning("active check refused: the day's check budget is spent")
        return ProbeMeasurement(None, 0, 0.0, "budget spent")
    try:
        result = download_burst(host, port, allowance, clock=clock)
    except NetError as exc:
        LOGGER.warning("active check failed: %s", exc)
        return ProbeMeasurement(None, 0, 0.0, str(exc))
    billed = round(result.bytes_used * TCP_IP_OVERHEAD)
    LOGGER.info("active check: %.0f kbps over %d bytes in %.2f s", result.kbps or 0, result.bytes_used,
                result.seconds)
    return ProbeMeasurement(result.kbps, billed, result.seconds, result.reason, result.extra)

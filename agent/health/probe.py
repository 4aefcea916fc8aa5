"""The active check: one bounded download burst from a probe endpoint.

Only run when the passive signals disagree (see classifier.py). SIM data costs money,
so every check is capped twice: ``PROBE_BYTES`` / ``PROBE_SECONDS`` per check, and
``DAILY_BUDGET_BYTES`` per JST day (the plans' day) across checks. The budget state is
reported (``ProbeBudget.report()``) so the platform sees what detection cost.

The endpoint is a TCP server that streams bytes as soon as a client connects (the
virtual board's tracegen server sends bytes after a ``"N\\n"`` request line, which we
send; a plain "chargen"-like server ignores it).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from agent.clock import JST, Clock
from agent.errors import NetError

LOGGER = logging.getLogger(__name__)

PROBE_BYTES = 256 * 1024
"""256 KiB per check: 16 s at 128 kbps would be too long, so the time cap bites first on
a throttled SIM; on an unthrottled 4G link it takes ~0.1-0.5 s, long enough to leave a
throttle rate far behind (PROBE_CONFIRM_FACTOR)."""

PROBE_SECONDS = 3.0
"""3 s: enough to pass a policer's initial bucket (typ. 0.5-1 s of tokens) and measure
the rate behind it; short enough that the user barely notices."""

CONNECT_TIMEOUT = 3.0
"""Connecting to the endpoint over a throttled link: a few RTTs of up to ~500 ms."""

SKIP_SECONDS = 0.5
"""The rate is measured after the first 0.5 s, so a policer's bucket burst does not make
a capped SIM look fast."""

DAILY_BUDGET_BYTES = 4 * 1024 * 1024
"""4 MiB per JST day = 16 full checks: ~0.1 % of a 100 MB / 3 days plan's daily share."""


@dataclass
class ProbeBudget:
    """Per-check and per-JST-day byte budget; ``allow()`` before, ``spend()`` after."""

    clock: Clock
    daily_bytes: int = DAILY_BUDGET_BYTES
    per_check_bytes: int = PROBE_BYTES
    day: str = ""
    used_today: int = 0
    used_total: int = 0
    checks: int = 0
    refused: int = 0

    def _roll(self) -> None:
        today = self.clock.now(JST).date().isoformat()
        if today != self.day:
            self.day, self.used_today = today, 0

    def allow(self) -> int:
        """Bytes the next check may use (0: refused, budget spent)."""
        self._roll()
        left = min(self.per_check_bytes, self.daily_bytes - self.used_today)
        if left <= 0:
            self.refused += 1
            return 0
        return left

    def spend(self, nbytes: int) -> None:
        self._roll()
        self.used_today += nbytes
        self.used_total += nbytes
        self.checks += 1

    def report(self) -> dict[str, Any]:
        self._roll()
        return {"day": self.day, "used_today": self.used_today, "daily_budget": self.daily_bytes,
                "used_total": self.used_total, "checks": self.checks, "refused": self.refused}


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


def run_check(budget: ProbeBudget, host: str, port: int, clock: Clock | None = None) -> ProbeMeasurement:
    """One budgeted check; never raises: a failure is a measurement with kbps None."""
    allowed = budget.allow()
    if allowed <= 0:
        LOGGER.warning("active check refused: daily probe budget spent (%s)", budget.report())
        return ProbeMeasurement(None, 0, 0.0, "budget spent")
    try:
        result = download_burst(host, port, allowed, clock=clock)
    except NetError as exc:
        LOGGER.warning("active check failed: %s", exc)
        budget.spend(0)
        return ProbeMeasurement(None, 0, 0.0, str(exc))
    budget.spend(result.bytes_used)
    LOGGER.info("active check: %.0f kbps over %d bytes in %.2f s (budget %s)", result.kbps or 0,
                result.bytes_used, result.seconds, budget.report())
    return result

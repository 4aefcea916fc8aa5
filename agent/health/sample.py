"""One reading of the data path, about once a second: what the classifier is fed.

The classifier is pure logic (architecture.md: "pure logic is fed samples"), so a
``Sample`` is a plain frozen value with the same columns as a trace CSV row. Byte and
probe columns are *cumulative* counters, exactly as the kernel and the prober keep
them, so a missed second (a gap) loses no bytes: the classifier divides the delta by
the real time between samples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

COLUMNS: tuple[str, ...] = (
    "t",
    "wan_rx_bytes",
    "wan_tx_bytes",
    "lan_rx_bytes",
    "lan_tx_bytes",
    "flows",
    "rtt_ms",
    "probes_sent",
    "probes_lost",
    "rsrp_dbm",
    "rsrq_db",
    "sinr_db",
    "registered",
)
"""The trace CSV header, in order (the issue fixes it: technicians' traces use it)."""


@dataclass(frozen=True)
class Sample:
    """The data path at second ``t`` (seconds from an arbitrary origin, monotonic)."""

    t: float
    wan_rx_bytes: int
    wan_tx_bytes: int
    lan_rx_bytes: int = 0
    lan_tx_bytes: int = 0
    flows: int = 0
    """Connections through the router that moved data in the last few seconds."""
    rtt_ms: float | None = None
    """RTT of the last reflector probe answered in this second; None if none was."""
    probes_sent: int = 0
    probes_lost: int = 0
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    registered: bool = True

    def row(self) -> dict[str, Any]:
        """The CSV row form (None -> empty cell, registered -> 1/0)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                out[f.name] = ""
            elif isinstance(value, bool):
                out[f.name] = int(value)
            elif isinstance(value, float):
                out[f.name] = f"{value:.3f}".rstrip("0").rstrip(".")
            else:
                out[f.name] = value
        return out

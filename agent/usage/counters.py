"""Interface byte/packet counters as one value, and the boot identity they belong to.

Kernel interface counters survive the agent (a SIGKILL does not reset them) but not
the interface (re-created -> new ifindex, counters from zero) nor the boot. So a
reading is only comparable with another when ``ifindex`` and ``boot_id`` match;
this module keeps those together so the meter and the journal never compare
counters of two different lives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
"""Linux's random per-boot UUID: changes on every reboot, stable within one."""


@dataclass(frozen=True)
class Counters:
    """One reading of a WAN interface's 64-bit counters (IFLA_STATS64).

    rx = downlink (bytes received on the WAN interface), tx = uplink. ``boot_id`` is
    filled in by whoever knows it (the meter stamps it on the readings it accepts).
    """

    ifindex: int
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    boot_id: str = ""

    def with_boot_id(self, boot_id: str) -> Counters:
        return replace(self, boot_id=boot_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ifindex": self.ifindex,
            "boot_id": self.boot_id,
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
            "rx_packets": self.rx_packets,
            "tx_packets": self.tx_packets,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Counters:
        """Parse a stored baseline; raises ValueError/KeyError/TypeError on a bad shape."""
        values = {k: d[k] for k in ("ifindex", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets")}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"baseline field {key}={value!r} is not a non-negative int")
        boot_id = d.get("boot_id", "")
        if not isinstance(boot_id, str):
            raise TypeError(f"baseline boot_id={boot_id!r} is not a string")
        return cls(boot_id=boot_id, **values)


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """The current boot's id; "" if unreadable (then reboots are detected by counters only)."""
    try:
        return path.read_text().strip()
    except OSError as exc:
        LOGGER.warning("cannot read boot id from %s: %s", path, exc)
        return ""

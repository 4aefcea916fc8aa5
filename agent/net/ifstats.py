"""Interface byte counters from sysfs: the cheapest read there is (one small file each,
no netlink socket), once a second for the health sampler."""

from __future__ import annotations

from pathlib import Path

from agent.errors import NetError

SYSFS_NET = Path("/sys/class/net")


def read_counters(ifname: str, root: Path = SYSFS_NET) -> tuple[int, int]:
    """(rx_bytes, tx_bytes) of an interface; a vanished interface reads as NetError."""
    base = root / ifname / "statistics"
    try:
        rx = int((base / "rx_bytes").read_text())
        tx = int((base / "tx_bytes").read_text())
    except (OSError, ValueError) as exc:
        raise NetError(f"cannot read counters of {ifname!r}: {exc}") from exc
    return rx, tx


def has_carrier(ifname: str, root: Path = SYSFS_NET) -> bool:
    """Whether the data interface has its carrier (a bearer behind it, on a modem's
    raw-IP interface). An interface that is down reads EINVAL: no carrier. A sysfs without
    the file (a test's fake tree, an odd driver) reads as carrier: nothing is claimed."""
    try:
        return (root / ifname / "carrier").read_text().strip() != "0"
    except FileNotFoundError:
        return True
    except OSError:
        return False

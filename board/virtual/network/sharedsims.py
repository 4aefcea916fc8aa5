"""What a pool SIM did outside this lab's router: bytes it carried in other routers, and the
credits the platform bought for it. The lab carrier counts both (plancarrier.py).

Why: a cloud SIM is shared. A SIM reaches the router with part of its month, its day or
its last 72 hours already used elsewhere, and the platform tells the device so (the
assignment's ``remaining``, or a ``plan_update`` later). A test that had to spend 99.9 GB
through the lab's 50 Mbit/s cell to reach a 100 GB cap would run for hours; with the
bytes used elsewhere it reaches the cap's last megabytes at once, and the carrier, the
cloud and the device count the same bytes, each its own way (``pocket-lab
used-elsewhere``, ``pocket-lab plan-update --topup``).

Kept in the lab directory (``carrier_elsewhere.json``: ``{iccid: [[lab time, bytes], ...]}``;
``carrier_credits.json``: ``{iccid: [{"id", "kind", "bytes", "bought"}, ...]}``), read by
the lab daemon at every cap check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent import store
from board.virtual.network.plancarrier import CarrierMeter

ELSEWHERE_NAME = "carrier_elsewhere.json"
CREDITS_NAME = "carrier_credits.json"


def add_elsewhere(lab_dir: Path, iccid: str, t: float, nbytes: int) -> None:
    """``nbytes`` the SIM carried in another router at lab time ``t``."""
    path = Path(lab_dir) / ELSEWHERE_NAME
    data = store.read_json(path, {}) or {}
    data.setdefault(iccid, []).append([float(t), int(nbytes)])
    store.atomic_write_json(path, data, mode=store.PUBLIC_MODE)


def add_credit(lab_dir: Path, iccid: str, credit: dict[str, Any]) -> None:
    """A credit the platform bought for the SIM (a plan update's ``credits`` element)."""
    path = Path(lab_dir) / CREDITS_NAME
    data = store.read_json(path, {}) or {}
    data.setdefault(iccid, []).append(dict(credit))
    store.atomic_write_json(path, data, mode=store.PUBLIC_MODE)


def load_into(meter: CarrierMeter, lab_dir: Path) -> None:
    """The carrier's view of both files, as they are now."""
    elsewhere = store.read_json(Path(lab_dir) / ELSEWHERE_NAME, {}) or {}
    meter.elsewhere = {iccid: [(float(t), int(n)) for t, n in rows] for iccid, rows in elsewhere.items()}
    meter.credits = store.read_json(Path(lab_dir) / CREDITS_NAME, {}) or {}


def with_elsewhere(counts: dict[str, dict[str, int]], lab_dir: Path) -> dict[str, dict[str, int]]:
    """The carrier's byte counts per SIM (``carrier.read_counters``) with the bytes used
    elsewhere added to the downlink: what the wholesaler bills for the SIM."""
    elsewhere = store.read_json(Path(lab_dir) / ELSEWHERE_NAME, {}) or {}
    out = {iccid: dict(c) for iccid, c in counts.items()}
    for iccid, rows in elsewhere.items():
        row = out.setdefault(iccid, {"up": 0, "down": 0})
        row["down"] = row.get("down", 0) + sum(int(n) for _, n in rows)
    return out

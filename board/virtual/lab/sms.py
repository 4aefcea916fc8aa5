"""``pocket-lab sms``: the lab's carrier sends a text to the SIM the router is using.

Real carriers announce a used-up data cap with a text ("3 GB used; speed now limited to
128 kbps"); the router's modem stores it and says ``+CMTI``. This is that message for the
lab, and the evidence later work can use to detect a throttle without measuring it.

The modem lives in the lab's board process (``labd``); the command line reaches it
through a spool directory: ``pocket-lab sms`` writes one JSON file per message into
``<lab dir>/sms/`` and waits until ``labd`` has delivered it (and removed the file).
``labd`` also queues the cap notice itself when it starts policing a SIM.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from agent import store
from board.virtual.cloud.pool import load_pool
from board.virtual.network import carrier as carrier_mod

LOGGER = logging.getLogger(__name__)

SPOOL = "sms"
"""Directory under the lab dir that holds messages waiting for the modem."""

CARRIER_SENDER = "+819000000200"
"""The carrier's notice number (the virtual network's; it routes nowhere)."""

DELIVERY_TIMEOUT = 10.0
"""Seconds ``pocket-lab sms`` waits for labd to take the message: labd's loop runs every
CAP_CHECK_SECONDS (2 s), so 10 s means labd is not running or is stuck."""
POLL_INTERVAL = 0.1
"""How often the command line looks whether the spool file has gone (a file has no event
this process could wait on without inotify, which the standard library lacks)."""

_counter = itertools.count()


class SmsSink(Protocol):
    def deliver_sms(self, sender: str, text: str) -> int | None: ...


def cap_notice(plan: dict[str, Any] | None) -> str:
    """The text a carrier sends when the cap of ``plan`` is used up."""
    plan = plan or {}
    cap, rate = plan.get("cap_bytes"), plan.get("throttle_kbps")
    used = f"{cap / 1e9:g} GB" if cap else "your data allowance"
    speed = f"{rate} kbps" if rate else "a lower speed"
    return f"You have used {used}. Your speed is now limited to {speed} until the next period."


def queue_sms(lab_dir: Path, sender: str, text: str) -> Path:
    """Put one message in the spool; returns its file (gone once delivered)."""
    spool = lab_dir / SPOOL
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{time.time_ns():020d}-{os.getpid()}-{next(_counter)}.json"
    store.atomic_write_json(path, {"sender": sender, "text": text}, mode=store.PUBLIC_MODE)
    return path


def deliver_pending(lab_dir: Path, modem: SmsSink) -> int:
    """Hand every spooled message to the modem, oldest first; returns how many."""
    spool = lab_dir / SPOOL
    if not spool.is_dir():
        return 0
    delivered = 0
    for path in sorted(spool.glob("*.json")):
        try:
            msg = json.loads(path.read_text())
            sender, text = str(msg["sender"]), str(msg["text"])
        except (OSError, ValueError, KeyError, TypeError):
            LOGGER.warning("unreadable SMS spool file %s dropped", path.name)
            path.unlink(missing_ok=True)
            continue
        index = modem.deliver_sms(sender, text)
        LOGGER.info("carrier: SMS from %s delivered (index %s)", sender, index)
        path.unlink(missing_ok=True)
        delivered += 1
    return delivered


# --- the subcommand ------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", help="message text (default: the cap notice of the SIM in use)")
    parser.add_argument("--sender", default=CARRIER_SENDER, help="originating number")
    parser.add_argument("--timeout", type=float, default=DELIVERY_TIMEOUT, help="seconds to wait for delivery")


def main(args: argparse.Namespace) -> int:
    lab_dir = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
    text = args.text or cap_notice(_current_plan(lab_dir))
    path = queue_sms(lab_dir, args.sender, text)
    deadline = time.monotonic() + args.timeout
    while path.exists():
        if time.monotonic() > deadline:
            path.unlink(missing_ok=True)
            print(f"pocket-lab sms: not delivered within {args.timeout:g} s (is the lab up?)", file=sys.stderr)
            return 1
        time.sleep(POLL_INTERVAL)
    print(f"delivered from {args.sender}: {text}")
    return 0


def _current_plan(lab_dir: Path) -> dict[str, Any] | None:
    """The plan of the SIM with the newest data context at the carrier, if the lab knows."""
    try:
        active = carrier_mod.active_sims(lab_dir / "carrier.json")
        pool = load_pool(lab_dir / "pool.json")
    except (OSError, ValueError, KeyError):
        return None
    if not active:
        return None
    iccid = list(active.values())[-1]["iccid"]
    plans = {sim["iccid"]: sim.get("plan") for _, sim in carrier_mod.pool_sims(pool)}
    return plans.get(iccid)

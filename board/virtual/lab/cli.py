"""``pocket-lab``: start and drive the virtual board. Its command line is a contract
(docs/virtual-board.md): tests outside the project and the cloud team drive it.

Subcommands are implemented in the module that owns each part; see ``SUBCOMMANDS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.cli import dispatch

VERSION = "0.1.0"

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "modem": ("board.virtual.modem.device", "run the virtual modem alone on a pty; prints its path"),
    "broker": ("board.virtual.cloud.broker", "run mosquitto with the lab's TLS CA and per-device ACL"),
    "cloud": ("board.virtual.cloud.reference", "run the reference cloud (SIM pool, assignment, usage)"),
    "events": ("board.virtual.cloud.events", "list what the reference cloud received"),
    "up": ("board.virtual.lab.ctl", "bring the whole lab up; returns once the agent serves"),
    "down": ("board.virtual.lab.ctl", "remove every namespace, process and file the lab made"),
    "status": ("board.virtual.lab.ctl", "print the lab's addresses, files and processes"),
    "throttle": ("board.virtual.lab.ctl", "the current SIM's cap is used up: police it"),
    "traffic": ("board.virtual.lab.ctl", "start or stop load from the LAN host"),
    "usage": ("board.virtual.lab.ctl", "carrier byte counts and cloud totals per SIM"),
    "agent": ("board.virtual.lab.ctl", "restart or kill the lab's agent"),
    "swap": ("board.virtual.lab.ctl", "the reference cloud commands a SIM swap (now or inside --window)"),
    "update": ("board.virtual.lab.ctl", "the reference cloud offers a signed release (docs/update.md)"),
    "policy": ("board.virtual.lab.ctl", "the reference cloud publishes a device policy (--set k=v)"),
    "used-elsewhere": ("board.virtual.lab.ctl", "the SIM in use carried BYTES in other routers (carrier, cloud, device)"),
    "plan-update": ("board.virtual.lab.ctl", "the reference cloud sends a signed plan update (--remaining, --topup)"),
    "sms": ("board.virtual.lab.sms", "the carrier texts the SIM in use (default: its cap notice)"),
    "page": ("board.virtual.lab.page", "the renter's status page as the LAN host gets it (--lang ja, --json)"),
    "console": ("board.virtual.lab.console", "the technician console's cable: unplug, plug, path"),
    "clock": ("board.virtual.lab.ctl", "show lab time, or move it forward (--advance S, --to ISO)"),
    "fault": ("board.virtual.lab.ctl", "inject a fault (modem, network, platform, device); `fault clear` undoes"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pocket-lab`` console script."""
    return dispatch("pocket-lab", VERSION, SUBCOMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())

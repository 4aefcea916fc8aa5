"""``pocket-lab console unplug|plug|path``: the technician's cable in the lab.

labd holds the cable (board/virtual/network/cable.py): a pty pair whose device end the agent
serves (``[console] ports`` in the lab's agent.toml) and whose technician end
(``console.pty`` in the lab directory, reported by ``pocket-lab status --json`` as
``console.pty``) a terminal program opens. ``unplug`` pulls the cable (the device end
vanishes, as a USB gadget tty does), ``plug`` puts it back.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from board.virtual.lab import ctl as labctl

DEVICE_END = "console-device.pty"
TECHNICIAN_END = "console.pty"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["unplug", "plug", "path"])


def main(args: argparse.Namespace) -> int:
    if args.action == "path":
        print(labctl.LAB_DIR / TECHNICIAN_END)
        return 0
    pid = labctl._pid("labd")
    if pid is None:
        print("pocket-lab console: no lab is up (labd is not running)", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGUSR1 if args.action == "unplug" else signal.SIGUSR2)
    print(f"console cable {args.action}ged")
    return 0

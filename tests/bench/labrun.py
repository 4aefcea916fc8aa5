"""What the lab benches share: ``pocket-lab`` run as a process from the repository root.

The benches that bring up a lab of their own (bench_own_bytes, bench_uplink_policing)
drive it exactly as a user does, through the command line; its namespace prefix and lab
directory come from the environment (``POCKET_LAB_PREFIX``, ``POCKET_LAB_DIR``), which
each bench sets to its own before the first call.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_TIMEOUT_S = 240.0
"""``pocket-lab up`` on a busy 2-core machine: PKI, namespaces, broker, cloud, modem, agent."""


def lab(*args: str, timeout: float = LAB_TIMEOUT_S) -> str:
    """Run ``pocket-lab ARGS``; its stdout, or SystemExit with the end of its stderr."""
    done = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"pocket-lab {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout

"""``make bench``: run every benchmark and print its figures beside its goal.

Benchmarks measure; they never pass or fail a build (speed on a shared 2-core machine is
a figure to read, not an assertion). ``QUICK=1 make bench`` runs the short versions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("AT round trips over the pty (issue 2: median overhead < 1 ms)", "bench_at.py"),
    ("reconnect storm, 500 cloud links (issue 3: peak < 2x mean, no wait > cap)", "bench_reconnect.py"),
    ("journal flash writes and metering cost (issue 4: < 1 MB/day, loss <= 60 s)", "bench_journal.py"),
    ("throttle detection over the trace library (issue 5: median < 10 s, worst < 20 s)", "bench_detection.py"),
    ("swap break, throttle to full speed, cloud back (issue 8: p95 < modelled + 150 ms; median < 20 s)",
     "bench_swap.py"),
    ("factory provisioning, 1 and 8 units in parallel (issue 13: < 2 s each excl. modem)", "bench_provision.py"),
    ("footprint by import and serving, venv and Debian 12 (issue 19: RSS < 40 MB, flat; issue 14: idle CPU < 0.5 %)",
     "bench_footprint.py"),
    ("100,000 simulated devices vs 2020, real links vs the model (issue 15: load <= capacity)", "bench_fleet.py"),
    ("technician console: loop jitter under a garbage flood, status round trip (issue 12: p95 change < 5 ms)",
     "bench_console.py"),
    ("renter's status page: weight, loop under abuse, LAN latency, RSS on/off (issue 25: < 30 kB, < 2 MB)",
     "bench_page.py"),
    ("the agent's own bytes on an idle router, at the lab carrier (issue 10: < 0.5 MB/day)", "bench_own_bytes.py"),
    ("plans: throttled s per cap event, allowance error, own bytes a day per plan (issue 22: 0 s per known rule)",
     "bench_plans.py"),
    ("uplink under policing: device count vs carrier count (issue 10, docs/usage.md)", "bench_uplink_policing.py"),
    ("under real systemd: root image cold and cached, start to READY=1 (median of 5), RSS after 10 swaps (issue 19)",
     "bench_system.py"),
    ("escaping a dead carrier over the seed SIM: failure to serving on another carrier, own bytes (issue 23)",
     "bench_escape.py"),
    ("the lab's traffic model on loopback: stream rates vs bitrate (issue 21: within 20 %)", "bench_traffic.py"),
    (("over-the-air update: offer to committed (median of 5), bad release to serving the old version, bytes "
     "per update (issue 26)"), "bench_update.py"),
    ("a rollout to 100,000 routers in waves: peak broker load, time to 99 %, a bad release's canary (issue 26)",
     "bench_rollout.py"),
    ("the host-side USIM's share of an APDU's answer, power-up reads and AUTHENTICATE (issue 24: vs T=0's 1 s)",
     "bench_usim.py"),
    ("the remote-SIM path over a pty: card reset to registered, answer times (issue 24: vs the module's 1 s)",
     "bench_rsim.py"),
]


def main() -> int:
    quick = ["--quick"] if os.environ.get("QUICK") else []
    worst = 0
    for title, script in BENCHES:
        print(f"\n=== {title}\n", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *quick], cwd=HERE.parent.parent)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())

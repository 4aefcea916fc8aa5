"""The README's first command, ``make run``, run whole as a newcomer runs it (issue 19).

It once crashed 30-50 s in on every run, and no test ran it. This test runs the real
``make run`` (venv check, the lab brought up, traffic, the cap used up, the loop closed,
the lab taken down) with ``DEMO_SECONDS`` so it ends by itself, in a lab of its own
(prefix and directory) so it can run beside the lab tests, and reads its output as a
viewer does: the throttle sentence, the cloud marking that SIM, the swap away from it
with each phase, traffic back at full speed on the new SIM, exit 0, nothing on stderr.
"""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import REPO, need_root, need_tool

DEMO_SECONDS = 70
"""Cap at 10 s, then detection (~9 s in the lab), the report, the swap (~6 s) and a few
seconds at full speed: about 30 s of story, with room for a busy 2-core machine."""
CAP_AFTER_S = 10
RUN_TIMEOUT_S = 600
"""Lab up and down take about 15 s each; ten times the whole run's modelled length."""
LAB_ENV = {"POCKET_LAB_PREFIX": "pwdm", "POCKET_LAB_DIR": "/run/pocket-lab-demo"}


def first(lines: list[str], pattern: str, after: int = -1) -> tuple[int, re.Match[str]]:
    """Index and match of the first line after ``after`` matching ``pattern``."""
    for i, line in enumerate(lines):
        if i > after and (m := re.search(pattern, line)):
            return i, m
    raise AssertionError(f"make run never said /{pattern}/ after line {after}:\n" + "\n".join(lines))


def test_make_run_tells_the_whole_story_and_exits_cleanly() -> None:
    need_root()
    for tool in ("make", "mosquitto", "nft", "tc"):
        need_tool(tool)
    env = dict(os.environ, DEMO_SECONDS=str(DEMO_SECONDS), DEMO_CAP_AFTER=str(CAP_AFTER_S), **LAB_ENV)
    proc = subprocess.run(["make", "-s", "run"], cwd=REPO, env=env, text=True, capture_output=True,
                          timeout=RUN_TIMEOUT_S, check=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, f"make run exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.strip() == "", f"make run wrote to stderr:\n{proc.stderr}"

    first(lines, r"the renter's status page: http://198\.18\.2\.1/ from the LAN namespace \S+-lan")  # issue 25
    cap, _ = first(lines, r"the SIM's cap is used up at the carrier: (\d+)")
    throttled, m = first(lines, r"SIM \.\.\.(\d{4}) throttled at \d+ kbps \(.+\); reported to the cloud", cap)
    sim = m.group(1)
    first(lines, rf"the cloud marked SIM \.\.\.{sim} throttled", cap)
    swap, m = first(lines, rf"swapped SIM \.\.\.{sim} -> \.\.\.(\d{{4}}): \d+\.\d s without data "
                           r"\(switch \d+\.\d s, attach \d+\.\d s, data \d+\.\d s\)", throttled)
    new_sim = m.group(1)
    assert new_sim != sim
    first(lines, rf"traffic is back at full speed on SIM \.\.\.{new_sim}", swap)
    status = [line for line in lines if re.match(r"\s*\d+s ", line)]
    assert status and all(len(line) <= 100 for line in status), "a status line overflows 100 columns"
    assert lines[-1] == "lab down", "the lab was not taken down"

"""The health gate: does the version on trial keep the router's promises? (pure)

RAUC marks a slot good after boot and Mender commits an artifact once the new system
says so; here the **old** code (the package's, boot.py's trial guard) judges the new one
from the outside, from the status file the new version writes (agent/core/status.py), so
a release cannot commit itself by a bug in its own gate. The promises, all within
``TRIAL_BOUND_S`` of the new version's start:

- it serves (``state`` is ``serving``: the modem, a SIM and the data path are up);
- its cloud link is up (``cloud.connected``);
- the platform acknowledged at least one usage report it sent (``cloud.usage_acks``): the
  money path works end to end, not just the socket;
- it is alive: the status file, refreshed every 2 s by the serving loop, is never older
  than ``HANG_S`` (a hung loop stops refreshing it; systemd's watchdog kills it too).

Otherwise, or if it exits before the gate passed, it is rolled back (``Verdict.reason``
names the promise it broke, for the report and the cloud's abort rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRIAL_BOUND_S = 240.0
"""The new version's start-up waits for registration (90 s bound) and the cloud; resuming
the SIM the old version left up takes about 5 s in the lab and a first report goes up
within the report interval (60 s). 240 s covers a slow attach and one missed report
while keeping a broken release's outage for the renter under five minutes."""
HANG_S = 30.0
"""The status file is refreshed every 2 s (agent/core/supervisor.py STATUS_EVERY) and the
unit's watchdog is 30 s: a file older than that is a hung agent."""


@dataclass(frozen=True)
class Verdict:
    """``commit``, ``wait`` or ``rollback`` (with ``reason``: crashed, never_serving,
    no_cloud, no_usage_ack, hung)."""

    action: str
    reason: str = ""


WAIT = Verdict("wait")
COMMIT = Verdict("commit")


def judge(status: dict[str, Any], *, elapsed_s: float, exited: int | None, now: float, pid: int,
          bound_s: float = TRIAL_BOUND_S, hang_s: float = HANG_S) -> Verdict:
    """The verdict on a trial ``elapsed_s`` after the new version started (process ``pid``).

    ``status`` is the status file as last read ({} if none), ``exited`` the process's exit
    status if it ended (a negative number: killed by that signal), ``now`` the wall time
    the status file's ``updated`` is compared with."""
    if exited is not None:
        return Verdict("rollback", f"crashed (exit {exited})" if exited >= 0 else f"killed (signal {-exited})")
    own = status.get("pid") == pid
    if own and status.get("updated") is not None and now - float(status["updated"]) > hang_s:
        return Verdict("rollback", "hung")
    cloud = status.get("cloud") or {}
    serving = own and status.get("state") == "serving"
    if serving and cloud.get("connected") and int(cloud.get("usage_acks") or 0) > 0:
        return COMMIT
    if elapsed_s <= bound_s:
        return WAIT
    if not serving:
        return Verdict("rollback", "never_serving")
    return Verdict("rollback", "no_cloud" if not cloud.get("connected") else "no_usage_ack")

"""A modem that comes and goes under the packaged service, watched as systemd sees it.

Shared by the system test (one gone period of 2 minutes, in ``make test``) and the soak
(``tests/bench/soak_system.py``: 15 minutes of a flapping modem, in ``make soak``). The
promise checked (issue 19 item 4): the unit never rests in ``failed`` (no start limit
strands the router), the agent keeps coming back with its growing delay
(``retrying in N s`` in ``systemctl status``, agent/respawn.py), and it serves again within
one delay of the modem's last return.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from tests.system.rig import System, lab

POLL_S = 0.5
"""How often systemd's view of the unit is read (``systemctl show``): across processes
there is no event to await; a restart or a state lasts seconds, so none is missed."""
SERVE_MARGIN_S = 30.0
"""After the last delay: the restart itself, the start-up checks, resuming the SIM."""


@dataclass
class Flap:
    """What systemd showed while the modem came and went."""

    states: set[str] = field(default_factory=set)
    delays: list[float] = field(default_factory=lambda: [0.0])
    """Each ``retrying in N s`` seen (the agent's delay before its next exit)."""
    serving_again_s: float | None = None
    """Seconds from the modem's last return to ``serving on SIM`` again."""
    restarts: int = 0

    def describe(self, gone_s: float) -> str:
        return (f"modem gone {gone_s:.0f} s in all: {self.restarts} restarts, delays up to {max(self.delays):.0f} s, "
                f"serving again {self.serving_again_s:.0f} s after its last return; states {sorted(self.states)}")


def ride(system: System, segments: list[tuple[float, float]], serve_within: float) -> Flap:
    """The modem answers nothing for each segment's first figure and answers again for its
    second (``pocket-lab fault hang``); after the last segment, wait at most
    ``serve_within`` seconds for the service to serve again. Fails the moment the unit is
    ``failed``, or when it does not serve in time."""
    seen = Flap()
    before = int(system.unit("NRestarts")["NRestarts"])
    for i, (gone, back) in enumerate(segments):
        reply = json.loads(lab("fault", "hang", "--seconds", str(gone), "--json").stdout)
        back_at = float(reply["until"])  # the host's wall clock, as the lab's
        last = i == len(segments) - 1
        end = back_at + (serve_within if last else back)
        while time.time() < end:
            _observe(system, seen)
            if last and time.time() > back_at and system.serving():
                seen.serving_again_s = time.time() - back_at
                break
            time.sleep(POLL_S)
        else:
            if last:
                raise AssertionError(f"not serving {serve_within:.0f} s after the modem came back; "
                                     f"states seen {sorted(seen.states)}, delays {seen.delays}")
    seen.restarts = int(system.unit("NRestarts")["NRestarts"]) - before
    return seen


def _observe(system: System, seen: Flap) -> None:
    props = system.unit("ActiveState", "SubState", "StatusText")
    seen.states.add(f"{props['ActiveState']}/{props['SubState']}")
    assert props["ActiveState"] != "failed", f"the unit gave up while the modem was gone: {props}"
    if m := re.search(r"retrying in (\d+) s", props["StatusText"]):
        seen.delays.append(float(m[1]))

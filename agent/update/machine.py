"""The update's phases and the moves between them (pure; journal.py keeps them on disk).

Mender's ArtifactInstall / ArtifactCommit / ArtifactRollback, in the agent's own words,
with one rule that makes a power cut harmless: **a phase is written (fsync'd) before the
step it names runs, and every step can be run again**. The code trees themselves never
depend on the journal: the ``current`` link (slots.py) always names one complete tree, or
is absent and the package's own tree runs. So whatever instant the power goes, exactly
one version is the working one, and the journal only says how far the update had got.

::

    idle --offer--> fetching --all bytes, hash right--> fetched --unpacked beside--> unpacked
      unpacked --phase written, then link swapped--> switching --> trial (attempts 0)
      trial --boot: attempts + 1--> trial ... --health gate passed--> committed
      trial --crash / never serving / hung / attempts > MAX--> rolling_back --> rolled_back
      rolled_back --failure reported upstream--> idle;  committed --reported--> idle

``switching`` is written before the link moves: a start that finds it looks at the link
and knows which side of the rename the cut fell (``resolve_switching``).

Schema (``SCHEMA``): the journal carries ``schema``; a journal of a newer schema than
this code knows is read for its phase and link only, which every schema keeps (the
older agent that reads it is a rolled-back one: it needs nothing more to run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

SCHEMA = 1
"""The journal's own schema version (docs/update.md, "State versions")."""

PHASES = ("idle", "fetching", "fetched", "unpacked", "switching", "trial", "committed", "rolling_back",
          "rolled_back")

MAX_ATTEMPTS = 3
"""Starts of a new version before it is given up without a verdict: a version that crashes
at start, or that the watchdog kills, is restarted by its service manager, and each start
is counted before it runs. Three is systemd's own default burst (StartLimitBurst=5 is for
a whole unit; three tries of one new version tell a crash loop from one unlucky start)."""

IN_PROGRESS = ("fetching", "fetched", "unpacked", "switching", "trial", "rolling_back")
"""Phases in which an update is under way (the status file, the console, a second offer)."""


@dataclass(frozen=True)
class UpdateState:
    """The journal's content. ``manifest`` is the verified manifest (a dict), ``previous``
    the tree the link named before the switch ("" for the package's own tree)."""

    phase: str = "idle"
    version: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    previous: str = ""
    previous_version: str = ""
    attempts: int = 0
    reason: str = ""
    """Why the last update failed or was refused (rolled_back), for the report."""
    log_tail: tuple[str, ...] = ()
    """The failed version's last log lines, scrubbed (scrub.py)."""
    floor: str = "0"
    rollout: int = -1
    rollout_sha256: str = ""
    trial_pid: int = 0
    """The process that counted the last attempt (a re-exec keeps its pid: counted once)."""
    schema: int = SCHEMA

    @property
    def in_progress(self) -> bool:
        return self.phase in IN_PROGRESS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["log_tail"] = list(self.log_tail)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> UpdateState:
        """The state from a journal; unknown keys (a newer schema's) are left out, an
        unreadable one is idle (the link, not the journal, says what runs)."""
        if not isinstance(data, dict) or data.get("phase") not in PHASES:
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["log_tail"] = tuple(str(line) for line in known.get("log_tail") or ())
        try:
            return cls(**known)
        except TypeError:
            return cls(phase=str(data["phase"]))


def offered(state: UpdateState, manifest: dict[str, Any], version: str, rollout: int, sha256: str,
            floor: str) -> UpdateState:
    """A verified offer starts a download (the floor and rollout seen are kept for good)."""
    return replace(state, phase="fetching", version=version, manifest=manifest, attempts=0, reason="",
                   log_tail=(), rollout=rollout, rollout_sha256=sha256, floor=floor)


def advance(state: UpdateState, phase: str) -> UpdateState:
    """The next phase of the install, in order; ValueError for a move the machine forbids."""
    allowed = {"fetched": ("fetching",), "unpacked": ("fetched",), "switching": ("unpacked",),
               "trial": ("switching",), "committed": ("trial",), "idle": ("committed", "rolled_back")}
    if state.phase not in allowed.get(phase, ()):
        raise ValueError(f"update cannot go from {state.phase} to {phase}")
    return replace(state, phase=phase)


def switching(state: UpdateState, previous: str, previous_version: str) -> UpdateState:
    return replace(advance(state, "switching"), previous=previous, previous_version=previous_version)


def attempt(state: UpdateState, pid: int) -> UpdateState:
    """A start of the trial version, counted once per process (an exec keeps the pid)."""
    if state.trial_pid == pid:
        return state
    return replace(state, attempts=state.attempts + 1, trial_pid=pid)


def exhausted(state: UpdateState) -> bool:
    return state.phase == "trial" and state.attempts > MAX_ATTEMPTS


def rolling_back(state: UpdateState, reason: str, log_tail: tuple[str, ...] = ()) -> UpdateState:
    return replace(state, phase="rolling_back", reason=reason, log_tail=log_tail or state.log_tail)


def rolled_back(state: UpdateState) -> UpdateState:
    return replace(state, phase="rolled_back")


def resolve_switching(state: UpdateState, link_target: str, new_tree: str) -> UpdateState:
    """After a cut in ``switching``: the link already names the new tree (trial) or not yet
    (back to unpacked, and the switch is done again)."""
    if state.phase != "switching":
        return state
    return replace(state, phase="trial" if link_target == new_tree else "unpacked")

"""``pocket-agent own-state --user U --group G DIR``: the procd init script's ownership step.

Run as root at every start, before procd starts the agent as ``U``: gives ``DIR`` and what
is in it to ``U:G`` without following a hard link or symlink planted there
(agent/stateowner.py; issue 20). Replaces ``chown -R``, which followed both.
"""

from __future__ import annotations

import argparse
import grp
import logging
import pwd
from pathlib import Path

from agent.core.exitcodes import ExitCode
from agent.stateowner import give_tree

LOGGER = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the agent's user")
    parser.add_argument("--group", required=True, help="the agent's group")
    parser.add_argument("directory", type=Path, help="the state directory (created 0700 by the init script)")


def main(args: argparse.Namespace) -> int:
    try:
        uid = pwd.getpwnam(args.user).pw_uid
        gid = grp.getgrnam(args.group).gr_gid
    except KeyError as exc:
        LOGGER.error("own-state: no such user or group: %s", exc)
        return ExitCode.CONFIG_INVALID
    try:
        done = give_tree(args.directory, uid, gid)
    except OSError as exc:
        LOGGER.error("own-state: cannot give %s to %s:%s: %s", args.directory, args.user, args.group, exc)
        return ExitCode.STATE_UNWRITABLE
    LOGGER.info("own-state: %s given to %s:%s (%d changed, %d already theirs, %d left alone)", args.directory,
                args.user, args.group, done.changed, done.unchanged, len(done.skipped or []))
    return ExitCode.OK

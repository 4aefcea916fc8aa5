"""Process hardening the agent applies to itself at start: no core dump, no ptrace peer.

Why (issue 20, finding 17): while a swap stages a profile the agent holds a SIM's Ki and
OPc in memory (agent/cloud/sealing.py opens the envelope, agent/modem/at.py sends the
vSIM load line). A native crash there (a C extension, pyroute2's netlink parsing, an
out-of-memory abort) would write the whole address space to a core file, readable by
whoever reads the crash directory. ``PR_SET_DUMPABLE`` 0 stops the kernel from writing a
core for this process whatever the system's ``core_pattern`` says, and also forbids
ptrace and /proc/<pid>/mem to other processes of the agent's own user; ``RLIMIT_CORE`` 0
says the same to anything that honours only the limit. The packaged units say it too
(systemd ``LimitCORE=0``, procd ``limits core``), for the moments before Python runs.

Linux only (prctl); anywhere else, or if the call fails, the agent logs it and runs on:
a missing safeguard is a warning, not a reason to leave a router without its agent.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

LOGGER = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
"""From linux/prctl.h (stable kernel ABI since 2.3.20)."""


def _prctl(option: int, arg: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.prctl(option, arg, 0, 0, 0))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def dumpable() -> bool | None:
    """Whether the kernel would dump this process (None: cannot tell, not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _prctl(PR_GET_DUMPABLE) != 0
    except (OSError, AttributeError):
        return None


def no_core_dumps() -> bool:
    """Make this process non-dumpable and its core size limit 0; True if both held."""
    ok = True
    try:
        import resource  # a C extension: an interpreter without it still gets the prctl below

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError) as exc:
        LOGGER.warning("cannot set the core size limit to 0: %s", exc)
        ok = False
    if not sys.platform.startswith("linux"):
        LOGGER.warning("not Linux: the process stays dumpable (no prctl)")
        return False
    try:
        _prctl(PR_SET_DUMPABLE, 0)
    except (OSError, AttributeError) as exc:  # AttributeError: a libc without prctl
        LOGGER.warning("prctl(PR_SET_DUMPABLE, 0) failed: %s; a crash could write a core file", exc)
        return False
    return ok

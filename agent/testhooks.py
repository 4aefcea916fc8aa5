"""Lab and test hooks: environment variables that change what the daemon does, honoured
only in a source tree, never in a packaged build.

The virtual board steps the agent's wall clock (``POCKET_AGENT_CLOCK_OFFSET_FILE``) and
holds a swap inside a phase so a test can kill it there (``POCKET_AGENT_SWAP_HOLD``).
On a router either would be a lever: a clock offset file moves expiry checks, the
calendar the usage is billed by and the certificates' validity; a swap hold widens the
window in which a power cut strands a SIM. Issue 20, finding 19.

The switch is the build itself: a package build stamps ``agent/_build.txt`` beside the
code (packaging/build.py; agent/version.py reads it for ``--version``), in a root-owned
directory the agent's user cannot write. With the stamp present every hook is off, and
nothing in the environment can turn one on; a hook that is set anyway is logged once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOGGER = logging.getLogger(__name__)

BUILD_STAMP = Path(__file__).with_name("_build.txt")
"""The package build's stamp (agent.version.BUILD_STAMP): present only in a packaged build."""

HOOKS = ("POCKET_AGENT_CLOCK_OFFSET_FILE", "POCKET_AGENT_SWAP_HOLD")
"""Every hook, so a review finds them in one place (each is read through ``get``)."""

_warned: set[str] = set()


def allowed() -> bool:
    """Whether test hooks are honoured: only where no package build stamped the tree."""
    return not BUILD_STAMP.exists()


def get(name: str) -> str | None:
    """The hook's value from the environment, or None: unset, or a packaged build."""
    assert name in HOOKS, f"{name} is not a declared test hook"
    value = os.environ.get(name) or None
    if value is not None and not allowed():
        if name not in _warned:
            _warned.add(name)
            LOGGER.warning("%s is set but ignored: test hooks are off in a packaged build", name)
        return None
    return value

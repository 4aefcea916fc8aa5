"""Run ``pocket-agent`` and SIGKILL the process right after one named provisioning step.

Usage: python -m tests.provision.crash_at STEP pocket-agent-args...
The kill is real (no cleanup, no finally blocks run), as when power is pulled on the line.
"""

from __future__ import annotations

import os
import signal
import sys

from agent.faces.cli.main import main
from agent.faces.provision import flow


def _kill_at(target: str) -> None:
    def hook(name: str) -> None:
        if name == target:
            os.kill(os.getpid(), signal.SIGKILL)

    flow.STEP_HOOKS.append(hook)


if __name__ == "__main__":
    _kill_at(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))

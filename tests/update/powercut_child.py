"""Run one update step in a process of its own and SIGKILL it at a named step.

``python -m tests.update.powercut_child STATE_DIR OWN_TREE ACTION KILL_AT [ARTIFACT]``:
ACTION is ``install`` (fetched -> trial), ``rollback`` (trial -> rolled_back) or
``commit``; KILL_AT is ``<step>#<n>`` (the n-th time that step is reached) or ``none``.
The process kills itself with SIGKILL there: no ``finally``, no flush, as a power cut.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from agent.update import install


def killer(target: str):
    seen: dict[str, int] = {}

    def step(name: str) -> None:
        seen[name] = seen.get(name, 0) + 1
        print(f"{name}#{seen[name]}", flush=True)
        if f"{name}#{seen[name]}" == target:
            os.kill(os.getpid(), signal.SIGKILL)
    return step


def main() -> None:
    state_dir, own, action, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    step = killer(kill_at)
    if action == "install":
        install.install(state_dir, Path(sys.argv[5]), own, on_step=step)
    elif action == "rollback":
        install.rollback(state_dir, "crashed (exit 1)", ("Traceback", "boom"), on_step=step)
    else:
        install.commit(state_dir)


if __name__ == "__main__":
    main()

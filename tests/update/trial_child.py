"""A starting agent's first moments, alone: ``boot.start`` and nothing else.

``python -m tests.update.trial_child STATE_DIR STATUS_FILE BOUND_S HANG_S``: chooses the
tree as ``pocket-agent run`` does; a trial runs the release (whose ``agent/cli.py`` the
test replaced by a small program, FAKE_CLI) under the real guard. A rollback starts this
same command again (``boot.restart``), which then runs here and prints ``HERE``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from agent.update import boot


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    state_dir, status = Path(sys.argv[1]), Path(sys.argv[2])
    boot.start(state_dir, ["run", "--config", str(status)], status, float(sys.argv[3]), float(sys.argv[4]))
    print("HERE", flush=True)


if __name__ == "__main__":
    main()

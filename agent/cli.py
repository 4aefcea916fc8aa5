"""The ``pocket-agent`` console script's entry point (``agent.cli:main`` in pyproject.toml).

The name stays because the packages' launcher, ``python -m agent.cli`` and the virtual
board's ``pocket-lab`` (which reuses ``dispatch``) call it; the table of subcommands and
the tools themselves live in ``agent/faces/cli/``.
"""

from __future__ import annotations

from agent.faces.cli.main import dispatch, main

__all__ = ["dispatch", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

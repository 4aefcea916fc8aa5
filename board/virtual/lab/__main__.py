"""``python -m board.virtual.lab``: the same command line as the ``pocket-lab`` script."""

from __future__ import annotations

from board.virtual.lab.cli import main

raise SystemExit(main())

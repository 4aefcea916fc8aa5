"""``python -m agent`` is the same as the ``pocket-agent`` console script."""

from agent.faces.cli.main import main

raise SystemExit(main())

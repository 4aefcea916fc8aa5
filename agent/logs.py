"""Log levels the agent adds to the standard ones.

Why a module of its own: the level is set by the command line (``agent/faces/cli/main.py``, ``-vv``)
and used by the adapters that log raw bytes (``agent/modem/at.py``); both import it from
here, below either of them, so it is defined once.
"""

from __future__ import annotations

TRACE = 5
"""Raw bytes are logged below DEBUG (style.md); ``pocket-agent -vv`` shows them."""

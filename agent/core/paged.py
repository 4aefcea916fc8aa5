"""The daemon's side of the renter's status page: starting it, or saying why not.

Why the page runs inside the daemon: it shows what the daemon knows, the router has one
process to package, and it costs a socket and a few kB while idle. Why it is still apart:
it asks the daemon through the control socket (``renter``, no AT command), the same way
the console does, never the supervisor's objects; and the page's code
(``agent/faces/page``) is imported only when the page is on, so a router that turns it off
pays nothing for it (measured: tests/bench/bench_page.py).

Where it listens: the board profile's ``lan_address`` and ``status_page_port``, which the
``[page]`` table may override; only there (docs/status-page.md says why never the WAN).

The [page] keys and their checks: ``agent/core/page_settings.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.core.page_settings import settings
from agent.errors import AgentError

LOGGER = logging.getLogger(__name__)


async def start(sup: Any) -> Any | None:
    """The supervisor's one call: the page server (its task spawned), or None when it is
    off, has no address, or cannot ask the daemon. A bad [page] table is logged and the
    daemon serves without a page rather than not at all."""
    try:
        s = settings(sup.cfg.page, sup.profile)
    except AgentError as exc:
        LOGGER.error("status page not started: %s", exc)
        return None
    if not s.enabled:
        return None
    if s.interface is None:
        LOGGER.info("status page off: no LAN address in the board profile or [page] address")
        return None
    if sup.consoled is None:
        LOGGER.error("status page not started: it reads the daemon through the control socket, which is off")
        return None
    from agent.core.control import ControlClient
    from agent.faces.page.server import PageServer

    client = ControlClient(sup.consoled.settings.control_socket)
    server = PageServer(s, lambda: client.request("renter"))
    sup.spawn(server.run(), "status page")
    return server

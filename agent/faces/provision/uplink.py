"""The seed SIM's data path, for the factory's one broker connection.

A pocket router has no way out but its modem. The second pass's self-test
(``broker_connect``, docs/provisioning.md) proves the certificate with one connection to
the broker, so when the unit has no route to the broker (no station network on a WAN
port), provisioning does what the agent does at start-up on the bootstrap SIM: define and
activate the seed SIM's data context, put its address and default route on the board's
data interface, and then, after the connection, take both down again, so the service
finds the modem and the interface as they were.

Found by the system test (tests/system): on the lab's device, as on a real one, the
second pass failed with "Network is unreachable".
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from agent.boardprofile import BoardProfile
from agent.errors import AgentError
from agent.modem.driver import Modem
from agent.net.link import WanLink

LOGGER = logging.getLogger(__name__)

DATA_CID = 1
"""The data context the agent uses (agent/core/supervisor.py DATA_CID)."""
SEED_APN = ""
"""The seed SIM's APN: the network's default, as the agent's start-up uses it."""
CLOSE_GRACE_S = 1.0
"""After the connection, before the address goes: the broker answers the client's close
with its own (TLS close_notify, FIN), and with the address still there the kernel ends the
exchange at once. Taken away earlier, the broker retransmits into the void and its late
packets arrive when the agent brings the seed SIM up again with the same address (76
bytes counted by the carrier, in the system test). An LTE round trip is 50-100 ms."""
CONTEXT_TIMEOUT_S = 30.0
"""Context activation answers in about a second (the lab models 0.8 s); an LTE network
may take tens of seconds for +CGACT (27.007 gives no bound; EC25 manual: 150 s max)."""

T = TypeVar("T")


def has_route(host: str, port: int) -> bool:
    """Whether the kernel has a route to ``host`` now (a UDP connect: no packet is sent)."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(infos[0][4])
        except OSError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return False
            raise
    return True


def over_seed(port: str, profile: BoardProfile, attempt: Callable[[], T], *, open_timeout: float) -> T:
    """Run ``attempt`` (blocking) with the seed SIM's data context routed on the profile's
    data interface; everything brought up is taken down again, whatever happens."""
    return asyncio.run(_over_seed(port, profile, attempt, open_timeout))


async def _over_seed(port: str, profile: BoardProfile, attempt: Callable[[], T], open_timeout: float) -> T:
    modem = Modem(port, profile.dialect, baud=profile.baud, init_timeout=open_timeout)
    wan = WanLink(profile.data_interface)
    activated = applied = False
    try:
        await asyncio.wait_for(modem.open(), open_timeout)
        await modem.define_context(DATA_CID, SEED_APN)
        await asyncio.wait_for(modem.activate_context(DATA_CID), CONTEXT_TIMEOUT_S)
        activated = True
        params: Any = await modem.context_params(DATA_CID)  # a ContextLike (net/link.py validates it)
        await asyncio.to_thread(wan.apply, params)
        applied = True
        LOGGER.info("seed SIM data context up on %s for the broker connection", profile.data_interface)
        result = await asyncio.to_thread(attempt)
        await asyncio.sleep(CLOSE_GRACE_S)
        return result
    finally:
        await _take_down(modem, wan, activated, applied)


async def _take_down(modem: Modem, wan: WanLink, activated: bool, applied: bool) -> None:
    try:
        if applied:
            await asyncio.to_thread(wan.release)
        if activated:
            await modem.deactivate_context(DATA_CID)
    except (AgentError, OSError) as exc:  # the service starts from whatever state it finds
        LOGGER.warning("seed SIM data context not fully taken down: %s", exc)
    finally:
        wan.close()
        await modem.close()

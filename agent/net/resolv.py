"""DNS servers for LAN clients: written where the board profile says, atomically.

The LAN's DHCP/DNS daemon (dnsmasq on OpenWrt) reads a resolv file; a half-written
file would leave clients without DNS, so it is replaced with agent.store.atomic_write.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from pathlib import Path

from agent import store
from agent.errors import NetError

LOGGER = logging.getLogger(__name__)

MAX_SERVERS = 3
"""glibc's resolver reads at most three nameserver lines (MAXNS in resolv.h)."""


def render(servers: Iterable[str]) -> bytes:
    """resolv.conf text for ``servers``; NetError (naming the value) on a bad address."""
    lines = ["# written by pocket-agent from the modem's data context"]
    seen: list[str] = []
    for raw in servers:
        try:
            addr = str(ipaddress.ip_address(str(raw).strip()))
        except ValueError as exc:
            raise NetError(f"write resolv: bad DNS server {raw!r}") from exc
        if addr not in seen:
            seen.append(addr)
    if len(seen) > MAX_SERVERS:
        LOGGER.info("keeping the first %d of %d DNS servers", MAX_SERVERS, len(seen))
    lines += [f"nameserver {a}" for a in seen[:MAX_SERVERS]]
    return ("\n".join(lines) + "\n").encode()


def write_resolv(path: Path | str, servers: Iterable[str]) -> None:
    """Atomically replace ``path`` (world-readable: the DNS daemon is another user)."""
    data = render(servers)
    try:
        store.atomic_write(path, data, mode=store.PUBLIC_MODE)
    except OSError as exc:
        raise NetError(f"write resolv {path}: {exc.strerror}") from exc
    LOGGER.info("DNS for LAN clients written to %s", path)

"""The daemon's side of the renter's status page: its settings, and starting it.

Why the page runs inside the daemon: it shows what the daemon knows, the router has one
process to package, and it costs a socket and a few kB while idle. Why it is still apart:
it asks the daemon through the control socket (``renter``, no AT command), the same way
the console does, never the supervisor's objects; and the page's code
(``agent/faces/page``) is imported only when the page is on, so a router that turns it off
pays nothing for it (measured: tests/bench/bench_page.py).

Where it listens: the board profile's ``lan_address`` and ``status_page_port``, which the
``[page]`` table may override; only there (docs/status-page.md says why never the WAN).

[page] keys (all optional): ``enabled`` (default true: a router with a LAN address shows
its page), ``address`` ("192.168.8.1/24"), ``port``, ``languages`` (["en", "ja"]: the
first is the fallback), ``brand`` and ``support_phone`` (shown on the page, nothing else).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError, ConfigError

LOGGER = logging.getLogger(__name__)

LANGUAGES = ("en", "ja")
"""The languages the page speaks (agent/faces/page/words.py holds both)."""
BRAND_MAX = 40
PHONE_MAX = 24
"""Characters of the operator's brand and support number: a header line and a phone number
(E.164 is at most 15 digits; room for spaces and a "+")."""


@dataclass(frozen=True)
class PageSettings:
    enabled: bool
    interface: ipaddress.IPv4Interface | None
    """The LAN address with its network: the page binds to the address and answers only
    peers inside the network."""
    port: int
    device: str
    """The LAN interface (the board profile's ``lan_interface``): the socket is bound to it."""
    languages: tuple[str, ...] = LANGUAGES
    brand: str = ""
    support_phone: str = ""


def settings(table: dict[str, Any], profile: Any) -> PageSettings:
    """Validate the [page] table over the board profile's defaults; ConfigError names the key."""
    known = {"enabled", "address", "port", "languages", "brand", "support_phone"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[page]: unknown key {unknown[0]!r}")

    def get(key: str, kind: type, default: Any) -> Any:
        value = table.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"[page]: {key!r} has the wrong type ({type(value).__name__})")
        return value

    address = get("address", str, profile.lan_address)
    try:
        interface = ipaddress.IPv4Interface(address) if address else None
    except ValueError:
        raise ConfigError(f"[page]: 'address' must be an IPv4 address with its prefix length, got {address!r}") \
            from None
    port = get("port", int, profile.status_page_port)
    if not 1 <= port <= 65535:
        raise ConfigError(f"[page]: 'port' must be a TCP port, got {port}")
    languages = tuple(get("languages", list, list(LANGUAGES)))
    if not languages or any(lang not in LANGUAGES for lang in languages):
        raise ConfigError(f"[page]: 'languages' must be a non-empty list of {LANGUAGES}, got {list(languages)}")
    brand, phone = get("brand", str, ""), get("support_phone", str, "")
    if len(brand) > BRAND_MAX or len(phone) > PHONE_MAX:
        raise ConfigError(f"[page]: 'brand' is at most {BRAND_MAX} and 'support_phone' {PHONE_MAX} characters")
    return PageSettings(enabled=get("enabled", bool, True), interface=interface, port=port,
                        device=profile.lan_interface, languages=languages, brand=brand, support_phone=phone)


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

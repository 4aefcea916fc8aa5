"""The status page's settings: the [page] table over the board profile's defaults.

Apart from ``agent/core/paged.py`` (which starts the page) so that the page's server can
name its settings' type without an import cycle, and the daemon can validate the table
without loading the page's code.

[page] keys (all optional): ``enabled`` (default true: a router with a LAN address shows
its page), ``address`` ("192.168.8.1/24"), ``port``, ``languages`` (["en", "ja"]: the
first is the fallback), ``brand`` and ``support_phone`` (shown on the page, nothing else).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError

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

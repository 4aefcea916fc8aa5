"""Board profiles: what the agent needs to know about the hardware it runs on.

One TOML file per board (board/profiles/*.toml). The agent never knows whether its
board is real or virtual: the profile is the only difference. Every key is validated
on load, and a bad one is a ConfigError that names it, so a wrong profile fails at
start-up and not at the first modem reset in the field.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import layout
from agent.config import read_toml
from agent.errors import ConfigError
from agent.modem.dialects import DIALECTS

LOGGER = logging.getLogger(__name__)

PROFILES_DIR = layout.SOURCE_PROFILE_DIR
"""The profiles in a source checkout; installed, they are in ``layout.PROFILE_DIR`` (a name
is looked up in both: ``layout.find_profile``)."""

ETHERNET_HEADER_BYTES = 14
"""Dst MAC + src MAC + EtherType: the framing on veth and cdc_ether/RNDIS interfaces."""

KNOWN_DIALECTS = tuple(sorted(DIALECTS))
"""The dialect registry's names (issue 11: derived, no longer a second list)."""

RESET_KINDS = ("gpio", "none", "hook")
"""gpio: a sysfs GPIO value file; hook: provided by the embedding program (the virtual
board's modem); none: no way to power-cycle the modem."""

BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


@dataclass(frozen=True)
class BoardProfile:
    """One board. See docs/modem.md for every key."""

    name: str
    at_port: str
    baud: int
    dialect: str
    data_interface: str
    link_header_bytes: int
    """Bytes of link framing per packet on ``data_interface``: 14 for Ethernet-framed
    (veth, cdc_ether), 0 for raw-IP wwan; the usage meter subtracts it per packet."""
    vsim_slots: tuple[int, ...]
    seed_slot: int
    reset_line: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    resolv_file: str = "/tmp/resolv.conf.d/resolv.conf.auto"
    lan_interface: str = "br-lan"
    lan_address: str = ""
    """The router's own address on its LAN with the prefix length ("192.168.8.1/24"): where
    the renter's status page listens (docs/status-page.md); empty: the board names none and
    the page is off unless the config's [page] table gives one."""
    status_page_port: int = 80
    """The page's TCP port on ``lan_address``: 80, where a browser looks by default."""
    # --- factory provisioning (issue 13); the key store's place is no board's: agent/layout.py
    console_port: str = ""
    """The technician console's serial port (a USB gadget port such as /dev/ttyGS0); empty:
    this board has none (docs/console.md). The factory self-test checks that it exists."""


def _need(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise ConfigError(f"board profile: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"board profile: key {key!r} has the wrong type ({type(value).__name__}: {value!r})")
    return value


def _check_reset(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ConfigError(f"board profile: key 'reset_line' must be a table, got {spec!r}")
    kind = spec.get("kind")
    if kind not in RESET_KINDS:
        raise ConfigError(f"board profile: key 'reset_line.kind' must be one of {RESET_KINDS}, got {kind!r}")
    if kind == "gpio" and not isinstance(spec.get("path"), str):
        raise ConfigError("board profile: key 'reset_line.path' is required for kind gpio")
    return dict(spec)


def profile_from_dict(data: dict[str, Any]) -> BoardProfile:
    """Validate and build; ConfigError names the first bad key."""
    known = set(BoardProfile.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"board profile: unknown key {unknown[0]!r}")
    slots = _need(data, "vsim_slots", list)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in slots):
        raise ConfigError(f"board profile: key 'vsim_slots' must be non-negative integers, got {slots!r}")
    profile = BoardProfile(
        name=_need(data, "name", str),
        at_port=_need(data, "at_port", str),
        baud=_need(data, "baud", int),
        dialect=_need(data, "dialect", str),
        data_interface=_need(data, "data_interface", str),
        link_header_bytes=_need(data, "link_header_bytes", int),
        vsim_slots=tuple(slots),
        seed_slot=_need(data, "seed_slot", int),
        reset_line=_check_reset(data.get("reset_line", {"kind": "none"})),
        resolv_file=data.get("resolv_file", "/tmp/resolv.conf.d/resolv.conf.auto"),
        lan_interface=data.get("lan_interface", "br-lan"),
        lan_address=data.get("lan_address", ""),
        status_page_port=data.get("status_page_port", 80),
        console_port=data.get("console_port", ""),
    )
    _check_values(profile)
    return profile


def _check_values(p: BoardProfile) -> None:
    if p.baud not in BAUD_RATES:
        raise ConfigError(f"board profile: key 'baud' must be one of {BAUD_RATES}, got {p.baud}")
    if p.dialect not in KNOWN_DIALECTS:
        raise ConfigError(f"board profile: key 'dialect' must be one of {KNOWN_DIALECTS}, got {p.dialect!r}")
    if p.link_header_bytes not in (0, ETHERNET_HEADER_BYTES):
        raise ConfigError(
            f"board profile: key 'link_header_bytes' must be 0 (raw IP) or {ETHERNET_HEADER_BYTES} (Ethernet), got {p.link_header_bytes}"
        )
    if p.seed_slot in p.vsim_slots:
        raise ConfigError(f"board profile: key 'seed_slot' {p.seed_slot} must not be one of vsim_slots {p.vsim_slots}")
    if p.vsim_slots and not (DIALECTS[p.dialect].has_vsim or DIALECTS[p.dialect].has_remote_sim):
        raise ConfigError(f"board profile: key 'vsim_slots' must be empty for dialect {p.dialect} (no vSIM)")
    if not isinstance(p.lan_address, str):
        raise ConfigError(f"board profile: key 'lan_address' must be a string, got {p.lan_address!r}")
    if p.lan_address:
        try:
            ipaddress.IPv4Interface(p.lan_address)
        except ValueError:
            raise ConfigError(f"board profile: key 'lan_address' must be an IPv4 address with its prefix "
                              f"length (192.168.8.1/24), got {p.lan_address!r}") from None
    if isinstance(p.status_page_port, bool) or not isinstance(p.status_page_port, int) \
            or not 1 <= p.status_page_port <= 65535:
        raise ConfigError(f"board profile: key 'status_page_port' must be a TCP port, got {p.status_page_port!r}")
    if not isinstance(p.console_port, str):
        raise ConfigError(f"board profile: key 'console_port' must be a string, got {p.console_port!r}")
    for key in ("at_port", "data_interface", "resolv_file", "lan_interface"):
        if not getattr(p, key):
            raise ConfigError(f"board profile: key {key!r} is empty")


def load_profile(path_or_name: str | Path) -> BoardProfile:
    """Load a profile from a path, or by name (``"virtual"``) from the installed profiles or
    the checkout's board/profiles (``layout.find_profile``)."""
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = layout.find_profile(str(path_or_name))
    return profile_from_dict(read_toml(path, "board profile"))  # every way of failing: one ConfigError line

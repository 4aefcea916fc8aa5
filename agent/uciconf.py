"""The agent's TOML config from OpenWrt UCI options (``pocket-agent uci2toml``).

On OpenWrt the device is configured the OpenWrt way (``/etc/config/pocket-agent``, ``uci
set``, LuCI). The procd init script validates the section with typed defaults
(``uci_load_validate``: the defaults live there, in one place) and hands the validated
values to ``pocket-agent uci2toml`` (``agent/faces/cli/uci2toml.py``) as ``option=value``
arguments; this module only knows which option is which TOML key and of which type. The
agent itself reads TOML everywhere, so there is one configuration loader (agent/config.py)
and the file it reads is derived, regenerated on every start into tmpfs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.config import key_type
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

PROFILE_DIR = Path("/usr/share/pocket-agent/profiles")
"""Where the packages install board profiles; a bare profile name is looked up here."""

MAPPING: dict[str, tuple[str, str]] = {
    "device_id": ("", "device_id"),
    "state_dir": ("", "state_dir"),
    "board_profile": ("", "board_profile"),
    "status_file": ("", "status_file"),
    "modem_port": ("modem", "port"),
    "cloud_host": ("cloud", "host"),
    "cloud_port": ("cloud", "port"),
    "cloud_ca": ("cloud", "ca"),
    "cloud_cert": ("cloud", "cert"),
    "cloud_key": ("cloud", "key"),
    "sealing_key": ("cloud", "sealing_key"),
    "platform_key": ("cloud", "platform_key"),
    "report_interval_s": ("usage", "report_interval_s"),
    "flush_interval_s": ("usage", "flush_interval_s"),
    "tz": ("usage", "tz"),
    "sample_interval_s": ("health", "sample_interval_s"),
    "radio_interval_s": ("health", "radio_interval_s"),
    "reflector": ("health", "reflector"),
    "probe": ("health", "probe"),
    "resolv_file": ("health", "resolv_file"),
}
"""UCI option -> (TOML table, "" for the top level; key). The key's type is agent/config.py's
(``key_type``); an empty value leaves the key out, so the config's default applies."""


def to_toml(options: dict[str, str]) -> str:
    """TOML text for the given UCI options; unknown options and bad numbers are ConfigErrors."""
    tables: dict[str, dict[str, str | int | float]] = {}
    for name, text in options.items():
        if name not in MAPPING:
            raise ConfigError(f"uci option {name!r} is not an agent option (known: {', '.join(MAPPING)})")
        table, key = MAPPING[name]
        kind = key_type(table, key)
        if text == "":
            continue
        if name == "board_profile" and "/" not in text:
            text = str(PROFILE_DIR / f"{text}.toml")
        try:
            tables.setdefault(table, {})[key] = kind(text)
        except ValueError:
            raise ConfigError(f"uci option {name!r} must be {kind.__name__}, got {text!r}") from None
    lines = [f"{k} = {_value(v)}" for k, v in tables.pop("", {}).items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]", *(f"{k} = {_value(v)}" for k, v in values.items())]
    return "# Generated from /etc/config/pocket-agent by the init script: edit that, not this.\n" + \
        "\n".join(lines) + "\n"


def _value(v: str | float) -> str:
    return json.dumps(v) if isinstance(v, str) else repr(v)  # a JSON string is a TOML basic string

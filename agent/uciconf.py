"""The agent's TOML config from OpenWrt UCI options (``pocket-agent uci2toml``).

On OpenWrt the device is configured the OpenWrt way (``/etc/config/pocket-agent``, ``uci
set``, LuCI). The procd init script validates the section with typed defaults
(``uci_load_validate``: the defaults live there, in one place) and hands the validated
values to ``pocket-agent uci2toml`` (``agent/faces/cli/uci2toml.py``) as ``option=value``
arguments; this module only knows which option is which TOML key and of which type. The
agent itself reads TOML everywhere, so there is one configuration loader (agent/config.py)
and the file it reads is derived, regenerated on every start into tmpfs.

The base is what provisioning wrote (``layout.CONFIG_FILE``, a link into the key store):
the device id, the broker, the board profile and every ``[cloud]`` path, which points into
``keys/current/``. UCI only overrides (an empty option keeps the base's value), and it has
no option for a key or certificate path at all: a path outside the key store would
silently turn certificate renewal off (agent/cloud/renewal.py ``key_dir_of``) and the
fleet's certificates would expire. One layout (docs/layout.md), one writer of the identity.
"""

from __future__ import annotations

import json
import logging
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import layout
from agent.config import key_type
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

PROFILE_DIR = layout.PROFILE_DIR
"""Where the packages install board profiles; a bare profile name is looked up here."""

MAPPING: dict[str, tuple[str, str]] = {
    "device_id": ("", "device_id"),
    "state_dir": ("", "state_dir"),
    "board_profile": ("", "board_profile"),
    "status_file": ("", "status_file"),
    "modem_port": ("modem", "port"),
    "cloud_host": ("cloud", "host"),
    "cloud_port": ("cloud", "port"),
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
(``key_type``); an empty value leaves the key out, so the base's value or the config's
default applies. No key or certificate path: those are provisioning's (module docstring)."""

Tables = dict[str, dict[str, Any]]
"""TOML by table: "" holds the top-level keys."""

PAGE_SECTION = "page"
"""The UCI section type of the renter's status page (``config page 'page'``)."""
PAGE_OPTIONS: dict[str, tuple[str, type]] = {
    "enabled": ("enabled", bool),
    "address": ("address", str),
    "port": ("port", int),
    "lang": ("languages", list),
    "brand": ("brand", str),
    "support_phone": ("support_phone", str),
}
"""UCI option of the ``page`` section -> ([page] key, its type). ``lang`` is a UCI list
(``list lang 'ja'``, one per language, the first the fallback) or one option of
space-separated codes; the values' meaning and bounds are agent/core/page_settings.py's,
checked by ``uci2toml`` before the daemon starts."""
UCI_TRUE = frozenset({"1", "yes", "on", "true", "enabled"})
UCI_FALSE = frozenset({"0", "no", "off", "false", "disabled"})
"""The words UCI's own ``bool`` type accepts (OpenWrt's validate.c)."""


@dataclass
class UciSection:
    """One ``config TYPE 'NAME'`` block of a UCI file: its options and lists as written."""

    type: str
    name: str | None
    options: dict[str, str | list[str]] = field(default_factory=dict)


def parse_uci(text: str, where: str = "uci") -> list[UciSection]:
    """The sections of a UCI file (``/etc/config/pocket-agent``) in the syntax ``uci``
    writes: ``config``, ``option`` and ``list`` lines, values quoted or bare, ``#``
    comments. A line that is none of these is a ConfigError naming its number: a typo in
    the page's section must not silently turn the page off."""
    sections: list[UciSection] = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{where}:{number}: {exc}") from None
        if not words:
            continue
        kind = words[0]
        if kind == "config" and len(words) in (2, 3):
            sections.append(UciSection(words[1], words[2] if len(words) == 3 else None))
        elif kind in ("option", "list") and len(words) == 3 and sections:
            options = sections[-1].options
            if kind == "option":
                options[words[1]] = words[2]
            else:
                held = options.get(words[1])
                options[words[1]] = [*(held if isinstance(held, list) else [held] if held else []), words[2]]
        else:
            raise ConfigError(f"{where}:{number}: not a UCI line (config, option or list)")
    return sections


def page_table(sections: list[UciSection]) -> dict[str, Any]:
    """The [page] table from the ``page`` section (none: an empty table, the defaults).
    An empty option keeps the default, as for the agent's own options."""
    found = [s for s in sections if s.type == PAGE_SECTION]
    if len(found) > 1:
        raise ConfigError(f"uci: more than one '{PAGE_SECTION}' section")
    table: dict[str, Any] = {}
    for name, value in (found[0].options.items() if found else ()):
        if name not in PAGE_OPTIONS:
            raise ConfigError(f"uci option page.{name} is not a page option (known: {', '.join(PAGE_OPTIONS)})")
        key, kind = PAGE_OPTIONS[name]
        words = value if isinstance(value, list) else value.split() if kind is list else [value]
        if not any(words):
            continue
        if kind is list:
            table[key] = list(words)
        elif isinstance(value, list):
            raise ConfigError(f"uci option page.{name} is a list; it takes one value")
        elif kind is bool:
            if value.lower() not in UCI_TRUE | UCI_FALSE:
                raise ConfigError(f"uci option page.{name} must be a boolean (0 or 1), got {value!r}")
            table[key] = value.lower() in UCI_TRUE
        elif kind is int:
            try:
                table[key] = int(value)
            except ValueError:
                raise ConfigError(f"uci option page.{name} must be a number, got {value!r}") from None
        else:
            table[key] = value
    return table


def read_uci(path: Path | str) -> list[UciSection]:
    try:
        return parse_uci(Path(path).read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read_base(path: Path | str) -> Tables:
    """Provisioning's configuration as tables; a missing file is a ConfigError (not provisioned)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: the device is not provisioned (docs/provisioning.md)") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    tables: Tables = {"": {}}
    for key, value in data.items():
        if isinstance(value, dict):
            tables[key] = dict(value)
        else:
            tables[""][key] = value
    return tables


def to_toml(options: dict[str, str], base: Tables | None = None, page: dict[str, Any] | None = None) -> str:
    """TOML text for the given UCI options over ``base``, with ``page`` (``page_table``)
    over the base's [page] keys; unknown options and bad numbers are ConfigErrors."""
    tables: Tables = {name: dict(values) for name, values in (base or {}).items()}
    if page:
        tables.setdefault(PAGE_SECTION, {}).update(page)
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
    return ("# Generated by the init script from provisioning's configuration and\n"
            "# /etc/config/pocket-agent: edit those, not this.\n" + "\n".join(lines) + "\n")


def _value(v: Any) -> str:
    """One TOML value: the types a configuration holds (strings, numbers, booleans, lists)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(item) for item in v) + "]"
    raise ConfigError(f"cannot write {type(v).__name__} value {v!r} to TOML")

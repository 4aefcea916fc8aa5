"""The agent's configuration file (TOML) and the board profile it names.

One file per device, written by factory provisioning (or by ``pocket-lab up`` for the
virtual board). Every field and its default is written once, in the dataclasses below;
``KEYS`` says where each field is in the TOML file and of which TOML type, and ``load()``
leaves an absent key out so the dataclass's default applies (a field without a default
is required). A wrong type, a missing required key, or a number outside its key's bounds
is a ``ConfigError`` naming the key; so is a file that cannot be read at all (missing,
not permitted, a directory, not UTF-8): every way the file is wrong ends in exit 78 with
one line saying why, never a traceback (issue 20). See docs/configuration.md.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

REPORT_INTERVAL_S = 60.0
"""Usage report cadence: the platform wants near real-time remaining data (domain.md);
once a minute is ~1,440 small messages a day per device, gentle on the broker."""
FLUSH_INTERVAL_S = 60.0
"""Journal flush: bounds loss on power failure to one minute (vnStat's is five)."""
SAMPLE_INTERVAL_S = 1.0
"""The health classifier is designed for about one sample a second (docs/health.md)."""
RADIO_INTERVAL_S = 5.0
"""Signal quality changes slowly; asking the modem every 5 s keeps the AT channel free."""
HEARTBEAT_S = 3600.0
"""Issue 10: an idle router reports usage once an hour, not every report interval (see
agent/usage/reporting.py); the cloud's policy may set it later."""
KEEPALIVE_S = 300
"""Issue 10: MQTT keep-alive. Each one costs ~300 bytes on the SIM (PINGREQ/PINGRESP
in TLS records, TCP/IP headers, ACKs): 60 s would be ~430 kB a day on an idle router.
Mobile carriers keep established TCP NAT mappings well past 5 minutes (RFC 5382 asks for
2 h 4 min), so 300 s keeps the mapping and finds a dead path within ~7.5 min."""
MQTT_TLS_PORT = 8883
"""IANA's port for MQTT over TLS."""
TZ_OFFSET = "+09:00"
"""JST: the plans this agent meters reset at JST day and month boundaries (domain.md);
an assignment's own ``plan.tz`` wins."""

# Bounds of the numbers (issue 20): 0, a negative number or NaN as an interval made a
# loop that sleeps it spin; each bound says what the number is for.
SAMPLE_BOUNDS = (0.05, 60.0)
"""The classifier's windows count samples of about a second; 20 a second is already far
more than it can use, and a minute apart it sees nothing."""
RADIO_BOUNDS = (0.5, 3600.0)
"""An AT query twice a second is the most the channel should carry for signal quality."""
REPORT_BOUNDS = (1.0, 86400.0)
"""Reports at most once a second (each is a message on the user's SIM), at least daily."""
FLUSH_BOUNDS = (1.0, 3600.0)
"""A flush is an fsync: once a second at most (flash wear), once an hour at least (the
usage a power cut may lose)."""
HEARTBEAT_BOUNDS = (1.0, 86400.0)
"""At least one report a day: the platform must see an idle device's usage daily."""
UPDATE_TRIAL_S = 240.0
"""The health gate's bound for a new version (agent/update/gate.py TRIAL_BOUND_S says why)."""
UPDATE_TRIAL_BOUNDS = (30.0, 900.0)
"""Under 30 s no agent can attach, reach the cloud and have a report acknowledged; over
15 minutes a broken release strands the renter too long before it is rolled back."""
PORT_BOUNDS = (1, 65535)
"""A TCP port."""
KEEPALIVE_BOUNDS = (1, 65535)
"""MQTT keep-alive is a 16-bit count of seconds (MQTT 5, 3.1.2.10); 0 would switch it off,
and the link's idle watchdog, a multiple of it, would fire at once."""


@dataclass(frozen=True, kw_only=True)
class CloudSection:
    """The [cloud] table. Keyword-only, so a default can sit beside the required paths."""

    host: str
    port: int = MQTT_TLS_PORT
    ca: Path
    cert: Path
    key: Path
    sealing_key: Path
    platform_key: Path
    keepalive_s: int = KEEPALIVE_S
    seed_sim: Path | None = None
    """A remote-SIM board's seed SIM: its sealed envelope, written at provisioning
    (docs/remote-sim.md); a vSIM board's seed is in the modem."""


@dataclass(frozen=True)
class AgentConfig:
    device_id: str
    state_dir: Path
    board_profile: Path
    cloud: CloudSection
    status_file: Path | None = None
    modem_port: str | None = None
    """Overrides the profile's AT port (the virtual modem's pty path changes per run)."""
    report_interval_s: float = REPORT_INTERVAL_S
    heartbeat_s: float = HEARTBEAT_S
    flush_interval_s: float = FLUSH_INTERVAL_S
    sample_interval_s: float = SAMPLE_INTERVAL_S
    radio_interval_s: float = RADIO_INTERVAL_S
    tz_offset: str = TZ_OFFSET
    reflector: tuple[str, int] | None = None
    probe: tuple[str, int] | None = None
    resolv_file: Path | None = None
    record_trace: Path | None = None
    console: dict[str, Any] = field(default_factory=dict)
    """The [console] table, validated by agent/core/consoled.py (docs/console.md)."""
    release_key: Path | None = None
    """[update] release_key: the release key's public half, pinned at provisioning; without
    it every update offer is refused (docs/update.md)."""
    update_trial_s: float = UPDATE_TRIAL_S
    page: dict[str, Any] = field(default_factory=dict)
    """The [page] table (the renter's status page), validated by agent/core/page_settings.py
    (docs/status-page.md)."""


def _get(section: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in section:
        if default is ...:
            raise ConfigError(f"{where}: missing required key {key!r}")
        return default
    value = section[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _hostport(text: str | None, where: str) -> tuple[str, int] | None:
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
    return host, int(port)


def _path(value: str, where: str) -> Path:
    return Path(value)


def _optional_path(value: str, where: str) -> Path | None:
    return Path(value) if value else None


def _same(value: Any, where: str) -> Any:
    return value


@dataclass(frozen=True)
class Key:
    """One TOML key: its table ("" for the top level), its name, the TOML type it must
    have, the dataclass field it fills (``attr``, if not ``name``) and how its value
    becomes the field's."""

    table: str
    name: str
    kind: type
    attr: str = ""
    convert: Callable[[Any, str], Any] = _same
    bounds: tuple[float, float] | None = None
    """Inclusive range of a number (and a finite one): refused outside it."""

    @property
    def target(self) -> str:
        return self.attr or self.name


KEYS: tuple[Key, ...] = (
    Key("", "device_id", str),
    Key("", "state_dir", str, convert=_path),
    Key("", "board_profile", str, convert=_path),
    Key("", "status_file", str, convert=_optional_path),
    Key("", "console", dict),
    Key("", "page", dict),
    Key("modem", "port", str, "modem_port"),
    Key("usage", "report_interval_s", float, bounds=REPORT_BOUNDS),
    Key("usage", "flush_interval_s", float, bounds=FLUSH_BOUNDS),
    Key("usage", "heartbeat_s", float, bounds=HEARTBEAT_BOUNDS),
    Key("usage", "tz", str, "tz_offset"),
    Key("health", "sample_interval_s", float, bounds=SAMPLE_BOUNDS),
    Key("health", "radio_interval_s", float, bounds=RADIO_BOUNDS),
    Key("health", "reflector", str, convert=_hostport),
    Key("health", "probe", str, convert=_hostport),
    Key("health", "resolv_file", str, convert=_optional_path),
    Key("health", "record_trace", str, convert=_optional_path),
    Key("update", "release_key", str, convert=_optional_path),
    Key("update", "trial_s", float, "update_trial_s", bounds=UPDATE_TRIAL_BOUNDS),
    Key("cloud", "host", str),
    Key("cloud", "port", int, bounds=PORT_BOUNDS),
    Key("cloud", "ca", str, convert=_path),
    Key("cloud", "cert", str, convert=_path),
    Key("cloud", "key", str, convert=_path),
    Key("cloud", "sealing_key", str, convert=_path),
    Key("cloud", "platform_key", str, convert=_path),
    Key("cloud", "keepalive_s", int, bounds=KEEPALIVE_BOUNDS),
    Key("cloud", "seed_sim", str, convert=_optional_path),
)
"""Every key of the file. Those of the [cloud] table fill ``CloudSection`` (the
``cloud`` field); the others fill ``AgentConfig``."""

CLOUD_TABLE = "cloud"


def key_type(table: str, name: str) -> type:
    """The TOML type of ``[table] name`` (for generators of the file, such as uciconf)."""
    for key in KEYS:
        if (key.table, key.name) == (table, name):
            return key.kind
    raise KeyError(f"[{table}] {name}")


def _has_default(cls: type, name: str) -> bool:
    found = next(f for f in fields(cls) if f.name == name)
    return found.default is not MISSING or found.default_factory is not MISSING


def _read(data: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """The fields of ``cls`` present in ``data``; an absent key with no default is an error."""
    values: dict[str, Any] = {}
    for key in (k for k in KEYS if (k.table == CLOUD_TABLE) == (cls is CloudSection)):
        section = _get(data, key.table, dict, where, {}) if key.table else data
        at = f"{where} [{key.table}]" if key.table else where
        if key.name in section:
            value = _get(section, key.name, key.kind, at)
            if key.bounds is not None:
                _check_bounds(value, key, at)
            values[key.target] = key.convert(value, at)
        elif not _has_default(cls, key.target):
            raise ConfigError(f"{at}: missing required key {key.name!r}")
    return values


def _check_bounds(value: float, key: Key, where: str) -> None:
    assert key.bounds is not None
    lo, hi = key.bounds
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {key.name!r} must be between {lo:g} and {hi:g}, got {value!r}")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML table in ``path``; every way of failing is one ConfigError line naming
    ``what`` and the file (not found, not permitted, a directory, not UTF-8, not TOML)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except OSError as exc:  # EACCES (e.g. a key store the service user was never given: docs/layout.md), EISDIR, EIO
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc} (uid {os.geteuid()})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: not TOML: {exc}") from None


def load(path: Path | str) -> AgentConfig:
    """Read and validate the agent's TOML config."""
    path = Path(path)
    data = read_toml(path, "config file")
    where = str(path)
    _get(data, CLOUD_TABLE, dict, where)  # the table itself is required
    return AgentConfig(cloud=CloudSection(**_read(data, CloudSection, where)), **_read(data, AgentConfig, where))

"""The agent's configuration file (TOML) and the board profile it names.

One file per device, written by factory provisioning (or by ``pocket-lab up`` for the
virtual board). Every key has a typed default here, so a field's meaning is in one
place; a wrong type or a missing required key is a ``ConfigError`` naming the key.
See docs/configuration.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class CloudSection:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    sealing_key: Path
    platform_key: Path
    keepalive_s: int = KEEPALIVE_S


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
    tz_offset: str = "+09:00"
    reflector: tuple[str, int] | None = None
    probe: tuple[str, int] | None = None
    resolv_file: Path | None = None
    record_trace: Path | None = None
    console: dict[str, Any] = field(default_factory=dict)
    """The [console] table, validated by agent/core/consoled.py (docs/console.md)."""
    extra: dict[str, Any] = field(default_factory=dict)


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


def load(path: Path | str) -> AgentConfig:
    """Read and validate the agent's TOML config."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    where = str(path)
    cloud = _get(data, "cloud", dict, where)
    cw = f"{where} [cloud]"
    usage = _get(data, "usage", dict, where, {})
    health = _get(data, "health", dict, where, {})
    modem = _get(data, "modem", dict, where, {})
    status_file = _get(data, "status_file", str, where, "")
    resolv = _get(health, "resolv_file", str, f"{where} [health]", "")
    record = _get(health, "record_trace", str, f"{where} [health]", "")
    return AgentConfig(
        device_id=_get(data, "device_id", str, where),
        state_dir=Path(_get(data, "state_dir", str, where)),
        board_profile=Path(_get(data, "board_profile", str, where)),
        status_file=Path(status_file) if status_file else None,
        modem_port=_get(modem, "port", str, f"{where} [modem]", None),
        cloud=CloudSection(
            host=_get(cloud, "host", str, cw),
            port=_get(cloud, "port", int, cw, 8883),
            ca=Path(_get(cloud, "ca", str, cw)),
            cert=Path(_get(cloud, "cert", str, cw)),
            key=Path(_get(cloud, "key", str, cw)),
            sealing_key=Path(_get(cloud, "sealing_key", str, cw)),
            platform_key=Path(_get(cloud, "platform_key", str, cw)),
            keepalive_s=_get(cloud, "keepalive_s", int, cw, KEEPALIVE_S),
        ),
        report_interval_s=_get(usage, "report_interval_s", float, f"{where} [usage]", REPORT_INTERVAL_S),
        flush_interval_s=_get(usage, "flush_interval_s", float, f"{where} [usage]", FLUSH_INTERVAL_S),
        heartbeat_s=_get(usage, "heartbeat_s", float, f"{where} [usage]", HEARTBEAT_S),
        tz_offset=_get(usage, "tz", str, f"{where} [usage]", "+09:00"),
        sample_interval_s=_get(health, "sample_interval_s", float, f"{where} [health]", SAMPLE_INTERVAL_S),
        radio_interval_s=_get(health, "radio_interval_s", float, f"{where} [health]", RADIO_INTERVAL_S),
        reflector=_hostport(_get(health, "reflector", str, f"{where} [health]", ""), where),
        probe=_hostport(_get(health, "probe", str, f"{where} [health]", ""), where),
        resolv_file=Path(resolv) if resolv else None,
        record_trace=Path(record) if record else None,
        console=_get(data, "console", dict, where, {}),
    )

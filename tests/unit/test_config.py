"""agent/config.py: every default comes from the dataclasses, every key from ``KEYS``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent import config
from agent.config import KEYS, AgentConfig, CloudSection, load
from agent.errors import ConfigError

REQUIRED = """
device_id = "rtr-000001"
state_dir = "/var/lib/pocket-agent"
board_profile = "/usr/share/pocket-agent/profiles/virtual.toml"

[cloud]
host = "mqtt.example.net"
ca = "ca.pem"
cert = "device.pem"
key = "device.key"
sealing_key = "sealing.key"
platform_key = "platform.pub"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_absent_keys_take_the_dataclass_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, REQUIRED))
    for cls, value in ((AgentConfig, cfg), (CloudSection, cfg.cloud)):
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                assert getattr(value, f.name) == f.default, f.name
            elif f.default_factory is not dataclasses.MISSING:
                assert getattr(value, f.name) == f.default_factory(), f.name
    assert cfg.cloud.port == config.MQTT_TLS_PORT and cfg.tz_offset == config.TZ_OFFSET
    assert cfg.state_dir == Path("/var/lib/pocket-agent") and cfg.cloud.ca == Path("ca.pem")


def test_every_key_is_read_with_its_type_and_conversion(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, REQUIRED.replace("[cloud]", '''status_file = ""
[modem]
port = "/dev/ttyUSB2"
[usage]
report_interval_s = 30
tz = "+00:00"
[health]
reflector = "198.18.0.1:7"
resolv_file = "/tmp/resolv.conf"
[cloud]
port = 1883
keepalive_s = 60''')))
    assert cfg.status_file is None  # an empty path is no file
    assert cfg.modem_port == "/dev/ttyUSB2" and cfg.tz_offset == "+00:00"
    assert cfg.report_interval_s == 30.0 and isinstance(cfg.report_interval_s, float)
    assert cfg.reflector == ("198.18.0.1", 7) and cfg.probe is None
    assert cfg.resolv_file == Path("/tmp/resolv.conf")
    assert (cfg.cloud.port, cfg.cloud.keepalive_s) == (1883, 60)


def test_every_field_has_a_key() -> None:
    agent = {k.target for k in KEYS if k.table != "cloud"}
    assert agent | {"cloud"} == {f.name for f in dataclasses.fields(AgentConfig)}
    assert {k.target for k in KEYS if k.table == "cloud"} == {f.name for f in dataclasses.fields(CloudSection)}


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('device_id = "rtr-000001"\n', "", "missing required key 'device_id'"),
    ('host = "mqtt.example.net"\n', "", "[cloud]: missing required key 'host'"),
    ('ca = "ca.pem"\n', "ca = 5\n", "'ca' must be str, got int"),
    ("[cloud]", "[health]\nprobe = \"nowhere\"\n[cloud]", "[health]: expected HOST:PORT"),
    ("[cloud]", "usage = 3\n[cloud]", "'usage' must be dict"),
])
def test_bad_files_are_config_errors_naming_the_key(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, REQUIRED.replace(old, new)))
    assert needle in str(err.value)


def test_missing_cloud_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'cloud'"):
        load(write(tmp_path, REQUIRED.split("[cloud]")[0]))

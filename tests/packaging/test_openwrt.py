"""The OpenWrt side: the procd init script (syntax, and what it hands procd, with procd's
functions stubbed and the real ``pocket-agent uci2toml`` converter), the UCI -> TOML
mapping, and the .ipk's contents."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent import __version__
from agent.config import load
from agent.errors import ConfigError
from agent.uciconf import to_toml
from tests.conftest import REPO

FILES = REPO / "packaging/openwrt/files"
INIT = FILES / "pocket-agent.init"
STUBS = Path(__file__).with_name("procd_stubs.sh")


def run_init(tmp_path: Path, function: str, **uci: str) -> tuple[list[str], Path]:
    """Source the init script under dash with procd stubbed, run ``function``; return the
    procd calls it made and the TOML it generated."""
    toml = tmp_path / "agent.toml"
    launcher = tmp_path / "pocket-agent"
    # own-state needs root and the agent's user (tests/packaging/test_own_state.py runs it for
    # real); here it is reported like a procd call.
    launcher.write_text(f'#!/bin/sh\n[ "$1" = own-state ] && {{ echo "$*"; exit 0; }}\n'
                        f"exec {sys.executable} -m agent \"$@\"\n")
    launcher.chmod(0o755)
    script = (f'. "{STUBS}"; . "{INIT}"; PROG="{launcher}"; AGENT_TOML="{toml}"; '
              f'RUN_DIR="{tmp_path}/run"; PROFILE_DIR="{REPO}/board/profiles"; '
              # pytest's tmp_path is under /tmp: here only /var and /dev count as volatile
              f'VOLATILE_DIRS="/var /dev"; {function}')
    env = {**os.environ, "PYTHONPATH": str(REPO), **{f"UCI_{k}": v for k, v in uci.items()}}
    env.pop("UCI_UCI_VALIDATION_RESULT", None)
    if "UCI_VALIDATION_RESULT" in uci:
        env["UCI_VALIDATION_RESULT"] = uci["UCI_VALIDATION_RESULT"]
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                          check=False)
    assert done.returncode == 0 or "failed" in done.stderr or "tmpfs" in done.stderr, done.stderr
    return done.stdout.splitlines(), toml


PROVISIONED = {"enabled": "1", "device_id": "rtr-000001", "cloud_host": "mqtt.example.net",
               "board_profile": "virtual"}


@pytest.mark.parametrize("path", ["pocket-agent.init", "pocket-agent.hotplug"])
def test_shell_syntax(path: str) -> None:
    subprocess.run(["sh", "-n", str(FILES / path)], check=True)
    for script in ("postinst", "prerm"):
        subprocess.run(["sh", "-n", str(REPO / "packaging/openwrt/control" / script)], check=True)


def test_instance_command_user_capabilities_respawn(tmp_path: Path) -> None:
    state = tmp_path / "flash/state"
    calls, toml = run_init(tmp_path, "start_service", **PROVISIONED, state_dir=str(state))
    assert calls[-1] == "close_instance"
    calls = calls[calls.index("open_instance "):]  # the instance: everything set between open and close
    assert f"set command {tmp_path}/pocket-agent" in calls
    assert f"append command run --config {toml}" in calls
    assert "set user pocket-agent" in calls and "set group dialout" in calls
    assert "set capabilities /etc/capabilities/pocket-agent.json" in calls
    assert "set no_new_privs 1" in calls
    assert "set respawn 3600 5 5" in calls
    assert f"set file /etc/config/pocket-agent {REPO}/board/profiles/virtual.toml" in calls
    assert f"own-state --user pocket-agent --group dialout {state}" in run_init(tmp_path, "start_service",
                                                                                 **PROVISIONED, state_dir=str(state))[0]
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700
    cfg = load(toml)  # the converter's output is what the daemon will read
    assert cfg.device_id == "rtr-000001" and cfg.state_dir == state
    assert cfg.board_profile == REPO / "board/profiles/virtual.toml"
    assert cfg.cloud.host == "mqtt.example.net" and cfg.cloud.port == 8883
    assert cfg.flush_interval_s == 60.0 and cfg.tz_offset == "+09:00"
    assert str(cfg.cloud.key) == "/etc/pocket-agent/device.key"


def test_uci_values_reach_the_command_and_the_toml(tmp_path: Path) -> None:
    calls, toml = run_init(tmp_path, "start_service", **PROVISIONED, state_dir=str(tmp_path / "s"), verbose="1",
                           respawn_retry="2", cloud_port="18883", modem_port="/dev/ttyUSB3", flush_interval_s="300")
    assert "append command -v" in calls and "set respawn 3600 5 2" in calls
    cfg = load(toml)
    assert cfg.cloud.port == 18883 and cfg.modem_port == "/dev/ttyUSB3" and cfg.flush_interval_s == 300.0


def test_disabled_or_invalid_starts_nothing(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    calls, toml = run_init(tmp_path, "start_service", **{**PROVISIONED, "enabled": "0"}, state_dir=state)
    assert calls == [] and not toml.exists()
    calls, toml = run_init(tmp_path, "start_service", **PROVISIONED, state_dir=state, UCI_VALIDATION_RESULT="1")
    assert calls == [] and not toml.exists()


def test_state_on_tmpfs_is_refused(tmp_path: Path) -> None:
    calls, toml = run_init(tmp_path, "start_service", **PROVISIONED, state_dir="/var/lib/pocket-agent")
    assert calls == [] and not toml.exists()


def test_boot_waits_for_the_lan_then_reloads_on_config_change(tmp_path: Path) -> None:
    calls, _ = run_init(tmp_path, "POCKET_AGENT_BOOT=1; start_service; service_triggers", **PROVISIONED,
                        state_dir=str(tmp_path / "state"))
    assert "open_instance " not in calls  # at boot: nothing until the LAN is up
    assert "reload_trigger pocket-agent" in calls
    assert "validation validate_agent_section" in calls
    assert "interface_trigger interface.*.up lan /etc/init.d/pocket-agent start" in calls
    calls, _ = run_init(tmp_path, "service_triggers", **PROVISIONED, state_dir=str(tmp_path / "state"))
    assert not [c for c in calls if c.startswith("interface_trigger")]


def test_converter_refuses_unknown_options_and_bad_numbers() -> None:
    with pytest.raises(ConfigError, match="not an agent option"):
        to_toml({"device": "x"})
    with pytest.raises(ConfigError, match="cloud_port"):
        to_toml({"cloud_port": "eighty"})
    assert 'device_id = "a\\"b"' in to_toml({"device_id": 'a"b'})  # quoted, not injected


def test_capabilities_are_net_admin_only() -> None:
    caps = json.loads((FILES / "pocket-agent.json").read_text())
    assert set(caps) == {"bounding", "effective", "ambient", "permitted", "inheritable"}
    assert all(v == ["CAP_NET_ADMIN"] for v in caps.values())


def ar_members(data: bytes) -> dict[str, bytes]:
    assert data[:8] == b"!<arch>\n"
    members, pos = {}, 8
    while pos < len(data):
        header = data[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        members[name] = data[pos + 60:pos + 60 + size]
        pos += 60 + size + size % 2
    return members


def tar_rows(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name.removeprefix("."): m for m in tar.getmembers()}


def test_ipk_contents(packages: dict[str, Path]) -> None:
    blob = packages["ipk"].read_bytes()
    members = ar_members(blob)
    assert list(members) == ["debian-binary", "control.tar.gz", "data.tar.gz"]
    assert members["debian-binary"] == b"2.0\n"
    listed = subprocess.run(["ar", "t", str(packages["ipk"])], capture_output=True, text=True, check=True).stdout
    assert listed.split() == list(members)  # binutils reads it too
    control = tar_rows(members["control.tar.gz"])
    assert {"/control", "/conffiles", "/postinst", "/prerm"} <= set(control)
    assert control["/postinst"].mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(members["control.tar.gz"]), mode="r:gz") as tar:
        fields = dict(line.split(": ", 1) for line in tar.extractfile("./control").read().decode().splitlines()
                      if ": " in line)
        conffiles = tar.extractfile("./conffiles").read().decode().split()
    assert fields["Version"] == f"{__version__}-1" and fields["Architecture"] == "all"
    assert fields["Require-User"] == "pocket-agent=396:dialout=20"
    for dep in ("python3-light", "python3-paho-mqtt", "python3-pyserial", "python3-cryptography",
                "python3-pyroute2", "kmod-usb-serial-option", "kmod-usb-acm"):
        assert dep in fields["Depends"].split(", ")
    data = tar_rows(members["data.tar.gz"])
    assert conffiles == ["/etc/config/pocket-agent"] and conffiles[0] in data
    assert all(m.uid == 0 and m.gid == 0 for m in data.values())
    assert data["/etc/init.d/pocket-agent"].mode == 0o755
    assert data["/usr/bin/pocket-agent"].mode == 0o755
    assert data["/etc/config/pocket-agent"].mode == 0o600
    assert data["/etc/capabilities/pocket-agent.json"].mode == 0o644
    assert "/etc/hotplug.d/tty/30-pocket-agent" in data and "/lib/upgrade/keep.d/pocket-agent" in data
    assert "/usr/lib/pocket-agent/agent/uciconf.py" in data
    assert not [n for n in data if "__pycache__" in n or "/lib/systemd" in n]

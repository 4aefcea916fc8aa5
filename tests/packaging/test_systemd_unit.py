"""The systemd unit: ``systemd-analyze security`` rates it below 2.0 (systemd-networkd,
which needs the same netlink and CAP_NET_ADMIN, rates 2.8), and it says what the agent's
service-manager side expects (Type=notify with a watchdog, restart rules matching
agent/core/exitcodes.py)."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from pathlib import Path

from agent.core.exitcodes import NO_RESTART, ExitCode
from tests.conftest import REPO, need_tool

UNIT = REPO / "packaging/systemd/pocket-agent.service"
EXPOSURE_GOAL = 2.0
"""The issue's goal: better than systemd-networkd (2.8) and systemd-resolved (2.2)."""


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_security_exposure_below_goal() -> None:
    analyze = need_tool("systemd-analyze")
    done = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(UNIT)], capture_output=True,
                          text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for pocket-agent.service: (\d+\.\d)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) < EXPOSURE_GOAL, done.stdout
    checks = json.loads(subprocess.run([analyze, "security", "--offline=true", "--json=short", str(UNIT)],
                                       capture_output=True, text=True, timeout=60, check=True).stdout)
    exposed = {c["name"] for c in checks if c["exposure"]}
    # What the agent cannot give up: the host's network, netlink, CAP_NET_ADMIN, the tty.
    assert "PrivateNetwork=" in exposed and "CapabilityBoundingSet=~CAP_NET_ADMIN" in exposed
    for kept in ("User=/DynamicUser=", "NoNewPrivileges=", "ProtectSystem=", "SystemCallFilter=~@privileged",
                 "CapabilityBoundingSet=~CAP_SYS_ADMIN", "RestrictAddressFamilies=~AF_PACKET", "UMask="):
        assert kept not in exposed, kept


def test_notify_watchdog_and_restart_rules_match_the_agent() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) >= 10  # the agent pings every half, after a 1 s sample pass
    assert service["Restart"] == "on-failure"
    assert {int(c) for c in service["RestartPreventExitStatus"].split()} == {int(c) for c in NO_RESTART}
    assert ExitCode.CONFIG_INVALID in NO_RESTART and ExitCode.MODEM_LOST not in NO_RESTART
    assert service["User"] == "pocket-agent" and service["SupplementaryGroups"] == "dialout"
    assert service["StateDirectoryMode"] == "0700" and service["UMask"] == "0077"
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_NET_ADMIN"
    assert service["ExecStart"].startswith("/usr/bin/pocket-agent run --config ")


def test_default_configuration_fits_the_unit() -> None:
    """The packaged agent.toml loads, and its paths are the ones the unit provides: the
    state in StateDirectory=, the status file in RuntimeDirectory=, the key the unit's
    condition waits for."""
    from agent.config import load

    cfg = load(REPO / "packaging/debian/agent.toml")
    parsed = unit()
    service = parsed["Service"]
    assert cfg.state_dir == Path("/var/lib") / service["StateDirectory"]
    assert cfg.status_file is not None and cfg.status_file.parent == Path("/run") / service["RuntimeDirectory"]
    assert parsed["Unit"]["ConditionPathExists"] == str(cfg.cloud.key)
    assert cfg.board_profile == Path("/usr/share/pocket-agent/profiles/quectel-ec25-openwrt.toml")
    assert (REPO / "board/profiles" / cfg.board_profile.name).exists()
    assert service["ExecStart"].endswith("--config /etc/pocket-agent/agent.toml")

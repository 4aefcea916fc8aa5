"""One layout (docs/layout.md, agent/layout.py): the unit, the package's staged tree and
provisioning's defaults agree with the table, so a router provisioned with the defaults is
one the installed service can start (issue 19 item 3; issue 28 findings 2 and 3)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from agent import layout
from agent.faces.provision import command
from tests.conftest import REPO
from tests.packaging.test_debian import scratch_root  # noqa: F401 - fixture
from tests.packaging.test_systemd_unit import unit


def test_unit_names_the_layout() -> None:
    parsed = unit()
    service = parsed["Service"]
    assert parsed["Unit"]["ConditionPathExists"] == str(layout.PROVISIONED_MARKER)
    assert layout.PROVISIONED_MARKER == layout.CURRENT_DIR / "cert.pem"  # what provisioning's --cert pass writes
    assert service["User"] == layout.SERVICE_USER
    assert Path("/var/lib") / service["StateDirectory"] == layout.STATE_DIR
    assert Path("/run") / service["RuntimeDirectory"] == layout.RUN_DIR
    assert service["ReadWritePaths"] == str(layout.KEY_DIR)
    assert service["ExecStart"] == f"/usr/bin/pocket-agent run --config {layout.CONFIG_FILE}"


def test_provisioning_defaults_are_the_layout() -> None:
    """Issue 28 finding 2: provisioning wrote state_dir = /etc/pocket-agent/state, read-only
    to the service under ProtectSystem=strict; the unit's StateDirectory= is /var/lib."""
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["--broker", "h:8883", "--ca", "ca.pem", "--platform-key", "p.pub"])
    assert args.key_dir == layout.KEY_DIR and args.config == layout.CONFIG_FILE
    assert args.state_dir is None and layout.default_state_dir() == layout.STATE_DIR  # this host is no OpenWrt
    assert args.status_file == str(layout.STATUS_FILE) and args.owner == layout.SERVICE_USER


def test_openwrt_keeps_state_on_flash(tmp_path: Path) -> None:
    release = tmp_path / "openwrt_release"
    release.write_text("DISTRIB_ID='OpenWrt'\n")
    assert layout.default_state_dir(release) == layout.OPENWRT_STATE_DIR
    assert layout.OPENWRT_STATE_DIR.is_relative_to(layout.CONFIG_DIR)  # the overlay, not /var (tmpfs)


def test_profiles_are_found_installed_and_in_a_checkout(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 28 finding 3: provision without --profile looked in /usr/lib/pocket-agent/board/."""
    assert layout.find_profile("virtual") == layout.SOURCE_PROFILE_DIR / "virtual.toml"  # a checkout
    installed = tmp_path / "profiles"
    installed.mkdir()
    (installed / "virtual.toml").write_text((REPO / "board/profiles/virtual.toml").read_text())
    monkeypatch.setattr(layout, "PROFILE_DIR", installed)
    assert layout.find_profile("virtual") == installed / "virtual.toml"  # installed first


def test_the_installed_agent_looks_for_profiles_where_the_package_puts_them(scratch_root: Path) -> None:  # noqa: F811
    """In the .deb as dpkg unpacks it: the installed code's default profile lookup names a file
    that the package installed."""
    code = scratch_root / layout.CODE_DIR.relative_to("/")
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from agent import layout; "
             "from agent.faces.provision.command import DEFAULT_PROFILE; print(layout.find_profile(DEFAULT_PROFILE))")
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(code)],
                          capture_output=True, text=True, check=True, timeout=60)
    looked_for = Path(done.stdout.strip())
    assert looked_for.parent == layout.PROFILE_DIR
    assert (scratch_root / looked_for.relative_to("/")).is_file()
    assert not (code / "board").exists()  # the checkout's directory does not exist once installed

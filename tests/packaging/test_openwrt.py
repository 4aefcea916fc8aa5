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

from agent import __version__, layout
from agent.boardprofile import load_profile
from agent.cloud import keystore as ks
from agent.cloud.renewal import key_dir_of
from agent.config import load
from agent.core import page_settings
from agent.errors import ConfigError
from agent.uciconf import page_table, parse_uci, to_toml
from tests.conftest import REPO
from tests.packaging.identity import DEVICE_ID, Identity, provisioned

FILES = REPO / "packaging/openwrt/files"
INIT = FILES / "pocket-agent.init"
STUBS = Path(__file__).with_name("procd_stubs.sh")


LAUNCHER = """#!/bin/sh
# Stands in for /usr/bin/pocket-agent: logs its command line, and lets root stand in for
# the pocket-agent account this test host does not have (the init script's --check --user).
echo "$*" >> "{log}"
for a; do shift; [ "$a" = pocket-agent ] && a="$(id -un)"; set -- "$@" "$a"; done
exec {python} -m agent "$@"
"""


def run_init(tmp_path: Path, function: str, unit: Identity | None = None, *, status: int = 0,
             uci_file: Path | None = None, **uci: str) -> tuple[list[str], Path]:
    """Source the init script under dash with procd stubbed, run ``function``; return the
    procd calls it made and the TOML it generated. ``unit``: the provisioned identity the
    script finds at BASE_TOML and PROVISIONED (none: an unprovisioned router). ``status``:
    the exit status the script must end with, so a script that fails for another reason (a
    syntax error, a missing stub) never passes for one that refused as it should."""
    toml = tmp_path / "agent.toml.generated"
    launcher = tmp_path / "pocket-agent"
    launcher.write_text(LAUNCHER.format(log=tmp_path / "launcher.log", python=sys.executable))
    launcher.chmod(0o755)
    base = unit.config if unit else tmp_path / "nowhere/agent.toml"
    marker = unit.current(ks.CERT) if unit else tmp_path / "nowhere/cert.pem"
    script = (f'. "{STUBS}"; . "{INIT}"; PROG="{launcher}"; AGENT_TOML="{toml}"; BASE_TOML="{base}"; '
              f'PROVISIONED="{marker}"; RUN_DIR="{tmp_path}/run"; PROFILE_DIR="{REPO}/board/profiles"; '
              # pytest's tmp_path is under /tmp: here only /var and /dev count as volatile
              f'VOLATILE_DIRS="/var /dev"; UCI_FILE="{uci_file or tmp_path / "no-uci-file"}"; {function}')
    env = {**os.environ, "PYTHONPATH": str(REPO), **{f"UCI_{k}": v for k, v in uci.items()}}
    env.pop("UCI_UCI_VALIDATION_RESULT", None)
    if "UCI_VALIDATION_RESULT" in uci:
        env["UCI_VALIDATION_RESULT"] = uci["UCI_VALIDATION_RESULT"]
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
                          check=False)
    run_init.stderr = done.stderr  # type: ignore[attr-defined]
    assert done.returncode == status, f"{function} exited {done.returncode}, not {status}: {done.stderr}"
    return done.stdout.splitlines(), toml


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    """One provisioned identity (the key store as provisioning lays it) for the init script."""
    return provisioned(tmp_path_factory.mktemp("provisioned"))


PROVISIONED = {"enabled": "1"}
"""UCI for a provisioned router: everything else comes from provisioning's configuration."""


@pytest.mark.parametrize("path", ["pocket-agent.init", "pocket-agent.hotplug"])
def test_shell_syntax(path: str) -> None:
    subprocess.run(["sh", "-n", str(FILES / path)], check=True)
    for script in ("postinst", "prerm"):
        subprocess.run(["sh", "-n", str(REPO / "packaging/openwrt/control" / script)], check=True)


def test_instance_command_user_capabilities_respawn(tmp_path: Path, unit: Identity) -> None:
    state = tmp_path / "flash/state"
    calls, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(state))
    assert calls[-1] == "close_instance", run_init.stderr  # type: ignore[attr-defined]
    calls = calls[calls.index("open_instance "):]  # the instance: everything set between open and close
    assert f"set command {tmp_path}/pocket-agent" in calls
    assert f"append command run --config {toml}" in calls
    assert "set user pocket-agent" in calls and "set group dialout" in calls
    assert "set capabilities /etc/capabilities/pocket-agent.json" in calls
    assert "set no_new_privs 1" in calls
    assert "set respawn 3600 5 0" in calls  # retry 0: forever; the agent's delay grows (agent/respawn.py)
    assert f"set file /etc/config/pocket-agent {unit.config}" in calls
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o700
    # the start-up checks ran first, for the service user (procd cannot tell exit codes apart)
    log = (tmp_path / "launcher.log").read_text()
    assert f"run --config {toml} --check --user pocket-agent" in log
    # the state directory is handed over without chown -R (issue 20; tests/packaging/test_own_state.py)
    assert f"own-state --user pocket-agent --group dialout {state}" in log
    cfg = load(toml)  # the converter's output is what the daemon will read
    assert cfg.device_id == DEVICE_ID and cfg.state_dir == state
    assert cfg.board_profile == REPO / "board/profiles/virtual.toml"
    assert cfg.cloud.host == "127.0.0.1" and cfg.cloud.port == 8883
    assert cfg.flush_interval_s == 60.0 and cfg.tz_offset == "+09:00"


def test_generated_config_keeps_the_key_store_so_renewal_stays_on(tmp_path: Path, unit: Identity) -> None:
    """Issue 19: the init script regenerated a config with flat key paths, where renewal is
    off. Every [cloud] path is provisioning's, in the key store's current generation."""
    _, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(tmp_path / "s"))
    cfg = load(toml)
    for path in (cfg.cloud.ca, cfg.cloud.cert, cfg.cloud.key, cfg.cloud.sealing_key, cfg.cloud.platform_key):
        assert path.parent == unit.key_dir.resolve() / ks.CURRENT and path.exists(), path
    assert key_dir_of(cfg.cloud.cert) == unit.key_dir.resolve()  # renewal is attached to this store
    init = INIT.read_text() + (FILES / "pocket-agent.config").read_text()
    for option in ("cloud_ca", "cloud_cert", "cloud_key", "sealing_key", "platform_key", "device.key"):
        assert option not in init  # no UCI option can point a key outside the key store


def test_uci_values_reach_the_command_and_the_toml(tmp_path: Path, unit: Identity) -> None:
    calls, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(tmp_path / "s"),
                           verbose="1", respawn_retry="2", cloud_port="18883", modem_port="/dev/ttyUSB3",
                           flush_interval_s="300", device_id="rtr-override")
    assert "append command -v" in calls and "set respawn 3600 5 2" in calls
    cfg = load(toml)
    assert cfg.cloud.port == 18883 and cfg.modem_port == "/dev/ttyUSB3" and cfg.flush_interval_s == 300.0
    assert cfg.device_id == "rtr-override" and cfg.cloud.host == "127.0.0.1"


def test_unprovisioned_disabled_or_invalid_starts_nothing(tmp_path: Path, unit: Identity) -> None:
    state = str(tmp_path / "state")
    calls, toml = run_init(tmp_path, "start_service", None, **PROVISIONED, state_dir=state)
    assert calls == [] and not toml.exists()
    assert "not provisioned" in run_init.stderr  # type: ignore[attr-defined]
    calls, toml = run_init(tmp_path, "start_service", unit, **{**PROVISIONED, "enabled": "0"}, state_dir=state)
    assert calls == [] and not toml.exists()
    assert "disabled in /etc/config/pocket-agent" in run_init.stderr  # type: ignore[attr-defined]
    calls, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=state,
                           UCI_VALIDATION_RESULT="1", status=1)
    assert calls == [] and not toml.exists()
    assert "validation of /etc/config/pocket-agent failed" in run_init.stderr  # type: ignore[attr-defined]


def test_failed_start_up_checks_start_no_instance(tmp_path: Path) -> None:
    """What a restart cannot fix is said once in the log and no instance is opened (procd
    would restart it forever: it cannot tell exit codes apart)."""
    broken = provisioned(tmp_path / "broken")
    os.chmod(broken.current(ks.TLS_KEY), 0o644)
    calls, _ = run_init(tmp_path, "start_service", broken, **PROVISIONED, state_dir=str(tmp_path / "s"), status=1)
    assert "open_instance " not in calls
    err = run_init.stderr  # type: ignore[attr-defined]
    assert "has mode 0644" in err and "start-up checks failed" in err


def test_state_on_tmpfs_is_refused(tmp_path: Path, unit: Identity) -> None:
    calls, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir="/var/lib/pocket-agent",
                           status=1)
    assert calls == [] and not toml.exists()
    assert "is on tmpfs" in run_init.stderr  # type: ignore[attr-defined]


def test_boot_waits_for_the_lan_then_reloads_on_config_change(tmp_path: Path, unit: Identity) -> None:
    calls, _ = run_init(tmp_path, "POCKET_AGENT_BOOT=1; start_service; service_triggers", unit, **PROVISIONED,
                        state_dir=str(tmp_path / "state"))
    assert "open_instance " not in calls  # at boot: nothing until the LAN is up
    assert "reload_trigger pocket-agent" in calls
    assert "validation validate_agent_section" in calls
    assert "interface_trigger interface.*.up lan /etc/init.d/pocket-agent start" in calls
    calls, _ = run_init(tmp_path, "service_triggers", unit, **PROVISIONED, state_dir=str(tmp_path / "state"))
    assert not [c for c in calls if c.startswith("interface_trigger")]


def test_init_script_paths_are_the_layout() -> None:
    text = INIT.read_text()
    assert f"BASE_TOML={layout.CONFIG_FILE}\n" in text
    assert f"PROVISIONED={layout.PROVISIONED_MARKER}\n" in text
    assert f"PROFILE_DIR={layout.PROFILE_DIR}\n" in text
    assert f"'state_dir:string:{layout.OPENWRT_STATE_DIR}'" in text
    assert f"'user:string:{layout.SERVICE_USER}'" in text


SYSUPGRADE_STUBS = """append() { eval "$1=\\"\\${$1:+\\$$1 }$2\\""; }
uci() { echo "$UCI_STATE_DIR"; }
"""


def sysupgrade_list(tmp_path: Path, **env: str) -> list[str]:
    """What /lib/upgrade/pocket-agent.sh adds to sysupgrade's list, as sysupgrade runs it:
    sourced, then every function in sysupgrade_init_conffiles called with the list's path."""
    listing = tmp_path / "conffiles"
    listing.write_text("/etc/config/pocket-agent\n")
    stubs = tmp_path / "sysupgrade_stubs.sh"
    stubs.write_text(SYSUPGRADE_STUBS)
    hook = FILES / "pocket-agent.upgrade"
    script = (f'. "{stubs}"; . "{hook}"; POCKET_AGENT_DIR="{tmp_path}/etc/pocket-agent"; '
              f'for f in $sysupgrade_init_conffiles; do "$f" "{listing}"; done')
    (tmp_path / "etc/pocket-agent/keys").mkdir(parents=True, exist_ok=True)
    subprocess.run(["sh", "-c", script], check=True, env={"PATH": os.environ["PATH"], "UCI_STATE_DIR": "",
                                                          **env}, timeout=30)
    return listing.read_text().split()


def test_sysupgrade_keeps_the_identity_but_a_backup_never_carries_it(tmp_path: Path) -> None:
    kept = f"{tmp_path}/etc/pocket-agent"
    assert kept in sysupgrade_list(tmp_path)  # a firmware upgrade: identity, link and state kept
    assert kept not in sysupgrade_list(tmp_path, CONF_BACKUP="-")  # LuCI's "Generate archive"
    assert kept not in sysupgrade_list(tmp_path, CONF_BACKUP="/tmp/backup.tar.gz")  # sysupgrade -b
    assert kept not in sysupgrade_list(tmp_path, CONF_BACKUP_LIST="1")  # sysupgrade -l
    moved = tmp_path / "data/state"
    moved.mkdir(parents=True)
    assert str(moved) in sysupgrade_list(tmp_path, UCI_STATE_DIR=str(moved))


def test_converter_refuses_unknown_options_and_bad_numbers() -> None:
    with pytest.raises(ConfigError, match="not an agent option"):
        to_toml({"device": "x"})
    with pytest.raises(ConfigError, match="cloud_port"):
        to_toml({"cloud_port": "eighty"})
    assert 'device_id = "a\\"b"' in to_toml({"device_id": 'a"b'})  # quoted, not injected


def test_capabilities_are_net_admin_only() -> None:
    caps = json.loads((FILES / "pocket-agent.json").read_text())
    assert set(caps) == {"bounding", "effective", "ambient", "permitted", "inheritable"}
    assert all(v == ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"] for v in caps.values())


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
    assert "/etc/hotplug.d/tty/30-pocket-agent" in data and "/lib/upgrade/pocket-agent.sh" in data
    assert not [n for n in data if n.startswith("/lib/upgrade/keep.d")]  # keep.d goes into backups too
    assert "/usr/lib/pocket-agent/agent/uciconf.py" in data
    assert not [n for n in data if "__pycache__" in n or "/lib/systemd" in n]


# ---- the renter's status page: its own UCI section ------------------------------------------
PAGE_UCI = """# /etc/config/pocket-agent as `uci` writes it, the page's section changed by an operator
config agent 'main'
	option enabled '1'

config page 'page'
	option enabled 'on'
	option address '192.168.8.1/24'
	option port 8080
	list lang 'ja'
	list lang 'en'
	option brand "Acme Mobile"
	option support_phone '0120-12-3456'
"""


def test_the_shipped_uci_file_reads_as_the_page_defaults() -> None:
    """The package's /etc/config/pocket-agent: a page section whose empty options keep the
    board profile's address and port, both languages, English first."""
    sections = parse_uci((FILES / "pocket-agent.config").read_text())
    assert [s.type for s in sections] == ["agent", "page"]
    assert page_table(sections) == {"enabled": True, "languages": ["en", "ja"]}


def test_page_options_from_a_uci_file_reach_the_daemons_page_settings(tmp_path: Path, unit: Identity) -> None:
    uci = tmp_path / "uci-config"  # not "pocket-agent": run_init's launcher is that
    uci.write_text(PAGE_UCI)
    _, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(tmp_path / "s"), uci_file=uci)
    cfg = load(toml)
    assert cfg.page == {"enabled": True, "address": "192.168.8.1/24", "port": 8080, "languages": ["ja", "en"],
                        "brand": "Acme Mobile", "support_phone": "0120-12-3456"}
    s = page_settings.settings(cfg.page, load_profile(cfg.board_profile))
    assert (str(s.interface), s.port, s.languages, s.brand) == ("192.168.8.1/24", 8080, ("ja", "en"), "Acme Mobile")
    uci.write_text(PAGE_UCI.replace("'on'", "'0'").replace("list lang 'ja'\n\tlist lang 'en'", "option lang 'en ja'"))
    _, toml = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(tmp_path / "s"), uci_file=uci)
    assert load(toml).page["enabled"] is False and load(toml).page["languages"] == ["en", "ja"]


@pytest.mark.parametrize(("change", "said"), [
    (("port 8080", "port 'eighty'"), "page.port must be a number"),
    (("port 8080", "port 70000"), "'port' must be a TCP port"),
    (("list lang 'en'", "list lang 'fr'"), "'languages' must be"),
    (("option enabled 'on'", "option enabled 'maybe'"), "page.enabled must be a boolean"),
    (("option brand", "option colour"), "page.colour is not a page option"),
    (("config page 'page'", "config page 'page' extra"), "not a UCI line"),
])
def test_a_bad_page_option_is_refused_before_the_start(tmp_path: Path, unit: Identity, change: tuple[str, str],
                                                      said: str) -> None:
    uci = tmp_path / "uci-config"  # not "pocket-agent": run_init's launcher is that
    uci.write_text(PAGE_UCI.replace(*change))
    calls, _ = run_init(tmp_path, "start_service", unit, **PROVISIONED, state_dir=str(tmp_path / "s"), uci_file=uci,
                        status=1)
    assert "open_instance " not in calls and said in run_init.stderr  # type: ignore[attr-defined]

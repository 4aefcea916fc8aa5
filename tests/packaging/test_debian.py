"""The Debian package: contents, modes, owners, conffiles; installed into a scratch root
with dpkg itself, where the installed ``pocket-agent --version`` runs and the installed
unit passes ``systemd-analyze verify``; the maintainer scripts create the user and
remove the state cleanly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__
from tests.conftest import REPO, need_tool

EXAMPLE = "/usr/share/doc/pocket-agent/examples/agent.toml"
UNIT = "/lib/systemd/system/pocket-agent.service"


def listing(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner/group) from ``dpkg-deb --contents``."""
    out = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        rows[path.removeprefix(".").rstrip("/") or "/"] = (mode, owner)
    return rows


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_contents_modes_owners(packages: dict[str, Path]) -> None:
    rows = listing(packages["deb"])
    assert all(owner == "root/root" for _, owner in rows.values())
    assert rows["/usr/bin/pocket-agent"][0] == "-rwxr-xr-x"
    assert rows[UNIT][0] == "-rw-r--r--"
    assert rows[EXAMPLE][0] == "-rw-r--r--"
    # /etc/pocket-agent/agent.toml is provisioning's (a link into the key store): not shipped
    assert rows["/etc/pocket-agent"][0] == "drwxr-xr-x" and "/etc/pocket-agent/agent.toml" not in rows
    assert "/usr/share/doc/pocket-agent/layout.md" in rows
    assert rows["/usr/lib/pocket-agent/agent/cli.py"][0] == "-rw-r--r--"
    assert "/usr/lib/pocket-agent/agent/_build.txt" in rows
    assert "/usr/share/pocket-agent/profiles/quectel-ec25-openwrt.toml" in rows
    assert "/usr/share/doc/pocket-agent/copyright" in rows
    assert not [p for p in rows if "__pycache__" in p or p.endswith(".pyc") or "/board/" in p]
    assert all(mode.startswith("d") and mode == "drwxr-xr-x" for p, (mode, _) in rows.items()
               if mode.startswith("d"))


def test_control_and_conffiles(packages: dict[str, Path]) -> None:
    deb = packages["deb"]
    assert field(deb, "Package") == "pocket-agent"
    assert field(deb, "Version") == f"{__version__}-1"
    assert field(deb, "Architecture") == "all"
    depends = field(deb, "Depends")
    for dep in ("python3 (>= 3.11)", "python3-paho-mqtt (>= 1.6.1)", "python3-serial",
                "python3-cryptography (>= 38.0.4)", "python3-pyroute2 (>= 0.7.2)", "adduser"):
        assert dep in depends
    info = subprocess.run(["dpkg-deb", "--info", str(packages["deb"])], capture_output=True, text=True,
                          check=True).stdout
    assert " conffiles" not in info  # nothing in /etc is the package's to change (docs/layout.md)


@pytest.fixture
def scratch_root(packages: dict[str, Path], tmp_path: Path) -> Path:
    """The package unpacked by dpkg into an empty root (no maintainer scripts run: see below)."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["dpkg", f"--root={root}", "--force-depends", "--force-not-root", "--unpack",
                    str(packages["deb"])], check=True, capture_output=True, timeout=60)
    return root


def test_installs_into_scratch_root_and_runs(scratch_root: Path) -> None:
    admin = ["--admindir", str(scratch_root / "var/lib/dpkg")]
    files = subprocess.run(["dpkg-query", *admin, "-L", "pocket-agent"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert "/usr/bin/pocket-agent" in files and UNIT in files and EXAMPLE in files
    done = subprocess.run([str(scratch_root / "usr/bin/pocket-agent"), "--version"], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pocket-agent {__version__} (build deb {__version__}-1 git ")


def test_installed_unit_verifies(scratch_root: Path) -> None:
    """``systemd-analyze verify`` on the unit as installed: its ExecStart= exists there."""
    analyze = need_tool("systemd-analyze")
    units = scratch_root / "lib/systemd/system"
    for unit in Path("/lib/systemd/system").glob("*.target"):  # what the unit's ordering names
        if not (units / unit.name).exists():
            shutil.copyfile(unit, units / unit.name)
    for name in ("systemd-udevd.service", "ModemManager.service"):
        (units / name).write_text("[Service]\nExecStart=/bin/true\n")
    (scratch_root / "bin").mkdir(exist_ok=True)
    shutil.copyfile("/bin/true", scratch_root / "bin/true")
    done = subprocess.run([analyze, "verify", f"--root={scratch_root}", UNIT], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def run_script(script: Path, arg: str, root: Path, stubs: Path) -> list[str]:
    """Run a maintainer script with DPKG_ROOT=root and the system tools it calls stubbed
    (each stub logs its command line): the real scripts, none of the host's state."""
    log = stubs / "calls.log"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "DPKG_ROOT": str(root), "STUB_LOG": str(log)}
    subprocess.run(["sh", str(script), arg], check=True, env=env, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    d = tmp_path / "stubs"
    d.mkdir()
    for tool, code in (("getent", 2), ("adduser", 0), ("deb-systemd-helper", 1), ("deb-systemd-invoke", 0),
                       ("systemctl", 0)):
        path = d / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "$STUB_LOG"\nexit {code}\n')
        path.chmod(0o755)
    return d


def test_maintainer_scripts_create_the_user_and_purge_cleanly(scratch_root: Path, stubs: Path) -> None:
    control = scratch_root / "var/lib/dpkg/info"
    for name in ("postinst", "prerm", "postrm"):
        subprocess.run(["sh", "-n", str(control / f"pocket-agent.{name}")], check=True)
    calls = run_script(control / "pocket-agent.postinst", "configure", scratch_root, stubs)
    assert "getent passwd pocket-agent" in calls
    assert any(c.startswith("adduser --system --group") and c.endswith(" pocket-agent") for c in calls), calls
    assert "deb-systemd-helper update-state pocket-agent.service" in calls  # enabled the Debian way
    code = scratch_root / "usr/lib/pocket-agent/agent"
    assert (code / "__pycache__").is_dir()  # byte-compiled: a read-only /usr costs no compile per start
    run_script(control / "pocket-agent.prerm", "remove", scratch_root, stubs)
    assert not list(code.rglob("__pycache__"))  # dpkg can remove every directory it made
    state = scratch_root / "var/lib/pocket-agent"
    state.mkdir(parents=True)
    (state / "usage.journal").write_bytes(b"x")
    run_script(control / "pocket-agent.postrm", "remove", scratch_root, stubs)
    assert state.exists()  # remove keeps state and configuration
    calls = run_script(control / "pocket-agent.postrm", "purge", scratch_root, stubs)
    assert not state.exists() and not (scratch_root / "etc/pocket-agent").exists()
    assert "deb-systemd-helper purge pocket-agent.service" in calls


def test_build_is_reproducible(packages: dict[str, Path], tmp_path: Path) -> None:
    """Timestamps come from the last commit: the same tree gives the same bytes."""
    subprocess.run([sys.executable, str(REPO / "packaging/build.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    for kind in ("deb", "ipk"):
        again = next(tmp_path.glob(f"*.{kind}"))
        assert again.read_bytes() == packages[kind].read_bytes(), kind

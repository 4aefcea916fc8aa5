"""Where an installed agent's files live: the one table of paths (docs/layout.md).

Provisioning (agent/faces/provision/), the configuration it writes, ``pocket-agent
identity``, the OpenWrt converter (agent/uciconf.py), the packages' build
(packaging/build.py) and the tests read these names; the systemd unit, the procd init
script and the UCI defaults are text files that cannot import them, so
tests/packaging/test_layout.py checks that they say the same.

Why this shape (the decision is written out in docs/layout.md):

- the **identity** (keys, certificate, pins and the config that names them) lives in a
  key store owned by the service user, mode 0700, at the same path on Debian and
  OpenWrt: the service reads its keys without root and without any key being readable
  by another user, and certificate renewal (agent/cloud/renewal.py) writes its new
  generation there and switches it with one rename, with no mode ever widened. The
  systemd unit grants exactly that directory with ``ReadWritePaths=``;
- the **state** (usage journal, outbox, anti-replay counters) goes where each system
  keeps state that survives a reboot: ``/var/lib`` on Debian (the unit's
  ``StateDirectory=``), the flash overlay on OpenWrt, whose ``/var`` is a tmpfs;
- the **configuration** ``/etc/pocket-agent/agent.toml`` is written by provisioning
  alone (a symlink into the current identity generation), so it switches with the
  identity it describes; the packages do not ship a file there (one writer per file).
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "pocket-agent"
"""The system user the daemon runs as (Debian postinst's ``adduser``, OpenWrt's
``Require-User``); provisioning gives it the key store."""

CONFIG_DIR = Path("/etc/pocket-agent")
"""root, 0755: holds only the configuration link and the key store."""
CONFIG_FILE = CONFIG_DIR / "agent.toml"
"""What the service runs with: provisioning's symlink to ``KEY_DIR/current/agent.toml``."""
KEY_DIR = CONFIG_DIR / "keys"
"""The key store (agent/cloud/keystore.py): SERVICE_USER, 0700; same path on both systems,
on flash on OpenWrt (the overlay), so the identity survives a reboot everywhere."""
CURRENT_DIR = KEY_DIR / "current"
"""The identity in use; every ``[cloud]`` path of the configuration points in here, which is
also what enables renewal (agent/cloud/renewal.py ``key_dir_of``)."""
PROVISIONED_MARKER = CURRENT_DIR / "cert.pem"
"""Exists once provisioning installed a certificate (its second pass): the systemd unit's
``ConditionPathExists=`` and the procd init script wait for it, so a unit that has keys but
no certificate yet stays idle instead of failing."""

STATE_DIR = Path("/var/lib/pocket-agent")
"""Debian: the unit's ``StateDirectory=pocket-agent`` (SERVICE_USER, 0700)."""
OPENWRT_STATE_DIR = CONFIG_DIR / "state"
"""OpenWrt: on the flash overlay, because /var is a tmpfs there (UCI ``state_dir``)."""
RUN_DIR = Path("/run/pocket-agent")
"""The unit's ``RuntimeDirectory=`` (procd: the init script makes it)."""
STATUS_FILE = RUN_DIR / "status.json"
"""World-readable status (agent/core/status.py); never a secret."""

CODE_DIR = Path("/usr/lib/pocket-agent")
"""The agent's modules, off the system's module path (packaging/pocket-agent.launcher)."""
PROFILE_DIR = Path("/usr/share/pocket-agent/profiles")
"""Where both packages install the board profiles (packaging/build.py)."""
SOURCE_PROFILE_DIR = Path(__file__).resolve().parent.parent / "board" / "profiles"
"""The same profiles in a source checkout (absent once installed: the packages ship no board/)."""

OPENWRT_RELEASE = Path("/etc/openwrt_release")
"""Present on every OpenWrt system: how provisioning knows which state directory is right."""


def profile_dirs() -> tuple[Path, ...]:
    """Where a board profile given by name is looked for: installed first, then the checkout."""
    return (PROFILE_DIR, SOURCE_PROFILE_DIR)


def find_profile(name: str) -> Path:
    """The path of the profile called ``name``: the first directory of ``profile_dirs()``
    that has it, else the installed path (so the error names where it should have been)."""
    for directory in profile_dirs():
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return PROFILE_DIR / f"{name}.toml"


def default_state_dir(openwrt_release: Path = OPENWRT_RELEASE) -> Path:
    """The state directory of the system this runs on (see STATE_DIR and OPENWRT_STATE_DIR)."""
    return OPENWRT_STATE_DIR if openwrt_release.exists() else STATE_DIR


@dataclass(frozen=True)
class Owner:
    """Who the key store belongs to: a uid and gid, and the name they came from."""

    name: str
    uid: int
    gid: int


def service_owner(name: str = SERVICE_USER) -> Owner | None:
    """The service user's uid and primary gid, or None where that account does not exist
    (a source checkout, the lab): then files stay with whoever runs provisioning."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Owner(name, entry.pw_uid, entry.pw_gid)

"""Key files are 0600 at every moment: checked at the open(2) that creates them and at
every write(2) into them, under a umask of 0 (the world-readable default a careless
factory image could have), not by looking at the finished file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.boardprofile import PROFILES_DIR, load_profile
from agent.cloud import keystore as ks
from agent.faces.provision import exitcodes
from agent.faces.provision.flow import Provisioner, Request
from board.virtual.cloud.pki import LabPki
from board.virtual.modem.device import VirtualModem

PRIVATE_NAMES = set(ks.PRIVATE_FILES)


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_private_keys_are_0600_from_the_first_byte_whatever_the_umask(
        tmp_path: Path, pki: LabPki, vmodem: VirtualModem, console: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key_dir = tmp_path / "keys"
    seen: list[tuple[str, str, int]] = []  # (event, path, mode at that moment)
    real_open, real_write, real_mkdir = os.open, os.write, os.mkdir

    def spy_open(path: object, flags: int, mode: int = 0o777, *a: object, **kw: object) -> int:
        fd = real_open(path, flags, mode, *a, **kw)  # type: ignore[arg-type]
        p = _path_of(fd)
        if p.startswith(str(key_dir)) and stat.S_ISREG(os.fstat(fd).st_mode):
            seen.append(("open", p, os.fstat(fd).st_mode & 0o777))
        return fd

    def spy_write(fd: int, data: bytes) -> int:
        p = _path_of(fd)
        if p.startswith(str(key_dir)):
            seen.append(("write", p, os.fstat(fd).st_mode & 0o777))
        return real_write(fd, data)

    def spy_mkdir(path: object, mode: int = 0o777, *a: object, **kw: object) -> None:
        real_mkdir(path, mode, *a, **kw)  # type: ignore[arg-type]
        if str(path).startswith(str(key_dir)):
            seen.append(("mkdir", str(path), os.stat(path).st_mode & 0o777))  # type: ignore[arg-type]

    def no_chmod(*a: object, **kw: object) -> None:
        raise AssertionError(f"chmod called: {a}")

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", spy_write)
    monkeypatch.setattr(os, "mkdir", spy_mkdir)
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old_umask = os.umask(0)
    try:
        req = Request(port=vmodem.path, profile=load_profile("virtual"), profile_path=PROFILES_DIR / "virtual.toml",
                      key_dir=key_dir, config_path=tmp_path / "agent.toml", state_dir=tmp_path / "state",
                      broker_host="127.0.0.1", broker_port=1, ca_file=pki.ca_cert,
                      platform_key_file=pki.platform_pub, online=False, console_port=console)
        outcome = Provisioner(req).run()
    finally:
        os.umask(old_umask)
    assert outcome.exit_code == exitcodes.OK, outcome.record
    key_events = [(ev, mode) for ev, p, mode in seen if Path(p).name in PRIVATE_NAMES]
    assert {ev for ev, _ in key_events} == {"open", "write"}, "the spy did not see the keys being written"
    assert all(mode == 0o600 for _, mode in key_events), key_events
    dirs = [(p, mode) for ev, p, mode in seen if ev == "mkdir"]
    assert dirs and all(mode == 0o700 for _, mode in dirs), dirs
    public = {Path(p).name: mode for ev, p, mode in seen if ev == "open" and Path(p).name not in PRIVATE_NAMES}
    assert public[ks.CERT if ks.CERT in public else ks.CSR] == 0o644

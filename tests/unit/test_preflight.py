"""Start-up checks (agent/preflight.py), one bad input at a time, on the key store laid out
as provisioning lays it: each refusal has its documented exit code and names the path."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from agent import config, preflight
from agent.cloud import keystore as ks
from agent.core.exitcodes import NO_RESTART, ExitCode
from tests.conftest import REPO
from tests.packaging.identity import Identity, provisioned


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return provisioned(tmp_path_factory.mktemp("identity"))


@pytest.fixture
def unit(template: Identity, tmp_path: Path) -> Identity:
    """A fresh copy per test (symlinks kept, modes kept), so each test may break it."""
    root = tmp_path / "unit"
    shutil.copytree(template.root, root, symlinks=True)
    ks.link_config(root / "agent.toml", root / "keys")  # the copy's link points into the copy
    ident = Identity(root, root / "keys", root / "agent.toml", root / "state")
    text = (ident.current(ks.AGENT_CONFIG)).read_text().replace(str(template.root), str(root))
    target = ident.current(ks.AGENT_CONFIG).resolve()
    target.unlink()
    target.write_text(text)
    return ident


def refusal(ident: Identity, **cfg_changes: object) -> preflight.Refusal:
    cfg = config.load(ident.config)
    if cfg_changes:
        cfg = replace(cfg, **cfg_changes)
    with pytest.raises(preflight.Refusal) as info:
        preflight.check(cfg)
    return info.value


def test_a_provisioned_unit_passes_and_the_state_dir_is_made_private(unit: Identity) -> None:
    profile = preflight.check(config.load(unit.config))
    assert profile.name == "virtual"
    assert unit.state_dir.stat().st_mode & 0o777 == 0o700
    assert not (unit.state_dir / preflight.PROBE_NAME).exists()


def test_missing_key(unit: Identity) -> None:
    unit.current(ks.TLS_KEY).unlink()
    r = refusal(unit)
    assert (r.exit_code, r.reason) == (ExitCode.CONFIG_INVALID, "key_missing")
    assert str(unit.current(ks.TLS_KEY)) in str(r) and "[cloud] key" in str(r)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_readable_by_group_or_others(unit: Identity, mode: int) -> None:
    os.chmod(unit.current(ks.SEALING_KEY), mode)
    r = refusal(unit)
    assert (r.exit_code, r.reason) == (ExitCode.CONFIG_INVALID, "key_mode")
    assert f"mode {mode:04o}" in str(r) and "[cloud] sealing_key" in str(r)


def test_key_of_another_user(unit: Identity) -> None:
    with pytest.raises(preflight.Refusal) as info:
        preflight.check(config.load(unit.config), uid=os.geteuid() + 1)
    assert info.value.reason == "key_owner" and f"uid {os.geteuid()}" in str(info.value)


def test_certificate_for_another_key(unit: Identity, tmp_path: Path) -> None:
    other = provisioned(tmp_path / "other")
    cert = unit.current(ks.CERT).resolve()
    cert.unlink()
    shutil.copyfile(other.current(ks.CERT), cert)
    r = refusal(unit)
    assert (r.exit_code, r.reason) == (ExitCode.CONFIG_INVALID, "cert_key")
    assert "for another key" in str(r) and str(unit.current(ks.CERT)) in str(r)
    assert "PRIVATE" not in str(r)


def test_config_naming_a_missing_file(unit: Identity) -> None:
    cfg = config.load(unit.config)
    r = refusal(unit, cloud=replace(cfg.cloud, ca=Path("/nonexistent/ca.pem")))
    assert (r.exit_code, r.reason) == (ExitCode.CONFIG_INVALID, "missing_file")
    assert str(r) == "config names a missing file: [cloud] ca = /nonexistent/ca.pem"
    r = refusal(unit, board_profile=Path("/nonexistent/board.toml"))
    assert r.reason == "missing_file" and "board_profile = /nonexistent/board.toml" in str(r)


def test_state_dir_that_cannot_be_written(unit: Identity, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = refusal(unit, state_dir=blocker / "state")
    assert (r.exit_code, r.reason) == (ExitCode.STATE_UNWRITABLE, "state_dir") and r.exit_code == 73
    assert f"state directory {blocker / 'state'} is not writable: Not a directory" in str(r)


def test_key_store_the_service_cannot_write(unit: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == unit.key_dir else real(p, m))
    r = refusal(unit)
    assert (r.exit_code, r.reason) == (ExitCode.STATE_UNWRITABLE, "key_store")
    assert f"key store {unit.key_dir}" in str(r) and "renewal" in str(r)


def test_board_that_cannot_serve(unit: Identity) -> None:
    """Issue 28 finding 4: the packaged Quectel EC25 profile (generic dialect, no vSIM)."""
    r = refusal(unit, board_profile=REPO / "board/profiles/quectel-ec25-openwrt.toml")
    assert isinstance(r, preflight.UnsupportedBoard) and r.exit_code == ExitCode.CONFIG_INVALID
    assert "cannot serve on board 'quectel-ec25-openwrt'" in str(r) and "issue #24" in str(r)


def test_a_remote_sim_board_without_a_sealed_seed_is_refused(unit: Identity) -> None:
    """The remote-SIM board loads (its dialect is known), but its module has no card of its
    own: with no sealed seed SIM configured there is nothing to start from: refused, saying so."""
    r = refusal(unit, board_profile=REPO / "board/profiles/remote-sim.toml")
    assert isinstance(r, preflight.UnsupportedBoard) and r.exit_code == ExitCode.CONFIG_INVALID
    assert r.reason == "seed_sim_missing" and "[cloud] seed_sim" in str(r)


def test_a_remote_sim_board_with_a_missing_seed_file_is_refused(unit: Identity) -> None:
    cfg = config.load(unit.config)
    r = refusal(unit, board_profile=REPO / "board/profiles/remote-sim.toml",
                cloud=replace(cfg.cloud, seed_sim=Path("/nonexistent/seed.sealed")))
    assert r.reason == "missing_file" and "[cloud] seed_sim = /nonexistent/seed.sealed" in str(r)


def test_a_remote_sim_board_with_its_seed_passes(unit: Identity, tmp_path: Path) -> None:
    seed = tmp_path / "seed.sealed"
    seed.write_bytes(b"{}")  # preflight reads it; opening it is start-up's (agent/core/rsimboot.py)
    cfg = replace(config.load(unit.config), board_profile=REPO / "board/profiles/remote-sim.toml")
    cfg = replace(cfg, cloud=replace(cfg.cloud, seed_sim=seed))
    assert preflight.check(cfg).name == "remote-sim"


def test_refusals_are_never_restarted() -> None:
    assert {ExitCode.CONFIG_INVALID, ExitCode.STATE_UNWRITABLE} <= set(NO_RESTART)
    assert ExitCode.MODEM_LOST not in NO_RESTART

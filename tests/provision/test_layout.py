"""Provisioning writes the layout the installed service runs from (docs/layout.md): run the
factory's two passes for the service user, then load the configuration they wrote and
check that every path it names exists with the owner and mode that user can read, that the
unit's condition names a file the second pass writes, and that, as that user, the daemon's
start-up checks pass and renewal can take the key store (issue 19 item 3)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from agent import config as agent_config
from agent import layout
from agent.cloud import keystore as ks
from agent.faces.provision import exitcodes
from board.virtual.cloud.pki import LabPki
from board.virtual.modem.device import VirtualModem
from tests.packaging.asuser import cli_as, needs_root, nobody, reachable_dir, run_as
from tests.provision.conftest import Line, sign

pytestmark = needs_root


@pytest.fixture
def line_for_service(pki: LabPki, vmodem: VirtualModem, console: str) -> Iterator[Line]:
    """A unit whose files the service user (``nobody`` here) can reach, as /etc is on a router."""
    with reachable_dir() as root:
        yield Line(root / "unit", pki, vmodem.path, console)


def two_passes(line: Line, *extra: str) -> None:
    first = line.run(*extra)
    assert first.code == exitcodes.OK, first.stderr
    marker = line.key_dir / layout.PROVISIONED_MARKER.relative_to(layout.KEY_DIR)
    assert not marker.exists()  # keys and a CSR only: the unit stays idle
    cert = line.root / "signed.pem"
    cert.write_bytes(sign(line.pki, first.record["csr"].encode(), days=90))
    second = line.run("--cert", str(cert), *extra)
    assert second.code == exitcodes.OK, second.stderr
    assert marker.is_file()  # the unit's ConditionPathExists= is met now, and only now


def test_provisioned_files_belong_to_the_service_user_and_it_can_start(line_for_service: Line) -> None:
    line, owner = line_for_service, nobody()
    two_passes(line, "--owner", owner.name)
    cfg = agent_config.load(line.config)
    named = [cfg.cloud.ca, cfg.cloud.cert, cfg.cloud.key, cfg.cloud.sealing_key, cfg.cloud.platform_key,
             cfg.board_profile]
    assert all(p.is_file() for p in named), named
    for path in (cfg.cloud.ca, cfg.cloud.cert, cfg.cloud.key, cfg.cloud.sealing_key, cfg.cloud.platform_key):
        assert path.parent == line.key_dir.resolve() / ks.CURRENT  # renewal stays on
    for key in (cfg.cloud.key, cfg.cloud.sealing_key):
        st = key.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (owner.uid, 0o600), key
    for entry in [line.key_dir, *line.key_dir.rglob("*")]:
        st = entry.lstat()
        assert (st.st_uid, st.st_gid) == (owner.uid, owner.gid), entry
        if stat.S_ISDIR(st.st_mode):
            assert stat.S_IMODE(st.st_mode) == 0o700, entry
        elif stat.S_ISREG(st.st_mode):
            assert not stat.S_IMODE(st.st_mode) & 0o077 or entry.name not in ks.PRIVATE_FILES, entry
    state = cfg.state_dir.stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (owner.uid, 0o700)
    assert cfg.status_file == layout.STATUS_FILE
    # as the service user: the daemon's start-up checks pass ...
    code, err = cli_as(owner, ["run", "--config", str(line.config), "--check"], line.root.parent)
    assert code == 0, err

    # ... and renewal can take the store's lock and stage the next generation there
    def renewal_can_write() -> int:
        store = ks.KeyStore(line.key_dir)
        with store.lock(blocking=False):
            staging = store.stage()
            staging.write_private(ks.TLS_KEY, b"not a key: only where and with which mode")
            mode = (staging.path / ks.TLS_KEY).stat().st_mode & 0o777
            store.recover()  # removes the staging directory again
        return 0 if mode == 0o600 else 1

    code, err = run_as(owner, renewal_can_write, line.root.parent)
    assert code == 0, err


def test_a_store_left_to_root_is_handed_over_by_running_provisioning_again(line_for_service: Line) -> None:
    """An identity provisioned before the layout (root's 0700 store) is adopted, not rewritten."""
    line, owner = line_for_service, nobody()
    two_passes(line, "--owner", "root")
    before = ks.KeyStore(line.key_dir).current()
    assert before is not None and line.key_dir.stat().st_uid == 0
    cert = line.root / "signed.pem"
    again = line.run("--cert", str(cert), "--owner", owner.name)
    assert again.code == exitcodes.OK and again.record["status"] == "kept", again.stderr
    assert ks.KeyStore(line.key_dir).current() == before  # same generation, same files
    assert {p.lstat().st_uid for p in [line.key_dir, *line.key_dir.rglob("*")]} == {owner.uid}


def test_unknown_owner_is_a_usage_error(line_for_service: Line) -> None:
    res = line_for_service.run("--owner", "no-such-user-here")
    assert res.code == exitcodes.USAGE and "no user 'no-such-user-here'" in res.record["error"]
    assert not line_for_service.key_dir.exists()


@pytest.mark.skipif(layout.service_owner() is not None, reason="this host has the service account")
def test_without_the_service_account_files_stay_with_the_caller(line: Line) -> None:
    """A source checkout or the lab has no pocket-agent account: nothing is handed over."""
    first = line.run()
    assert first.code == exitcodes.OK, first.stderr
    assert {p.lstat().st_uid for p in [line.key_dir, *line.key_dir.rglob("*")]} == {os.geteuid()}

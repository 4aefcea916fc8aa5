"""Bad input through the real entry point (``python -m agent run``): the documented exit
code, one line in ``systemctl status`` (STATUS= on a notify socket playing systemd, and
the last log line on stderr, which the journal shows), and no waiting for a restart that
will not come (the unit does not restart 73 or 78: RestartPreventExitStatus=).

Issue 19 ("Bad input") and issue 28 (its bad input, and finding 4: the packaged board
profile cannot serve)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.cloud import keystore as ks
from agent.core.exitcodes import ExitCode
from tests.conftest import REPO
from tests.packaging.asuser import cli_as, needs_root, nobody, reachable_dir
from tests.packaging.identity import Identity, provisioned
from tests.packaging.test_sdnotify import NotifySocket


def _rewrite_config(unit: Identity, old: str, new: str) -> None:
    target = unit.current(ks.AGENT_CONFIG).resolve()
    text = target.read_text().replace(old, new)
    target.unlink()
    target.write_text(text)


def missing_key(unit: Identity) -> None:
    unit.current(ks.TLS_KEY).unlink()


def exposed_key(unit: Identity) -> None:
    os.chmod(unit.current(ks.TLS_KEY), 0o644)


def foreign_cert(unit: Identity) -> None:
    other = provisioned(unit.root.parent / "other")
    cert = unit.current(ks.CERT).resolve()
    cert.unlink()
    shutil.copyfile(other.current(ks.CERT), cert)


def missing_file(unit: Identity) -> None:
    _rewrite_config(unit, str(unit.current(ks.PLATFORM_PUB)), "/nonexistent/platform.pub")


def board_cannot_serve(unit: Identity) -> None:
    _rewrite_config(unit, "board/profiles/virtual.toml", "board/profiles/quectel-ec25-openwrt.toml")


def unwritable_state(unit: Identity) -> None:
    blocker = unit.root / "flash-is-a-file"
    blocker.write_text("")
    _rewrite_config(unit, str(unit.state_dir), str(blocker / "state"))


CASES: dict[str, tuple[Callable[[Identity], None], int, str]] = {
    "missing key": (missing_key, 78, "private key missing: [cloud] key = "),
    "key mode 0644": (exposed_key, 78, "has mode 0644: group or others may read it"),
    "certificate for another key": (foreign_cert, 78, "is for another key"),
    "config names a missing file": (missing_file, 78,
                                    "config names a missing file: [cloud] platform_key = /nonexistent/platform.pub"),
    "board cannot serve": (board_cannot_serve, 78, "cannot serve on board 'quectel-ec25-openwrt'"),
    "state directory unwritable": (unwritable_state, 73, "is not writable: Not a directory"),
}


@pytest.fixture(params=["path"])
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = str(tmp_path / "notify")
    sock.bind(name)
    yield NotifySocket(sock, name)
    sock.close()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_once_with_its_code_and_one_line(case: str, tmp_path: Path, notify: NotifySocket) -> None:
    breaks, code, reason = CASES[case]
    unit = provisioned(tmp_path / "unit")
    breaks(unit)
    env = {**os.environ, "NOTIFY_SOCKET": notify.name}
    done = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(unit.config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == code, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot start: " in last and reason in last, done.stderr
    status = notify.recv(1.0)
    assert status is not None and status["STATUS"].startswith("cannot start: ") and reason in status["STATUS"]
    assert "READY" not in status
    # No retry delay (nothing restarts 73 or 78): the delay would say "retrying in" on
    # stderr and in STATUS= before each of its watchdog pings (agent/respawn.py); counted
    # from what the process said, not timed.
    assert "retrying in" not in done.stderr
    assert notify.recv(0.001) is None  # the refusal's STATUS= was the last word
    assert "PRIVATE KEY" not in done.stderr + status["STATUS"]


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    with reachable_dir() as path:
        yield path


@needs_root
def test_the_service_user_reads_its_keys_and_is_refused_a_root_state_dir(nobody_dir: Path) -> None:
    """As under the unit: the key store handed to the service user passes every check; a state
    directory left to root stops it with 73 naming the path and the reason."""
    owner = nobody()
    unit = provisioned(nobody_dir / "unit", owner=owner)
    unit.state_dir.mkdir(mode=0o700)
    os.chown(unit.state_dir, owner.uid, owner.gid)  # what StateDirectory= does
    code, err = cli_as(owner, ["run", "--config", str(unit.config), "--check"], nobody_dir)
    assert code == ExitCode.OK, err
    os.chown(unit.state_dir, 0, 0)
    code, err = cli_as(owner, ["run", "--config", str(unit.config)], nobody_dir)
    assert code == ExitCode.STATE_UNWRITABLE == 73, err
    assert f"cannot start: state directory {unit.state_dir} is not writable: Permission denied" in err


@needs_root
def test_keys_left_to_root_are_refused_for_the_service_user(nobody_dir: Path) -> None:
    """The Debian failure of issue 19: the key store root's 0700, the service unprivileged.
    It cannot even read the configuration (a link into the store): one line and 78, not a
    traceback and a restart loop. With only the key left to root, the key check says so."""
    unit = provisioned(nobody_dir / "unit")  # no owner: root's, as provisioning made them before
    code, err = cli_as(nobody(), ["run", "--config", str(unit.config)], nobody_dir)
    assert code == ExitCode.CONFIG_INVALID, err
    last = err.strip().splitlines()[-1]
    assert f"cannot start: configuration: cannot read config file {unit.config}: Permission denied" in last
    for path in (unit.key_dir, *unit.key_dir.glob("gen-*")):
        path.chmod(0o755)  # the store reachable, the 0600 key still root's
    code, err = cli_as(nobody(), ["run", "--config", str(unit.config)], nobody_dir)
    assert code == ExitCode.CONFIG_INVALID, err
    assert "belongs to uid 0, not to the service's uid" in err.strip().splitlines()[-1]

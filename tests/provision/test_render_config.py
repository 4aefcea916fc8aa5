"""The configuration provisioning writes names the ports the line gave it: ``--port`` and
``--console-port`` are what the self-test checked, so they are what the service uses."""

from __future__ import annotations

from pathlib import Path

from agent import config as config_mod
from agent.boardprofile import load_profile
from agent.core.consoled import settings
from agent.faces.provision.flow import Request, render_config


def request(tmp_path: Path, **kw: str) -> Request:
    return Request(port=kw.get("port", "/run/pocket-lab/modem.pty"), profile=load_profile("virtual"),
                   profile_path=Path("virtual.toml"), key_dir=tmp_path / "keys", config_path=tmp_path / "agent.toml",
                   state_dir=tmp_path / "state", broker_host="198.18.0.1", broker_port=8883,
                   ca_file=tmp_path / "ca.pem", platform_key_file=tmp_path / "platform.pub",
                   console_port=kw.get("console_port", ""),
                   release_key_file=Path(kw["release_key"]) if "release_key" in kw else None)


def load(tmp_path: Path, req: Request) -> config_mod.AgentConfig:
    path = tmp_path / "written.toml"
    path.write_bytes(render_config(req, "rtr-000001"))
    return config_mod.load(path)


def test_profile_ports_are_not_repeated(tmp_path: Path) -> None:
    cfg = load(tmp_path, request(tmp_path))
    assert cfg.modem_port is None and cfg.console == {}


def test_the_line_s_ports_are_the_service_s(tmp_path: Path) -> None:
    cfg = load(tmp_path, request(tmp_path, port="/dev/ttyUSB2", console_port="/dev/ttyGS0"))
    assert cfg.modem_port == "/dev/ttyUSB2"
    assert settings(cfg.console, tmp_path, "/run/pocket-lab/console-device.pty").ports == ["/dev/ttyGS0"]


def test_a_pinned_release_key_turns_updates_on(tmp_path: Path) -> None:
    assert load(tmp_path, request(tmp_path)).release_key is None  # no key: every offer refused
    cfg = load(tmp_path, request(tmp_path, release_key=str(tmp_path / "release.pub")))
    assert cfg.release_key == (tmp_path / "keys").resolve() / "current" / "release.pub"


def test_the_release_key_must_not_be_the_platform_key(tmp_path: Path) -> None:
    import pytest
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.cloud import sealing
    from agent.errors import ProvisionError
    from agent.faces.provision.flow import _read_release_key

    platform, release = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "platform.pub").write_bytes(sealing.public_pem(platform.public_key()))
    (tmp_path / "release.pub").write_bytes(sealing.public_pem(release.public_key()))
    assert _read_release_key(request(tmp_path, release_key=str(tmp_path / "release.pub"))) is not None
    with pytest.raises(ProvisionError, match="must differ"):
        _read_release_key(request(tmp_path, release_key=str(tmp_path / "platform.pub")))

"""The second pass's broker connection when the unit has no route to the broker: over the
seed SIM's data path (agent/faces/provision/uplink.py). The whole path (a real modem
context, wwan0, the lab's carrier and broker) runs in tests/system; here, the decision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.boardprofile import load_profile
from agent.cloud.connect_once import ConnectResult
from agent.errors import ModemError
from agent.faces.provision import uplink
from agent.faces.provision.flow import Provisioner, Request
from tests.conftest import need_root, need_tool


def request(tmp_path: Path, broker: tuple[str, int]) -> Request:
    return Request(port="/dev/null", profile=load_profile("virtual"), profile_path=Path("virtual.toml"),
                   key_dir=tmp_path / "keys", config_path=tmp_path / "agent.toml", state_dir=tmp_path / "state",
                   broker_host=broker[0], broker_port=broker[1], ca_file=tmp_path / "ca.pem",
                   platform_key_file=tmp_path / "platform.pub")


def test_a_routed_broker_is_connected_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uplink, "over_seed", lambda *a, **k: pytest.fail("the seed path was brought up"))
    res = Provisioner(request(tmp_path, ("127.0.0.1", 1)))._connect(lambda: ConnectResult(True, "direct"))
    assert res == ConnectResult(True, "direct")


def test_no_route_goes_over_the_seed_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def over_seed(port: str, profile: Any, attempt: Any, *, open_timeout: float) -> ConnectResult:
        calls.append((port, profile.data_interface))
        return attempt()

    monkeypatch.setattr(uplink, "has_route", lambda host, port: False)
    monkeypatch.setattr(uplink, "over_seed", over_seed)
    res = Provisioner(request(tmp_path, ("198.18.0.1", 8883)))._connect(lambda: ConnectResult(True, "seed"))
    assert res.ok and calls == [("/dev/null", "wwan0")]


def test_a_seed_path_that_fails_is_a_failed_check_not_a_crash(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def over_seed(*a: Any, **k: Any) -> ConnectResult:
        raise ModemError("+CME ERROR: 148")

    monkeypatch.setattr(uplink, "has_route", lambda host, port: False)
    monkeypatch.setattr(uplink, "over_seed", over_seed)
    res = Provisioner(request(tmp_path, ("198.18.0.1", 8883)))._connect(lambda: ConnectResult(True, "never"))
    assert not res.ok and "seed SIM's data path failed: ModemError: +CME ERROR: 148" in res.detail


def test_has_route() -> None:
    assert uplink.has_route("127.0.0.1", 8883)
    assert not uplink.has_route("no-such-host.invalid", 8883)


def test_no_route_in_an_empty_network_namespace() -> None:
    need_root()
    unshare = need_tool("unshare")
    code = "from agent.faces.provision import uplink; print(uplink.has_route('198.18.0.1', 8883))"
    done = subprocess.run([unshare, "--net", sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False"

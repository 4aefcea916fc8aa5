"""The daemon's exit code tells the service manager whether a restart can help: a stop
nobody asked for (a task died, the modem is lost) is never 0, or systemd's
``Restart=on-failure`` would leave the router without its agent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.boardprofile import load_profile
from agent.config import AgentConfig, CloudSection
from agent.core.exitcodes import ExitCode, exit_code_for
from agent.core.supervisor import Supervisor
from agent.errors import ConfigError, JournalError, ModemError, PortClosed
from tests.conftest import REPO


def supervisor(tmp_path: Path) -> Supervisor:
    nowhere = Path("/nonexistent")
    cfg = AgentConfig(device_id="dev-0001", state_dir=tmp_path, board_profile=REPO / "board/profiles/virtual.toml",
                      cloud=CloudSection(host="127.0.0.1", port=8883, ca=nowhere, cert=nowhere, key=nowhere,
                                         sealing_key=nowhere, platform_key=nowhere))
    sup = Supervisor(cfg, load_profile(cfg.board_profile))

    async def no_shutdown() -> None:
        return None

    sup._shutdown = no_shutdown  # type: ignore[method-assign]  # nothing was opened
    return sup


def run_with_start(sup: Supervisor, start: object) -> int:
    sup._start = start  # type: ignore[method-assign]
    return asyncio.run(asyncio.wait_for(sup.run(), 10))


def test_a_dead_task_stops_the_daemon_with_a_failure(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)

    async def start() -> None:
        async def crash() -> None:
            raise RuntimeError("bug")
        sup.spawn(crash(), "sample")

    assert run_with_start(sup, start) == ExitCode.FAILURE


def test_modem_lost_at_start_is_69(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)

    async def start() -> None:
        raise PortClosed("cannot open /dev/ttyUSB2")

    assert run_with_start(sup, start) == ExitCode.MODEM_LOST == 69


@pytest.mark.parametrize(("error", "code"), [(ConfigError("x"), 78), (ModemError("not registered"), 1), (PortClosed("x"), 69),
                                             (JournalError("x"), 74), (PermissionError("x"), 74),
                                             (RuntimeError("x"), 1)])
def test_exit_code_for(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code

"""The healer (agent/core/heal.py) against the virtual modem on a real pty, through the
real driver and recovery ladder: each fault of the modem and the network, the step the
healer takes, and the outage it records (issue 9)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest

from agent.clock import Clock, FakeClock
from agent.core import exitcodes
from agent.core.heal import Healer
from agent.errors import NetError
from agent.health.outage import OutageLog
from agent.modem.driver import Modem
from agent.modem.recovery import LadderPolicy, RecoveryLadder
from agent.net.link import WanLink
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig, NullCarrier
from board.virtual.network.carrier import LabLayout
from board.virtual.network.faults import (
    FaultError,
    FaultRunner,
    FaultyCarrier,
    install_ceer,
    link_port,
)

QUICK_LADDER = LadderPolicy(retry_attempts=1, retry_backoff=0.01, ping_timeout=0.3, reopen_attempts=1,
                            reopen_backoff=0.01, radio_off_settle=0.01, power_ready_timeout=0.1)
"""The ladder's steps, shortened so a test climbs it in about a second."""


async def _no_events(ready: asyncio.Event | None = None) -> AsyncIterator[Any]:
    raise NetError("no data interface in this test")
    yield  # pragma: no cover - makes this an async generator


def no_link() -> Any:
    """The real ``WanLink``'s interface (autospecced) without netlink events: the pty tests
    have no data interface. A call the real link would refuse fails here too."""
    link = create_autospec(WanLink, instance=True)
    link.events.side_effect = _no_events
    return link


class Rig:
    """A virtual modem on a pty, the driver on its stable path, and a healer."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.carrier = FaultyCarrier(NullCarrier(), seed_imsi=None)
        self.vm = VirtualModem(ModemConfig(time_scale=FAST_SCALE), self.carrier)
        install_ceer(self.vm, self.carrier)
        link_port(tmp, self.vm.start())
        self.runner = FaultRunner(self.vm, self.carrier, LabLayout(prefix="unused"), tmp,
                                  on_port=lambda path: link_port(tmp, path))
        self.modem = Modem(str(tmp / "modem.pty"), "virtual", init_timeout=1.0)
        self.clock: Clock = FakeClock()
        self.calls: list[str] = []
        self.reported: list[dict[str, Any]] = []
        self.gave_up: list[tuple[int, str]] = []
        self.outages = OutageLog(tmp / "state", self.clock)
        self.on_seed = False

    async def start(self) -> Healer:
        await self.modem.open()
        await self.modem.registration()  # enables +CEREG URCs, as the daemon does at start
        for _ in range(100):
            if (await self.modem.registration()).registered:
                break
            await asyncio.sleep(0.01)
        else:  # the rig itself is broken: say so, not a confusing failure further on
            raise AssertionError(f"the seed SIM never registered: {await self.modem.registration()}")
        await self.modem.activate_context(1)
        ladder = RecoveryLadder(self.modem, None, policy=QUICK_LADDER, clock=self.clock)

        async def reactivate() -> None:
            self.calls.append("reactivate")
            await self.modem.activate_context(1)

        async def reattach() -> None:
            self.calls.append("reattach")

        async def release() -> None:
            self.calls.append("release")

        async def swap(reason: str) -> None:
            self.calls.append(f"swap {reason}")

        async def report(pending: list[dict[str, Any]]) -> None:
            self.reported += pending
            self.outages.mark_reported([o["id"] for o in pending])

        self.healer = Healer(self.modem, ladder, no_link(), outages=self.outages, clock=self.clock,
                             reactivate_data=reactivate, reattach=reattach, release_data=release, request_swap=swap,
                             give_up=lambda code, why: self.gave_up.append((code, why)),
                             report_outages=report, on_seed=lambda: self.on_seed, port_return_timeout=1.0)
        return self.healer

    async def until_found(self, want: str, tries: int = 40, either: tuple[str, ...] = ()) -> list[str]:
        """Passes until one finds ``want`` (or one of ``either``) broken (URC-driven faults
        land asynchronously)."""
        seen = []
        for _ in range(tries):
            seen.append(await self.healer.check())
            if seen[-1] == want or seen[-1] in either:
                return seen
            await asyncio.sleep(0.02)
        raise AssertionError(f"never found {want}: {seen}")

    async def healed(self, tries: int = 200) -> None:
        for _ in range(tries):
            if await self.healer.check() == "ok":
                return
            if isinstance(self.clock, FakeClock):
                self.clock.advance(1.0)  # retries fall due on the healer's clock
            await asyncio.sleep(0.02)
        raise AssertionError(f"not healed: {self.healer.summary()}")

    async def close(self) -> None:
        await self.modem.close()
        self.vm.stop()


def rig_test(fn: Callable[[Rig], Awaitable[None]]) -> Callable[[Path], None]:
    """Run ``fn(rig)`` on a fresh loop with a fresh rig (no pytest-asyncio in the venv)."""

    def wrapper(tmp_path: Path) -> None:
        async def body() -> None:
            rig = Rig(tmp_path)
            try:
                await fn(rig)
            finally:
                await rig.close()

        asyncio.run(asyncio.wait_for(body(), 60))

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__  # not wraps(): pytest would see `rig`
    return wrapper


@rig_test
async def test_network_deactivation_is_healed_by_one_activation(rig: Rig) -> None:
    healer = await rig.start()
    assert await healer.check() == "ok"
    rig.runner.request({"kind": "pdn-deact"})
    await rig.until_found("data")
    await rig.healed()
    assert rig.calls == ["release", "reactivate"], "the dead bearer's address goes first, then one activation"
    (outage,) = rig.reported
    assert outage["kind"] == "no_data" and "nw_pdn_deact" in outage["cause"]


@rig_test
async def test_rejected_context_names_the_esm_cause_and_backs_off(rig: Rig) -> None:
    healer = await rig.start()
    rig.runner.request({"kind": "pdn-reject", "cause": 33, "seconds": 60})
    await rig.until_found("data")
    assert "ESM cause #33" in (rig.outages.open_interval("no_data") or {})["cause"]
    attempts = rig.calls.count("reactivate")
    for _ in range(5):  # no faster than the back-off allows, however often it is woken
        await healer.check()
    assert rig.calls.count("reactivate") <= attempts + 1
    rig.runner.request({"kind": "clear"})
    await rig.healed()
    assert any("ESM cause #33" in o["cause"] for o in rig.reported)


@rig_test
async def test_registration_reject_names_the_emm_cause_and_only_a_refused_sim_is_swapped(rig: Rig) -> None:
    await rig.start()
    rig.runner.request({"kind": "reject", "cause": 15, "seconds": 60})
    await rig.until_found("registration")
    assert "EMM cause #15" in (rig.outages.open_interval("no_service") or {})["cause"]
    assert not any(c.startswith("swap") for c in rig.calls), "#15 (no suitable cells) is not the SIM's fault"
    rig.runner.request({"kind": "clear"})
    rig.runner.request({"kind": "reject", "cause": 3, "seconds": 60})
    for _ in range(40):
        await rig.healer.check()
        if any(c.startswith("swap") for c in rig.calls):
            break
        await asyncio.sleep(0.02)
    swaps = [c for c in rig.calls if c.startswith("swap")]
    assert swaps == ["swap sim_refused: registration_rejected: EMM cause #3"]
    await rig.healer.check()
    assert len([c for c in rig.calls if c.startswith("swap")]) == 1, "swaps are paced"
    rig.runner.request({"kind": "clear"})
    await rig.healed()


@rig_test
async def test_reboot_is_healed_and_named(rig: Rig) -> None:
    await rig.start()
    rig.runner.request({"kind": "reboot"})
    # Which part a pass finds broken first depends on where the reboot is when it looks: the
    # data context goes at once, registration a moment later (seen both ways on a loaded
    # machine). What matters is the outage's cause below.
    seen = await rig.until_found("registration", either=("data",))
    assert seen[-1] in ("registration", "data")
    await rig.healed()
    assert any(o["kind"] == "no_service" and "modem_rebooted" in o["cause"] for o in rig.reported)


@rig_test
async def test_renamed_port_is_followed_through_the_stable_path(rig: Rig) -> None:
    healer = await rig.start()
    old = os.readlink(rig.tmp / "modem.pty")
    rig.runner.request({"kind": "usb-gone", "seconds": 0.3})
    await asyncio.sleep(0.4)
    rig.runner.tick()  # the port comes back (the board process ticks every 0.1 s)
    assert os.readlink(rig.tmp / "modem.pty") != old, "the modem should come back under a new name"
    await rig.healed()
    assert healer.stats.last_step in ("retry", "reopen", "port_return", "reactivate")
    assert any(o["kind"] == "modem_unresponsive" for o in rig.reported)
    assert not rig.gave_up


@rig_test
async def test_modem_gone_for_good_gives_up_with_modem_lost(rig: Rig) -> None:
    rig.clock = Clock()  # the wait for the port is bounded in real seconds (1 s here)
    healer = await rig.start()
    rig.runner.request({"kind": "usb-gone", "seconds": 600})
    assert await healer.check() == "gave_up"
    ((code, why),) = rig.gave_up
    assert code == exitcodes.MODEM_LOST and "port did not return" in why
    rig.runner.request({"kind": "clear"})


@rig_test
async def test_busy_modem_is_not_recovered_by_force(rig: Rig) -> None:
    healer = await rig.start()
    rig.runner.request({"kind": "busy", "count": 2, "code": 515})
    await rig.healed()
    assert healer.ladder.stats.runs == 0, "a busy modem is alive: no ladder"


def test_fault_requests_are_checked(tmp_path: Path) -> None:
    carrier = FaultyCarrier(NullCarrier(), seed_imsi=None)
    runner = FaultRunner(VirtualModem(ModemConfig(time_scale=FAST_SCALE), carrier), carrier,
                         LabLayout(prefix="unused"), tmp_path)
    with pytest.raises(FaultError, match="unknown fault"):
        runner.request({"kind": "meteor"})
    with pytest.raises(FaultError, match="--seconds"):
        runner.request({"kind": "hang", "seconds": 99999})
    with pytest.raises(FaultError, match="--code"):
        runner.request({"kind": "busy", "code": 3})
    with pytest.raises(FaultError, match="--step"):
        runner.request({"kind": "clock"})
    assert runner.request({"kind": "list"}) == {"ok": True, "active": []}

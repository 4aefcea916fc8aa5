"""``systemctl stop`` in every phase, on the real daemon (issue 28, finding 5).

The agent runs as the service manager runs it (``python -m agent run`` with a notify
socket) on the light rig of tests/integration/stop_rig.py: a virtual modem on a pty, a real
mosquitto, the reference cloud, a veth whose counters are the carrier's view. The modem or
the cloud holds it in the phase under test, and the test says so by an event (the modem
answered "not registered"; the broker accepted the connection it will never answer; the
cloud received the assignment request; the swap's slot switch arrived and the attach is
waiting), never by a sleep. Then SIGTERM, and what a
service manager and the billing rely on:

- the agent exits within ``STOP_CONTRACT_S`` with code 0 (a clean stop: not restarted,
  not counted as a failure), having said STOPPING=1;
- usage is exact: the journal's records on disk plus what the cloud took in equal the
  IP bytes the data interface moved, so nothing counted was left unflushed;
- the status file says ``stopped``.

A swap stopped in ``attach`` is left on disk in that phase; the next start finishes it
(docs/swap.md, "Stopped during a swap"), which the swap test checks too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tool
from tests.integration.stop_rig import START_TIMEOUT_S, Rig, SilentCloud, Stopped, rig

STOP_CONTRACT_S = 3.0
"""The contract (issue 28; packaging/README.md "What the service manager can rely on"):
SIGTERM to exit within 3 s in any phase. Measured from the signal to the reaped exit, as
the service manager sees it; the agent budgets its shutdown to fit (agent/core/supervisor.py
STOP_BUDGET_S), far inside the unit's TimeoutStopSec=20 after which systemd would kill it.
Measured 0.4-1.1 s (1.7-2.5 s with a broker that hangs the handshake) on a 2-core machine
at load 3-8: the bound is the contract itself, not a margin over a measurement."""

TCP_CLOSE = 2 * 52
"""A FIN (or its ACK) is 52 IP bytes with TCP timestamps; at most two each way."""


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Rig]:
    need_root()
    need_tool("ip")
    need_tool("mosquitto")
    with rig(tmp_path) as r:
        yield r


def assert_clean_stop(r: Rig, stopped: Stopped, phase: str, after_exit: tuple[int, int] = (0, 0)) -> None:
    """``after_exit``: IP bytes (rx, tx) the kernel may still move once the agent has taken
    its last reading, for a socket the agent could not close (see the silent broker)."""
    print(f"\nSIGTERM during {phase}: exit {stopped.code} after {stopped.seconds:.2f} s")
    assert stopped.code == 0, r.log_tail()
    assert stopped.seconds < STOP_CONTRACT_S, r.log_tail()
    assert stopped.said[-1].get("STOPPING") == "1"
    counted, moved = r.counted(), r.moved()
    assert r.accounted() == counted  # (rx, tx): the journal on disk + the cloud = all the agent counted
    assert counted[0] <= moved[0] <= counted[0] + after_exit[0] and counted[1] <= moved[1] <= counted[1] + after_exit[1]
    assert r.status()["state"] == "stopped"


def test_sigterm_while_waiting_for_registration(device: Rig) -> None:
    assert device.modem is not None
    device.modem.take_cell()
    agent = device.spawn()
    device.wait_phase(device.modem.searching, agent)
    stopped = device.sigterm(agent)
    assert_clean_stop(device, stopped, "the registration wait")
    assert not any("READY" in said for said in stopped.said)  # it never served


def test_sigterm_while_the_broker_hangs_the_connection(device: Rig) -> None:
    """Reaching the cloud: paho's thread sits in a TLS handshake the broker never answers
    (bounded only by the connect timeout, 15 s). The stop must not wait for that thread:
    joining it in the loop's executor held the exit for seconds after the shutdown."""
    connecting = device.use_silent_broker()
    agent = device.spawn()
    device.wait_phase(connecting, agent)
    stopped = device.sigterm(agent)
    # The half-open connection lives in paho's thread, out of the agent's reach: the kernel
    # closes it when the process ends, after the last reading. That FIN and its ACK are
    # counted by the next start, from the journal's durable baseline (docs/usage.md).
    assert_clean_stop(device, stopped, "the cloud connection (broker silent)", after_exit=(TCP_CLOSE, TCP_CLOSE))


def test_sigterm_while_waiting_for_an_assignment(device: Rig) -> None:
    cloud = device.start_cloud(SilentCloud)  # takes the request, never answers
    agent = device.spawn()
    device.wait_phase(cloud.asked, agent)
    stopped = device.sigterm(agent)
    assert_clean_stop(device, stopped, "the assignment wait")
    assert device.moved() != (0, 0)  # the seed SIM carried the MQTT session: usage was really at stake
    swap = device.swap_file()  # the boot swap, stopped before its switch: the seed SIM never stopped
    assert swap is not None and swap["phase"] == "request"  # the next start reports it interrupted


def test_sigterm_during_a_swap_then_the_next_start_finishes_it(device: Rig) -> None:
    assert device.modem is not None
    device.start_cloud()
    device.modem.hold_after_switch()  # the new SIM finds no cell: the swap waits in attach
    agent = device.spawn()
    device.wait_phase(device.modem.held, agent)
    stopped = device.sigterm(agent)
    assert_clean_stop(device, stopped, "a swap (attach)")
    swap = device.swap_file()
    assert swap is not None and swap["phase"] == "attach"  # abandoned where it was, on disk
    assert swap["old"]["seed"] and swap["new"]["iccid"] != swap["old"]["iccid"]

    device.modem.give_cell()
    agent = device.spawn()
    ready = device.said("READY", START_TIMEOUT_S)[-1]
    assert ready["STATUS"] == f"serving on SIM {swap['new']['iccid']}"  # finished from attach
    assert device.swap_file() is None
    assert_clean_stop(device, device.sigterm(agent), "serving, after the resumed swap")

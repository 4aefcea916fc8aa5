"""The real CloudLink under fleet pacing: CONNACK "server busy" / "connection rate exceeded"
widen its back-off, and the platform's pacing policy is adopted, persisted and bounded.

mosquitto 2.0 never answers CONNACK with 0x89 or 0x9F and has no connection rate limit,
so a tiny TLS front (board.fleet.front) sits before the real mosquitto: it answers the
first connections itself with a refusing CONNACK (five bytes), then pipes every later
connection, untouched, to mosquitto, where the link's session goes live for real.
"""

from __future__ import annotations

import asyncio
import random
import time
from itertools import pairwise
from pathlib import Path

from agent.cloud import pacing
from agent.cloud.link import CloudLink
from agent.cloud.pacing import CONNECTION_RATE_EXCEEDED, SERVER_BUSY
from board.fleet.front import ConnackFront
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until


def test_busy_and_rate_exceeded_connacks_widen_the_real_links_backoff(broker: Broker, pki: LabPki,
                                                                      tmp_path: Path) -> None:
    script = [SERVER_BUSY, CONNECTION_RATE_EXCEEDED, SERVER_BUSY]
    front = ConnackFront(pki.broker_cert, pki.broker_key, (broker.host, broker.port),
                         lambda: script.pop(0) if script else None)
    window, base, cap = 0.05, 0.05, 2.0
    config = device_config(pki, broker, port=front.start(), backoff_base=base, backoff_cap=cap,
                           first_delay_max=window)

    async def body() -> CloudLink:
        link = CloudLink(config, state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(15), "the link never reached mosquitto through the front"
        finally:
            await link.stop()
        return link

    try:
        link = run(body())
    finally:
        front.stop()
    assert [code for _, code in front.refused] == [SERVER_BUSY, CONNECTION_RATE_EXCEEDED, SERVER_BUSY]
    assert len(front.forwarded) == 1
    assert link.stats.attempts == 4 and link.stats.connects == 1
    # Each refusal's wait was drawn from the upper half of a doubling ceiling (0.1, 0.2,
    # 0.4 s); plain failures would wait anywhere in [0, 0.05], [0, 0.1], [0, 0.2] s.
    d1, d2, d3 = link.stats.delays[:3]  # request_window 0: the first connection goes at once
    assert 2 * base / 2 <= d1 <= 2 * base
    assert 4 * base / 2 <= d2 <= 4 * base
    assert 8 * base / 2 <= d3 <= 8 * base
    assert max(link.stats.delays) <= cap
    seen = [t for t, _ in front.refused] + front.forwarded
    gaps = [b - a for a, b in pairwise(seen)]
    assert all(g >= d for g, d in zip(gaps, (d1, d2, d3)))  # the broker saw the waits, not just the counters


def test_platform_pacing_is_adopted_persisted_and_a_reckless_one_refused(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    state = tmp_path / "agent"

    async def first_run() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=state)
        await link.start()
        try:
            assert await link.wait_connected(5)
            cloud.set_policy("dev-a", {"version": 4, "pacing": {"reconnect_window_s": 350, "request_window_s": 60,
                                                                "backoff_cap_s": 600}})
            await until(lambda: link.pacer.policy.version == 4)
            reckless = {"version": 5, "pacing": {"backoff_cap_s": 1}}  # would hammer: breaks the contract
            cloud.publish_policy("dev-a", cloud.sign_policy("dev-a", reckless))  # signed, unchecked
            await until(lambda: any(e["reason"] == "policy_bounds" for e in errors(cloud)))
            assert link.pacer.policy.version == 4 and link.pacer.policy.backoff_cap_s == 600
        finally:
            await link.stop()

    async def after_restart() -> pacing.PacingPolicy:
        return CloudLink(device_config(pki, broker), state_dir=state).pacer.policy

    run(first_run())
    kept = asyncio.run(after_restart())
    assert (kept.version, kept.reconnect_window_s, kept.request_window_s, kept.backoff_cap_s) == (4, 350, 60, 600)


def test_first_request_after_boot_waits_its_spread_over_the_request_window(
        broker: Broker, pki: LabPki, cloud: ReferenceCloud, tmp_path: Path) -> None:
    """The link's first connection after start, and so its first assignment request, waits
    uniform [0, request_window] (the first draw of the link's rng); the cloud sees neither
    earlier."""
    window, seed = 2.0, 5
    expected = random.Random(seed).uniform(0.0, window)

    async def body() -> float:
        link = CloudLink(device_config(pki, broker, request_window=window), state_dir=tmp_path / "agent",
                         rng=random.Random(seed))
        started = time.time()
        await link.start()
        try:
            assert await link.wait_connected(5)
            await link.request_assignment("boot", timeout=10)
            return started
        finally:
            await link.stop()

    started = run(body())
    arrived = next(e["t"] for e in cloud.events() if e["kind"] == "assign/request")
    assert expected > 0.5  # the seed gives a wait worth measuring (longer than the connection takes)
    assert arrived - started >= expected - 0.05
    born = next(e["t"] for e in cloud.events() if e["kind"] == "state")  # the session's birth message
    assert born - started >= expected - 0.05


def test_a_swap_pause_resumes_at_once_and_an_outage_waits_the_resume_window(broker: Broker, pki: LabPki,
                                                                          tmp_path: Path) -> None:
    window, base = 30.0, 0.1  # a 30 s resume window would make a swap's return take up to 30 s

    async def body() -> CloudLink:
        link = CloudLink(device_config(pki, broker, backoff_base=base), state_dir=tmp_path / "agent")
        await link.start()
        try:
            assert await link.wait_connected(5)
            link.pacer.set_policy(pacing.PacingPolicy(resume_window_s=window, backoff_base_s=base))  # as if sent
            link.set_network_available(False, own=True)  # the supervisor switching SIMs
            link.set_network_available(True)
            await until(lambda: link.stats.connects == 2, 5)
            link.set_network_available(False)  # the carrier went away
            link.set_network_available(True)
            await until(lambda: len(link.stats.delays) == 2)
        finally:
            await link.stop()
        return link

    link = run(body())
    own, outage = link.stats.delays
    assert own <= pacing.OWN_PAUSE_JITTER_S  # no fleet window after our own switch
    assert 0.0 <= outage <= window  # drawn over the whole window (the link sleeps it; not awaited here)

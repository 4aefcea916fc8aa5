"""The one traffic model (board/virtual/network/traffic.py) against the lab's byte source
(services.py) on loopback: what ``pocket-lab traffic`` and the trace recorder both run."""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import pytest

from board.virtual.network import services, traffic


async def _against_source(kind: str, seconds: float, budget: int = services.MAX_STREAM_BYTES, **extra: int) -> traffic.Load:
    server = await asyncio.start_server(services.serve_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        load = traffic.Load("127.0.0.1", port, time.monotonic() + seconds, budget)
        args = argparse.Namespace(kind=kind, flows=extra.get("flows", 2), video_kbps=extra.get("video_kbps", 1200),
                                  bytes=budget)
        await traffic.workload(args, load, random.Random(1))
        return load
    finally:
        server.close()
        await server.wait_closed()


def test_a_stream_is_paced_at_its_bitrate() -> None:
    load = asyncio.run(_against_source("stream400", 1.0))
    per_second = 400 * 1000 // 8
    assert 0.8 * per_second <= load.down <= 1.2 * per_second, load.down


def test_bulk_stops_at_its_byte_budget() -> None:
    budget = 3_000_000
    load = asyncio.run(_against_source("bulk", 30.0, budget, flows=2))
    assert budget <= load.down <= budget + 2 * traffic.READ_CHUNK


def test_video_fetches_one_segment_per_four_seconds() -> None:
    load = asyncio.run(_against_source("video", 1.0, video_kbps=1200))
    segment = 1200 * 1000 / 8 * traffic.SEGMENT_SECONDS
    assert (1 - traffic.SEGMENT_JITTER) * segment <= load.down <= (1 + traffic.SEGMENT_JITTER) * segment


def test_web_pages_have_the_recorded_library_shape() -> None:
    rng = random.Random(7)
    pages = [traffic.page_sizes(rng) for _ in range(500)]
    assert {len(p) for p in pages} == set(range(1, 7))
    sizes = [s for p in pages for s in p]
    assert min(sizes) >= 20_000 and max(sizes) < 620_000


def test_an_unreachable_source_costs_a_pause_not_a_crash() -> None:
    """Nothing listens: the flow gives up after a connect failure and waits before the next
    try, so a bulk flow over a dead link neither crashes nor spins."""
    async def go() -> tuple[traffic.Load, float]:
        load = traffic.Load("127.0.0.1", 9, time.monotonic() + 0.5, 1 << 20)  # discard port: closed
        started = time.monotonic()
        await traffic.bulk(load, 1)
        return load, time.monotonic() - started
    load, took = asyncio.run(go())
    assert load.down == 0 and 0.4 <= took <= 2.0


@pytest.mark.parametrize("text", ["nope", "stream", "streamfast"])
def test_an_unknown_kind_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        traffic.kind_arg(text)
    assert traffic.kind_arg("stream128") == "stream128" and traffic.kind_arg("mixed") == "mixed"

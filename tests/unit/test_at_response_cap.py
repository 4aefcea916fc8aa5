"""One AT response holds at most ``MAX_RESPONSE_LINES`` lines (issue 20, finding 16): a
modem (or a hostile firmware) that never sends its final result code cannot grow one
response until the router runs out of memory, and the flood's tail never reaches the
next command."""

from __future__ import annotations

import pytest

from agent.errors import ModemError
from agent.modem import at
from tests.unit.at_fakes import async_test, in_flight, tok_line


@async_test
async def test_a_response_that_never_ends_is_cut_at_the_cap() -> None:
    channel, task = await in_flight("AT+SILENT", 30)
    flood = b"".join(b"\r\n+FLOOD: %d\r\n" % i for i in range(at.MAX_RESPONSE_LINES + 500))
    channel.data_received(flood)
    with pytest.raises(ModemError, match=f"more than {at.MAX_RESPONSE_LINES} lines"):
        await task
    channel.data_received(b"\r\n+FLOOD: still going\r\nOK\r\n")  # the flood's own final code, late
    answer = await channel.command("AT+TOK=9")  # in step again: the late OK is not its answer
    assert answer.lines == (tok_line(9),) and channel.stats["resyncs"] >= 1


@async_test
async def test_a_long_answer_under_the_cap_is_whole() -> None:
    channel, task = await in_flight("AT+SILENT", 30)
    lines = b"".join(b"\r\n+CMGL: %d\r\n" % i for i in range(at.MAX_RESPONSE_LINES))
    channel.data_received(lines + b"\r\nOK\r\n")
    assert len((await task).lines) == at.MAX_RESPONSE_LINES

"""Hypothesis on the framer and channel: arbitrary bytes never raise anything but the
project's typed errors, and never hang a command past its timeout."""

from __future__ import annotations

import asyncio
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.modem.at import LineFramer
from tests.unit.at_fakes import in_flight, tok_line

CONTROL_BYTES = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""What no text line may hold: C0 controls but tab (CR and LF among them) and DEL."""

chunks = st.lists(st.binary(max_size=64), max_size=20)
noisy = st.lists(
    st.one_of(
        st.binary(max_size=16),
        st.sampled_from([b"\r\n", b"OK\r\n", b"ERROR\r\n", b"+CME ERROR: 3\r\n", b"+CEREG: 1\r\n",
                         b"\r", b"\n", b"+CSQ: 9,99", b"CONNECT\r\n", b"\xff\xfe", b"x" * 5000]),
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(chunks)
def test_framer_accepts_any_bytes(parts: list[bytes]) -> None:
    """The framer's promise (``at.Line``): exactly one of text and garbage; text never blank,
    never holding a terminator or a control byte; garbage never empty; nothing buffered
    beyond the line limit."""
    framer = LineFramer(max_line=256)
    for part in parts:
        for line in framer.feed(part):
            if line.text is None:
                assert line.garbage != b""
            else:
                assert line.garbage == b"" and line.text.strip()
                assert not CONTROL_BYTES.search(line.text)  # includes CR and LF
                assert len(line.text.encode()) <= 256
    assert len(framer.pending) <= 256


@settings(max_examples=60, deadline=None)
@given(noisy)
def test_channel_survives_any_bytes_with_typed_errors_only(parts: list[bytes]) -> None:
    async def scenario() -> None:
        channel, task = await in_flight("AT+SILENT", 0.05)
        for part in parts:
            channel.data_received(part)
        try:
            await asyncio.wait_for(task, 1.0)  # bounded: the command's own timeout must fire
        except AgentError:
            pass
        # and the channel still works afterwards, with the right answer
        resp = await channel.command("AT+TOK=42", timeout=0.5)
        assert resp.lines == (tok_line(42),)

    asyncio.run(scenario())

"""The AT framer and channel over fault-injecting transports (fixed seeds)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.errors import AtCommandError, AtTimeout, ModemError, PortClosed
from agent.modem import at
from agent.modem.at import AtChannel, LineFramer
from tests.unit.at_fakes import FakeModem, Faults, async_test, in_flight, parse_tok, tok_line

RESPONSE = b'\r\n+CGDCONT: 1,"IP","apn.example","0.0.0.0",0,0\r\n\r\nOK\r\n'


# --- the pure framer ----------------------------------------------------------------


def texts(lines: list[at.Line]) -> list[str | None]:
    return [ln.text for ln in lines]


@pytest.mark.parametrize("split", range(len(RESPONSE) + 1))
def test_line_split_at_every_position_gives_the_same_lines(split: int) -> None:
    framer = LineFramer()
    lines = framer.feed(RESPONSE[:split]) + framer.feed(RESPONSE[split:])
    assert texts(lines) == ['+CGDCONT: 1,"IP","apn.example","0.0.0.0",0,0', "OK"]


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n", b"\n\r", b"\r\r\n"])
def test_cr_lf_and_crlf_all_end_lines(sep: bytes) -> None:
    framer = LineFramer()
    assert texts(framer.feed(b"+CSQ: 20,99" + sep + b"OK" + sep)) == ["+CSQ: 20,99", "OK"]


def test_partial_line_is_buffered_until_its_terminator() -> None:
    framer = LineFramer()
    assert framer.feed(b"+CSQ: 2") == []
    assert framer.pending == b"+CSQ: 2"
    assert texts(framer.feed(b"0,99\r\n")) == ["+CSQ: 20,99"]


def test_overlong_line_is_dropped_and_the_framer_resynchronises() -> None:
    framer = LineFramer(max_line=64)
    lines = framer.feed(b"x" * 500 + b"\r\nOK\r\n")
    assert lines[0].text is None and lines[1].text == "OK"
    assert framer.garbage_lines == 1


def test_control_bytes_and_bad_utf8_are_garbage_not_text() -> None:
    framer = LineFramer()
    lines = framer.feed(b"\x00\x01\xfe\r\nO\xffK\r\nOK\r\n")
    assert texts(lines) == [None, None, "OK"]
    assert lines[0].garbage == b"\x00\x01\xfe"


# (final result codes and timeouts moved with their code: tests/unit/test_codes.py and
#  tests/unit/test_commands.py)


# --- the channel over fake transports -----------------------------------------------


async def run_tokens(faults: Faults, count: int, timeout: float = 0.5) -> tuple[int, int, int]:
    """(right, garbled-or-failed, timeouts); asserts that no answer is another command's."""
    channel = AtChannel()
    FakeModem(channel, faults)
    right = garbled = timeouts = 0
    for n in range(1000, 1000 + count):
        try:
            resp = await channel.command(f"AT+TOK={n}", timeout=timeout)
        except AtTimeout:
            timeouts += 1
            continue
        except (AtCommandError, ModemError):
            garbled += 1
            continue
        toks = [parse_tok(ln) for ln in resp.lines]
        wellformed = [t for t in toks if t is not None]
        assert all(t == n for t in wellformed), f"command {n} got {resp.lines}"
        if wellformed:
            right += 1
        else:
            garbled += 1
    return right, garbled, timeouts


@pytest.mark.parametrize(
    "faults",
    [Faults(chunk=1), Faults(chunk=-1, delay=0.002), Faults(chunk=3, echo=True),
     Faults(chunk=1, urc_probability=0.5, echo=True)],
    ids=["byte-at-a-time", "random-chunks-delays", "echo", "urcs-inside-responses"],
)
@async_test
async def test_every_answer_is_right_under_benign_faults(faults: Faults) -> None:
    # 10 s per command only guards a hang: the fake answers in milliseconds, and a loaded
    # machine must not turn a slow answer into a "timeout" here (latency: bench_at.py).
    right, garbled, timeouts = await run_tokens(faults, 60, timeout=10.0)
    assert (right, garbled, timeouts) == (60, 0, 0)


@async_test
async def test_lost_bytes_end_in_timeouts_never_in_a_wrong_answer() -> None:
    right, garbled, timeouts = await run_tokens(Faults(chunk=-1, loss=0.02, seed=3), 80, 0.1)
    assert timeouts > 0  # the loss rate guarantees some lost final codes with this seed
    assert right > 40
    assert right + garbled + timeouts == 80


@pytest.mark.parametrize("arrives", ["before the next command", "as the resync sentinel goes out"])
@async_test
async def test_late_answer_after_a_timeout_is_not_delivered_to_the_next_command(arrives: str) -> None:
    """The late answer arrives after the timeout by construction (held, then released),
    not because 0.3 s is longer than 0.1 s on a loop a busy machine may stall."""
    channel = AtChannel()
    fake = FakeModem(channel, Faults(hang_next=1, late=None))
    with pytest.raises(AtTimeout):
        await channel.command("AT+TOK=1", timeout=0.1)
    assert channel.desynced
    if arrives == "before the next command":
        fake.release()  # the hung modem answers AT+TOK=1 now, with nothing in flight
    else:
        answer = fake.write

        def late_then_answer(data: bytes) -> None:
            fake.release()  # AT+TOK=1's answer lands just ahead of the sentinel's
            answer(data)

        fake.write = late_then_answer  # type: ignore[method-assign]
    resp = await channel.command("AT+TOK=2", timeout=10.0)
    assert resp.lines == (tok_line(2),)
    assert not channel.desynced
    assert any(s.startswith("ATS7=") for s in fake.sent)  # the sentinel was used


@async_test
async def test_urcs_go_to_subscribers_and_not_into_responses() -> None:
    channel = AtChannel()
    fake = FakeModem(channel, Faults(chunk=2, urc_probability=1.0))
    got: list[str] = []
    unsubscribe = channel.subscribe("+CEREG:", got.append)
    resp = await channel.command("AT+TOK=5")
    assert resp.lines == (tok_line(5),)
    assert got == ["+CEREG: 1", "+CEREG: 1"]
    unsubscribe()
    fake.urc("+CEREG: 5")
    await channel.command("AT+TOK=6")
    assert len(got) == 2


@async_test
async def test_a_command_owns_its_own_prefix() -> None:
    channel = AtChannel()
    FakeModem(channel)
    seen: list[str] = []
    channel.subscribe("", seen.append)
    resp = await channel.command("AT+CREG?")
    assert resp.lines == ("+CREG: 2,1",) and seen == []


@pytest.mark.parametrize(
    "arg,code,name", [("10", 10, None), ("SIM busy", 14, "SIM busy"), ("515", 515, None)]
)
@async_test
async def test_cme_errors_are_typed(arg: str, code: int | None, name: str | None) -> None:
    channel = AtChannel()
    FakeModem(channel)
    with pytest.raises(AtCommandError) as info:
        await channel.command(f"AT+ERR={arg}")
    assert info.value.code == code
    if name is not None:
        assert info.value.name == name
    assert f"+CME ERROR: {arg}" in str(info.value.raw)


@async_test
async def test_garbage_inside_a_response_is_a_modem_error_with_what_was_received() -> None:
    channel, task = await in_flight("AT+SILENT", 1)
    channel.data_received(b"\r\n\x00\x07\x1b\r\nOK\r\n")
    with pytest.raises(ModemError) as info:
        await task
    assert "\\x07" in str(info.value.raw)
    assert (await channel.command("AT+TOK=9")).lines == (tok_line(9),)


@async_test
async def test_port_loss_fails_the_command_in_flight_and_later_ones() -> None:
    channel, task = await in_flight("AT+SILENT", 5)
    channel.connection_lost(OSError(5, "Input/output error"))
    with pytest.raises(PortClosed):
        await task
    with pytest.raises(PortClosed):
        await channel.command("AT")


@async_test
async def test_priority_commands_jump_the_queue() -> None:
    channel = AtChannel()
    fake = FakeModem(channel, Faults(delay=0.01))
    order: list[str] = []

    async def run(cmd: str, priority: bool = False) -> None:
        await channel.command(cmd, priority=priority)
        order.append(cmd)

    first = asyncio.ensure_future(run("AT+TOK=1"))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(run(f"AT+TOK={n}")) for n in (2, 3)]
    urgent = asyncio.ensure_future(run("AT+CFUN=1,1", priority=True))
    await asyncio.gather(first, *rest, urgent)
    assert order == ["AT+TOK=1", "AT+CFUN=1,1", "AT+TOK=2", "AT+TOK=3"]
    assert fake.sent == order


@async_test
async def test_sensitive_command_text_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    channel = AtChannel()
    FakeModem(channel, Faults(echo=True, chunk=4))
    secret = "00112233445566778899AABBCCDDEEFF"
    await channel.command(f'AT+VSIMLOAD=1,"{secret}"', sensitive=True)
    with pytest.raises(AtCommandError) as info:
        await channel.command(f"AT+ERR={secret}", sensitive=True)
    assert secret not in caplog.text
    assert secret not in str(info.value) and secret not in str(info.value.command)
    # The capture did see both writes and the answers (an empty log would pass the checks
    # above), each redacted: the command by its size only, the echo and answer unquoted.
    assert caplog.text.count("tx <sensitive command") == 2 and "rx <" in caplog.text
    assert "VSIMLOAD" not in caplog.text


@async_test
async def test_raw_bytes_are_traced_below_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(at.TRACE, logger="agent.modem.at")
    channel = AtChannel()
    FakeModem(channel)
    await channel.command("AT+TOK=77")
    trace = [r for r in caplog.records if r.levelno == at.TRACE]
    assert any("AT+TOK=77" in r.getMessage() for r in trace)
    assert all(r.levelno < logging.DEBUG for r in trace)


@async_test
async def test_late_echo_of_a_timed_out_sensitive_command_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    channel = AtChannel()
    fake = FakeModem(channel, Faults(echo=True, hang_next=1, late=None))
    secret = "FFEEDDCCBBAA99887766554433221100"
    with pytest.raises(AtTimeout):
        await channel.command(f'AT+VSIMLOAD=1,"{secret}"', sensitive=True, timeout=0.05)
    fake.release()  # its echo and answer arrive after the timeout, by construction
    assert (await channel.command("AT+TOK=3")).lines == (tok_line(3),)
    assert secret not in caplog.text
    assert "+TOK: 3" in caplog.text  # logging is back on once in step

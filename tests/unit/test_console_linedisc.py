"""The console's line discipline, byte by byte, as different terminal programs send them."""

from __future__ import annotations

import random

import pytest

from agent.faces.console.linedisc import (
    LINE_MAX,
    Interrupt,
    Line,
    LineDiscipline,
    Logout,
    Noise,
    TooLong,
)


def feed(data: bytes, **kw: int) -> tuple[bytes, list[object]]:
    return LineDiscipline(**kw).feed(data)


@pytest.mark.parametrize("enter", [b"\r", b"\n", b"\r\n"])
def test_every_enter_convention_ends_exactly_one_line(enter: bytes) -> None:
    echo, events = feed(b"status" + enter + b"sim" + enter)
    assert events == [Line("status"), Line("sim")]
    assert echo == b"status\r\nsim\r\n"


def test_cr_then_lf_later_is_an_empty_line_not_swallowed() -> None:
    disc = LineDiscipline()
    disc.feed(b"a\r")
    _, events = disc.feed(b"b\n")
    assert events == [Line("b")]


@pytest.mark.parametrize("erase", [b"\x08", b"\x7f"])
def test_backspace_and_delete_erase_one_character(erase: bytes) -> None:
    echo, events = feed(b"statx" + erase + b"us\r")
    assert events == [Line("status")]
    assert b"\b \b" in echo


def test_erase_on_empty_line_echoes_nothing() -> None:
    echo, events = feed(b"\x7f\x7f\r")
    assert echo == b"\r\n" and events == [Line("")]


def test_ctrl_c_abandons_the_line() -> None:
    echo, events = feed(b"reboo\x03status\r")
    assert events == [Interrupt(), Line("status")]
    assert b"^C\r\n" in echo


def test_ctrl_d_logs_out_only_on_an_empty_line() -> None:
    assert feed(b"\x04")[1] == [Logout()]
    assert feed(b"sta\x04tus\r")[1] == [Line("status")]


def test_ctrl_u_erases_the_whole_line() -> None:
    echo, events = feed(b"garbage\x15sim\r")
    assert events == [Line("sim")]
    assert echo.count(b"\b \b") == len("garbage")


def test_arrow_keys_and_escape_sequences_are_swallowed() -> None:
    echo, events = feed(b"st\x1b[Aat\x1bOBus\x1b[1;5C\r")
    assert events == [Line("status")]
    assert b"\x1b" not in echo and b"[A" not in echo


def test_binary_garbage_is_dropped_and_counted() -> None:
    disc = LineDiscipline()
    noise = bytes(b for b in range(256) if b >= 0x80 or b in (0, 1, 2, 5, 6, 7, 0x0B, 0x0C, 0x0E, 0x1F))
    echo, events = disc.feed(noise + b"\rsim\r")
    assert events == [Noise(len(noise)), Line("sim")]
    assert disc.dropped == len(noise)
    assert all(0x20 <= b < 0x7F or b in b"\r\n" for b in echo)


def test_a_line_with_noise_in_it_never_runs() -> None:
    _, events = feed(b"rebo\x00ot\r")
    assert events == [Noise(1)]


def test_a_10000_character_line_is_refused_whole_and_bounded() -> None:
    disc = LineDiscipline()
    echo, events = disc.feed(b"x" * 10_000 + b"\r")
    assert events == [TooLong(10_000)]
    assert echo.count(b"x") == LINE_MAX and echo.count(b"\x07") == 1
    assert disc.feed(b"status\r")[1] == [Line("status")]


def test_erasing_back_under_the_limit_keeps_the_line() -> None:
    disc = LineDiscipline(max_line=4)
    _, events = disc.feed(b"abcdef\x7f\x7f\r")
    assert events == [Line("abcd")]


def test_one_byte_at_a_time_equals_all_at_once() -> None:
    rng = random.Random(12)
    data = bytes(rng.choice(b"ab \r\n\x7f\x03\x04\x1b[A\x00\xff") for _ in range(3000))
    whole = LineDiscipline().feed(data)
    disc = LineDiscipline()
    parts = [disc.feed(bytes([b])) for b in data]
    assert b"".join(p[0] for p in parts) == whole[0]
    assert [e for p in parts for e in p[1]] == whole[1]

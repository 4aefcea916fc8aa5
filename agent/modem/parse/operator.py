"""Operator: +COPS? and +COPS=?, with names decoded per the modem's +CSCS charset (27.007 §7.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.modem.lex import (
    ACT_NAMES,
    MAX_INPUT_CHARS,
    act_name,
    fail,
    find_payloads,
    split_fields,
    to_int,
)


@dataclass(frozen=True)
class Operator:
    """+COPS? answer: selection mode, name format, operator and AcT."""

    mode: int
    format: int | None
    oper: str | None
    act: str | None


@dataclass(frozen=True)
class Network:
    """One entry of a +COPS=? scan. ``stat``: 0 unknown, 1 available, 2 current, 3 forbidden."""

    stat: int
    long_name: str | None
    short_name: str | None
    numeric: str | None
    act: str


_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""3GPP TS 23.038 GSM 7-bit default alphabet, indexed by septet value."""

_UCS2_HEX = re.compile(r"(?:[0-9A-Fa-f]{4})+")


def decode_text(value: str, charset: str = "GSM") -> str:
    """A string field as the modem's ``+CSCS`` charset encodes it, decoded to Unicode.

    UCS2: hex-encoded UTF-16BE; a value that is not valid UCS2 hex is kept verbatim (some
    modems send numeric operator ids in ASCII even in UCS2 mode). GSM: each byte is a
    23.038 septet (so ``@`` from the modem is ``¡``). IRA/UTF-8/other: unchanged.
    """
    cs = charset.upper()
    if cs == "UCS2" and _UCS2_HEX.fullmatch(value):
        try:
            return bytes.fromhex(value).decode("utf-16-be")
        except UnicodeDecodeError:
            return value
    if cs == "GSM":
        return "".join(_GSM7_BASIC[ord(c)] if ord(c) < 0x80 else c for c in value)
    return value


def parse_cops_query(text: str, *, charset: str = "GSM") -> Operator:
    """+COPS: <mode>[,<format>,<oper>[,<AcT>]]. Operator names are decoded per ``charset``."""
    payloads = find_payloads(text, "+COPS:")
    if not payloads:
        raise fail("no +COPS line", text)
    fields = split_fields(payloads[0])
    if fields[0][0].startswith("("):
        raise fail("+COPS=? list where +COPS? answer expected", text)
    mode = to_int(fields[0][0], text, "<mode>")
    fmt = to_int(fields[1][0], text, "<format>") if len(fields) > 1 and fields[1][0] else None
    oper = decode_text(fields[2][0], charset) if len(fields) > 2 and fields[2][0] else None
    act = act_name(fields[3][0]) if len(fields) > 3 else None
    if fmt is not None and fmt > 2 or mode > 4:
        raise fail("+COPS <mode>/<format> out of range", text)
    return Operator(mode=mode, format=fmt, oper=oper, act=act)


_COPS_ENTRY = re.compile(
    r'\(\s*(\d+)\s*,\s*("[^"]*"|)\s*,\s*("[^"]*"|)\s*,\s*("[^"]*"|)\s*\)?\s*(?:,\s*(\d+))?\s*\)'
)
"""One +COPS=? network tuple. Tolerates a stray ``)`` before AcT (``"310260"),2)``) and a
missing AcT; the trailing ``(modes),(formats)`` lists never match (no quoted field)."""


def _name(value: str, charset: str) -> str | None:
    unquoted = value.strip().strip('"')
    return decode_text(unquoted, charset) if unquoted else None


def parse_cops_test(text: str, *, charset: str = "GSM") -> list[Network]:
    """+COPS=? scan: every network tuple; AcT defaults to GSM when absent (27.007 pre-R99)."""
    if len(text) > MAX_INPUT_CHARS or "+COPS:" not in text.upper():
        raise fail("no +COPS line", text)
    networks = []
    for match in _COPS_ENTRY.finditer(text):
        stat_s, long_s, short_s, num_s, act_s = match.groups()
        stat = int(stat_s)
        if stat > 3:
            continue
        networks.append(
            Network(
                stat=stat,
                long_name=_name(long_s, charset),
                short_name=_name(short_s, charset),
                numeric=_name(num_s, charset),
                act=ACT_NAMES.get(int(act_s), "gsm") if act_s else "gsm",
            )
        )
    return networks


def parse_cops(text: str, *, charset: str = "GSM") -> Operator | list[Network]:
    """+COPS? or +COPS=? answer, told apart by the ``(`` that opens a scan list."""
    payloads = find_payloads(text, "+COPS:")
    if payloads and payloads[0].startswith("("):
        return parse_cops_test(text, charset=charset)
    return parse_cops_query(text, charset=charset)

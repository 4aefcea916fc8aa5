"""Shared field lexers for AT answers: lines, comma fields, numbers, hex, AcT names.

Why a module of its own below the parsers: the line classifier (``codes.py``) needs the
same field splitting as every parser family (a registration line is told from a URC by
its fields), and the classifier sits *below* the parsers in the import order. Keeping the
lexers here lets both use one reading of "a field" without an import cycle.

Every function is pure; the ones that can fail raise :class:`agent.errors.ParseError`
carrying the input (``raw``), never anything else.
"""

from __future__ import annotations

import logging
import re

from agent.errors import ParseError

LOGGER = logging.getLogger(__name__)

ACT_NAMES: dict[int, str] = {
    0: "gsm",
    1: "gsm_compact",
    2: "umts",
    3: "edge",
    4: "hsdpa",
    5: "hsupa",
    6: "hspa",
    7: "lte",
    8: "ec_gsm_iot",
    9: "lte_nb_iot",
    10: "lte",  # E-UTRA connected to a 5G core
    11: "5gnr",
    12: "5gnr",  # NG-RAN
    13: "lte_5gnr",  # E-UTRA-NR dual connectivity (EN-DC)
}
"""27.007 ``<AcT>`` numbers to names (ModemManager's names where it has one)."""

MAX_INPUT_CHARS = 64 * 1024
"""No real AT response is longer than a +COPS=? scan (~2 KB); refuse megabytes of garbage
before any regex sees them, so a babbling port cannot stall the event loop."""

_LINE_SPLIT = re.compile(r"[\r\n]+")


def fail(message: str, raw: str) -> ParseError:
    """A ParseError carrying the input; logged at debug (the caller decides if it matters)."""
    LOGGER.debug("parse error: %s: %r", message, raw[:200])
    return ParseError(f"{message}: {raw[:200]!r}", raw=raw)


def body_lines(text: str) -> list[str]:
    """Non-blank lines of a body, CR/LF tolerant, surrounding blanks removed."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}", raw=repr(text))
    if len(text) > MAX_INPUT_CHARS:
        raise fail("response too long", text)
    return [line.strip() for line in _LINE_SPLIT.split(text) if line.strip()]


def split_fields(payload: str) -> list[tuple[str, bool]]:
    """Comma-separated fields as (text, was_quoted); commas inside double quotes are kept."""
    fields: list[tuple[str, bool]] = []
    current: list[str] = []
    quoted = in_quotes = False
    for char in payload:
        if char == '"':
            in_quotes = not in_quotes
            quoted = True
        elif char == "," and not in_quotes:
            fields.append(("".join(current).strip(), quoted))
            current, quoted = [], False
        else:
            current.append(char)
    fields.append(("".join(current).strip(), quoted))
    return fields


def payload_after(line: str, prefix: str) -> str | None:
    """The text after ``prefix`` (case-insensitive, optional blanks), or None if absent."""
    if line[: len(prefix)].upper() != prefix.upper():
        return None
    return line[len(prefix) :].strip()


def find_payloads(text: str, prefix: str) -> list[str]:
    return [p for p in (payload_after(line, prefix) for line in body_lines(text)) if p is not None]


def to_int(value: str, raw: str, what: str) -> int:
    """A decimal field (leading zeros allowed)."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        raise fail(f"{what} is not a number", raw)
    return int(value)


def opt_int(value: str) -> int | None:
    """A decimal field where garbage means "not given" (trailing optional fields)."""
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


HEX_DIGITS = re.compile(r"[0-9A-Fa-f]+")


def hex_field(value: str, raw: str, what: str) -> int | None:
    """A hex field, quoted or not; empty -> None. A garbled field keeps its leading token
    (Gobi 1000 prints ``  0 5`` for LAC 0, which ModemManager reads as 0)."""
    value = value.strip()
    if not value:
        return None
    token = value.split()[0]
    if not HEX_DIGITS.fullmatch(token) or len(token) > 16:
        raise fail(f"{what} is not hexadecimal", raw)
    return int(token, 16)


def act_name(value: str) -> str | None:
    number = opt_int(value)
    return ACT_NAMES.get(number) if number is not None else None


def is_short_decimal(value: str, quoted: bool, limit: int) -> bool:
    value = value.strip()
    return not quoted and value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= limit


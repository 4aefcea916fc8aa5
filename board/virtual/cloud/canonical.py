"""Canonical JSON exactly as docs/protocol.md section 3.0 spells it, written from that text.

Why not ``json.dumps``: the reference cloud's sealer is the contract's second, independent
implementation (issue 21), and the doc's sentence "this is what Python's json.dumps
writes" is a convenience for readers, not the definition. Writing the bytes from the
rules themselves shows the rules are enough for a cloud in any language;
tests/cloud/test_sealer.py checks the result equals ``json.dumps`` on awkward input, so the
doc's two descriptions cannot drift apart unnoticed.

The rules: one value; object keys in ascending code-point order; ``,`` and ``:`` with no
whitespace; integers in decimal; ``true``, ``false``, ``null``; other numbers finite, as the
shortest digits that read back as the same double, positional from exponent -4 to 15 and
``d[.ddd]e±XX`` beyond (what ``float.__repr__`` writes: the doc names it); strings with
``"`` and ``\\`` escaped, the five short control escapes, other controls and every
non-ASCII character as ``\\uXXXX`` (lowercase hex, a surrogate pair above U+FFFF), ``/``
as is.
"""

from __future__ import annotations

import math
from typing import Any

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
"""The escapes written as two characters; every other control is \\u00XX."""

BMP_TOP = 0xFFFF
"""Above this a character is written as a UTF-16 surrogate pair (RFC 8259 section 7)."""


def _u(code: int) -> str:
    return f"\\u{code:04x}"


def _char(char: str) -> str:
    if char in SHORT_ESCAPES:
        return SHORT_ESCAPES[char]
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if code <= BMP_TOP:
        return _u(code)
    code -= 0x10000
    return _u(0xD800 + (code >> 10)) + _u(0xDC00 + (code & 0x3FF))


def _string(text: str) -> str:
    return '"' + "".join(_char(c) for c in text) + '"'


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("canonical JSON has no NaN or Infinity")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("canonical JSON object keys are strings")
        return "{" + ",".join(_string(k) + ":" + _text(value[k]) for k in sorted(value)) + "}"
    raise TypeError(f"canonical JSON has no {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """``value`` as canonical JSON bytes (all ASCII by construction)."""
    return _text(value).encode("ascii")

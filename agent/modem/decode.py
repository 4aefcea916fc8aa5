"""Modem output lines to one JSON object per response, URC or error (``pocket-agent decode``).

Why: a field engineer has a serial log (picocom, a support ticket, a ``-vv`` daemon log) and
wants to know what the modem said, in numbers, without reading 27.007. This runs the
same classifier (``codes.py``), command table (``commands.py``) and parsers the daemon runs,
and names values in the one JSON vocabulary (``vocabulary.py``) that ``pocket-agent at``
prints too, so what it prints is what the agent believed. The command itself (reading stdin,
printing JSON) is ``agent/faces/cli/decode.py``.

Input is tolerant of blank lines and command echo. Each line becomes part of exactly one
output object; ``OK`` lines are the only ones skipped. Lines we
cannot decode become ``{"kind": "unknown", "raw": ...}`` (with the parser's reason
when a known family failed to parse), never dropped.

Consecutive lines of one family (``+CGDCONT:`` per context, a ``+COPS=?`` list broken over
lines) form one response. An echoed ``AT...`` command line tells the tool which family a bare
answer (``+CIMI``'s IMSI, ``+CGSN``'s IMEI, ``+CCID``) belongs to, and that a ``+CPIN:`` line
is the answer to ``AT+CPIN?`` rather than a spontaneous URC.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ParseError
from agent.modem import codes
from agent.modem.codes import AtErrorCode, LineKind
from agent.modem.commands import KNOWN, CommandTable
from agent.modem.dialects import Dialect, get_dialect
from agent.modem.parse import Registration
from agent.modem.vocabulary import Fields
from agent.modem.vocabulary import error as error_fields

LOGGER = logging.getLogger(__name__)

_ECHO = re.compile(r"^AT(?:([+^*#$%!][A-Z0-9]+)(?:[=?].*)?|(?:[A-Z&]\d{0,3})*)$", re.IGNORECASE)
"""A command echo: ``AT``, basic commands (``ATE0``, ``AT&C1``) or one extended command
(``AT+CPIN?``, ``AT^SYSCFG=...``)."""


@dataclass
class _Decoder:
    """Groups lines into responses and turns each group into a JSON-ready dict."""

    charset: str = "GSM"
    dialect: Dialect = field(default_factory=lambda: get_dialect("generic"))
    table: CommandTable = field(default_factory=lambda: KNOWN)
    command: str | None = None
    family: str | None = None
    pending: list[str] = field(default_factory=list)

    def feed(self, raw_line: str) -> Iterator[dict[str, Any]]:
        line = raw_line.strip()
        if _ECHO.match(line) and not line.upper().startswith("AT&T"):
            yield from self.flush()
            self.command = line
            yield {"kind": "echo", "command": line}
            return
        owners = self.table.facts(self.command).owners if self.command is not None else None
        found = codes.classify_line(raw_line, owners)
        if found.is_final:
            yield from self.flush()
            self.command = None
            if found.error is not None:
                yield _error_object(line, found.family or line.upper(), found.error)
            elif found.family != "OK":
                yield {"family": found.family, "kind": "response", "raw": line}  # CONNECT
            return
        if line.startswith("(") and self.family == "+COPS":
            self.pending.append(line)  # a +COPS=? list continued on the next line
            return
        if found.kind is LineKind.URC:
            yield from self.flush()
            yield self._urc(line, found.family or line)
            return
        yield from self._feed_content(line)

    def _feed_content(self, line: str) -> Iterator[dict[str, Any]]:
        family = self.table.family_of(line)
        if family is None and self.command is not None:
            family = self.table.bare_family(self.command)
        if family is None:
            yield from self.flush()
            yield {"kind": "unknown", "raw": line}
            return
        if family != self.family:
            yield from self.flush()
        self.family = family
        self.pending.append(line)

    def flush(self) -> Iterator[dict[str, Any]]:
        if self.pending and self.family is not None:
            yield self._decode(self.family, "\r\n".join(self.pending), "response")
        self.pending, self.family = [], None

    def _urc(self, line: str, family: str) -> dict[str, Any]:
        if family in self.table.families:
            return self._decode(family, line, "urc")
        return {"family": family, "kind": "urc", "raw": line}

    def _decode(self, family: str, text: str, kind: str) -> dict[str, Any]:
        definition = self.table[family]
        try:
            value = definition.read(text, charset=self.charset)
        except ParseError as exc:
            LOGGER.debug("cannot decode %s: %s", family, exc)
            return {"family": family, "kind": "unknown", "raw": text, "error": str(exc)}
        if isinstance(value, Registration) and value.urc:
            kind = "urc"  # a registration report in URC form, whatever its grouping
        return {"family": family, "kind": kind, **definition.describe(value, self.dialect)}


def decode_stream(
    lines: Iterable[str], *, charset: str = "GSM", dialect: Dialect | None = None
) -> Iterator[dict[str, Any]]:
    """Decode modem output lines to JSON-ready dicts, in input order."""
    decoder = _Decoder(charset=charset, dialect=dialect or get_dialect("generic"))
    for line in lines:
        yield from decoder.feed(line)
    yield from decoder.flush()


def describe(family: str, text: str, *, charset: str = "GSM", dialect: Dialect | None = None) -> Fields:
    """Parse ``text`` as ``family``'s answer and name its fields in the one vocabulary."""
    definition = KNOWN[family]
    return definition.describe(definition.read(text, charset=charset), dialect or get_dialect("generic"))


def _error_object(line: str, family: str, error: AtErrorCode) -> dict[str, Any]:
    return {"family": family, "kind": "error", **error_fields(error), "raw": line}

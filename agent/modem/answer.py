"""What an AT answer means.

``decode()`` names each family in an answer in the one JSON vocabulary
(``vocabulary.py``) that ``pocket-agent decode`` prints too, so "what does +CEREG: 2,3,...
mean" needs no 27.007 at hand; ``describe_error()`` does the same for a failure. What a
technician may not send is not decided here: the command table's ``refusal``
(``commands.KNOWN.refusal``) is the one gate, for the console and ``pocket-agent at`` alike.
Pure: no port, no printing, so the command line and the console share it.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import ParseError
from agent.modem import codes
from agent.modem.at import AtResponse
from agent.modem.commands import KNOWN, CommandTable
from agent.modem.dialects import Dialect, get_dialect
from agent.modem.vocabulary import error as error_fields

LOGGER = logging.getLogger(__name__)

__all__ = ["decode", "describe_error"]


def decode(resp: AtResponse, dialect: Dialect | None = None, table: CommandTable = KNOWN) -> dict[str, Any]:
    """What each family in the answer means, in the vocabulary ``decode`` prints too."""
    reading = dialect or get_dialect("generic")
    text = "\n".join(resp.lines)
    out: dict[str, Any] = {"final": resp.final}
    families = {f for f in (table.family_of(line) for line in resp.lines) if f}
    if not families and resp.lines:
        bare = table.bare_family(resp.command)
        families = {bare} if bare else set()
    for family in sorted(families):
        definition = table[family]
        try:
            out[family] = definition.describe(definition.read(text), reading)
        except ParseError as exc:
            out[family] = {"error": str(exc), "raw": exc.raw}
    return out


def describe_error(final: str) -> dict[str, Any] | None:
    """A failure final code in the vocabulary: its family, code and name."""
    found = codes.classify_line(final)
    if found.error is None:
        return None
    return {"family": found.family, **error_fields(found.error)}

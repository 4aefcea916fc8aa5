"""An AT command line read the way a modem reads it (V.250 §5), one command at a time.

Why a lexer of its own: the technician's gate (``CommandTable.refusal``) must judge every
command a modem will run from a line, and a line is more than its first command. V.250
lets basic commands run together (``ATE0V1``), an extended command follow them directly
(``ATE0+QPOWD=1``), extended commands follow each other after ``;`` (``AT+CSQ;+EGMR=...``),
and blanks and case do not matter outside quoted strings (``at + egmr = ...``). A gate
that looked only at how the line starts (the console's old prefix check) let every one of
those through. Here a line becomes the list of its commands (``parse``); what the lexer
cannot read with certainty is ``Unreadable`` and the gate refuses it whole, so a modem's
leniency can never run something the gate did not see:

* only printable ASCII: a CR inside a request would end the line early at the modem and
  start a second, unjudged one; a non-ASCII byte has no V.250 meaning;
* balanced quotes, and inside a string only the V.250 §5.4.2.2 escape ``\\<hex><hex>``:
  a modem that also took ``\\"`` as an escaped quote would see a string end elsewhere;
* a command where a command must begin (after ``AT``, after a basic command, after an
  extended command without arguments, after ``;``).

Arguments of an extended set form run to the next ``;`` outside quotes (V.250 §5.4.1).
A lenient modem may restart parsing at an extended name or ``&`` command inside them
(``AT+CMEE=1+QPOWD``), so the arguments are also read as commands from each of those.
What is left unseen: a basic command letter inside set-form arguments with no extended
name before it (``AT+CMEE=1Z``); V.250 and every modem we know read that as an argument. Pure: no I/O, no table (``commands.py`` judges the parts).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Literal

Form = Literal["exec", "read", "test", "set"]
"""V.250 §5.4.2: ``AT+X`` exec, ``AT+X?`` read, ``AT+X=?`` test, ``AT+X=<args>`` set."""

EXTENDED = re.compile(r"([+^*$%!#][A-Z][A-Z0-9_]*)(=\?|\?|=)?")
"""An extended command name and the form mark after it (V.250 §5.4.1: a prefix character
then a name; vendors use ``^``, ``*``, ``$``, ``%``, ``!`` and ``#`` as well as ``+``)."""

AMPERSAND = re.compile(r"&[A-Z]")
"""An ``&`` basic command (``&F``, ``&W``): no argument text ever has one unquoted."""

REPEAT_LAST = "A/"
"""V.250 §6.2.2: repeat the previous command line, whatever it was (no ``AT`` prefix)."""

FORMS: dict[str | None, Form] = {"=?": "test", "?": "read", "=": "set", None: "exec"}

MAX_LINE = 256
"""Characters a technician's line may have: 3GPP TS 27.007 4.1 lets a modem limit a
command line to 256, the console's line discipline stops there too, and the bound keeps
the re-reading of arguments (``_hidden``) cheap whatever arrives on the control socket."""

PRINTABLE = re.compile(r"[\x20-\x7e]*")
"""What a command line may hold: printable ASCII, as a terminal types it."""

STRING_ESCAPE = re.compile(r"\\[0-9A-Fa-f]{2}")
"""V.250 §5.4.2.2: inside a string constant, a backslash and two hex digits is one byte."""


class Unreadable(ValueError):
    """The gate cannot read this line with certainty the way a modem would: refuse it."""


@dataclass(frozen=True)
class Part:
    """One command of a line: ``name`` (``+CSQ``, ``E``, ``&F``, ``S``, ``D``, ``A/``),
    its form, and for a set form the text after ``=`` (upper case outside quotes)."""

    name: str
    form: Form
    args: str = ""

    @property
    def basic(self) -> bool:
        return self.name[0] not in "+^*$%!#"

    @property
    def shown(self) -> str:
        """How a refusal names it: ``AT+EGMR``, ``ATZ``, ``ATS3=13``, ``A/``."""
        if self.name == REPEAT_LAST:
            return self.name
        return f"AT{self.name}{self.args if self.name == 'S' else ''}"


def outside_quotes(line: str) -> Iterator[tuple[str, bool]]:
    """Each character with whether it stands inside a quoted string."""
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        yield char, quoted


def normalise(line: str) -> str:
    """Upper case, blanks outside quotes removed (V.250 §5.1: the modem ignores them)."""
    kept = (c if quoted else c.upper() for c, quoted in outside_quotes(line) if quoted or not c.isspace())
    return "".join(kept)


def unquoted(text: str) -> str:
    """``text`` with quoted strings blanked, so a name inside an argument is not a command."""
    return "".join('"' if quoted or char == '"' else char for char, quoted in outside_quotes(text))


def mentions(line: str) -> set[str]:
    """Every extended command name in ``line`` outside quotes, wherever it stands. Total
    (never raises, any text): the framer asks it whether a line may carry secrets."""
    return {m.group(1) for m in EXTENDED.finditer(unquoted(normalise(line)))}


def parse(line: str) -> tuple[Part, ...]:
    """The commands of ``line`` in the order a modem runs them; ``Unreadable`` otherwise."""
    if len(line) > MAX_LINE:
        raise Unreadable(f"it is longer than {MAX_LINE} characters (3GPP TS 27.007 4.1)")
    if not PRINTABLE.fullmatch(line):
        raise Unreadable("it holds a control or non-ASCII character")
    text = normalise(line)
    _check_strings(text)
    if text.startswith(REPEAT_LAST):
        return (Part(REPEAT_LAST, "exec"),)
    if not text.startswith("AT"):
        raise Unreadable("it does not start with AT")
    return tuple(_commands(text[2:]))


def _check_strings(text: str) -> None:
    strings = text.split('"')
    if len(strings) % 2 == 0:
        raise Unreadable("a quoted string is not closed")
    for inside in strings[1::2]:
        if "\\" in STRING_ESCAPE.sub("", inside):
            raise Unreadable("a backslash in a string is not a \\<hex><hex> escape")


def _commands(body: str, lenient: bool = False) -> Iterator[Part]:
    """The commands of ``body`` (a line after ``AT``). ``lenient``: read the way a modem
    that restarted parsing inside arguments would, stopping where it would give up."""
    pos = 0
    while pos < len(body):
        char = body[pos]
        if char == ";":
            pos += 1
        elif (found := EXTENDED.match(body, pos)) is not None:
            pos = yield from _extended(body, found, lenient)
        elif char == "&" and body[pos + 1:pos + 2].isalpha():
            number = _digits(body, pos + 2)
            yield Part(body[pos:pos + 2], "exec", body[pos + 2:number])
            pos = number
        elif char == "S" and body[pos + 1:pos + 2].isdigit():
            pos = yield from _register(body, pos)
        elif char == "D":  # dial: the rest of the command is the dial string (V.250 §6.3.1)
            end = _end_of_args(body, pos + 1)
            yield Part("D", "exec", body[pos + 1:end])
            pos = end
        elif char.isalpha():
            number = _digits(body, pos + 1)
            yield Part(char, "exec", body[pos + 1:number])
            pos = number
        elif lenient:
            return
        else:
            raise Unreadable(f"{char!r} stands where a command should begin")


def _extended(body: str, found: re.Match[str], lenient: bool) -> Generator[Part, None, int]:
    """One extended command (and what hides in its arguments); returns where lexing goes on."""
    name, form = found.group(1), FORMS[found.group(2)]
    if form != "set":
        yield Part(name, form)
        return found.end()  # anything right after it is read as further commands
    end = _end_of_args(body, found.end())
    args = body[found.end():end]
    yield Part(name, "set", args)
    if not lenient:  # a lenient reading starts at every hidden name already (below)
        yield from _hidden(args)
    return end


def _hidden(args: str) -> Iterator[Part]:
    """Commands a modem might find inside set-form arguments: it may restart parsing at any
    extended name or ``&`` command there, so the arguments are read again from each one."""
    blanked = unquoted(args)
    starts = sorted({m.start() for m in EXTENDED.finditer(blanked)} | {m.start() for m in AMPERSAND.finditer(blanked)})
    for start in starts:
        yield from _commands(args[start:], lenient=True)


def _register(body: str, pos: int) -> Generator[Part, None, int]:
    """``S<n>?`` reads an S-register, ``S<n>=<v>`` writes one; bare ``S<n>`` is neither."""
    number = _digits(body, pos + 1)
    mark = body[number:number + 1]
    if mark == "?":
        yield Part("S", "read", body[pos + 1:number])
        return number + 1
    if mark == "=":
        value = _digits(body, number + 1)
        yield Part("S", "set", body[pos + 1:value])
        return value
    yield Part("S", "exec", body[pos + 1:number])
    return number


def _digits(body: str, pos: int) -> int:
    while pos < len(body) and body[pos].isdigit():
        pos += 1
    return pos


def _end_of_args(body: str, pos: int) -> int:
    """Index of the ``;`` that ends arguments starting at ``pos`` (outside quotes), or the end."""
    quoted = False
    for index in range(pos, len(body)):
        if body[index] == '"':
            quoted = not quoted
        elif body[index] == ";" and not quoted:
            return index
    return len(body)

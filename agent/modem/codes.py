"""Final result codes and unsolicited result codes, declared once, and one line classifier.

Why one module: the framer (``at.py``) must know when a response has ended and which lines
belong to nobody; ``pocket-agent decode`` must say the same of a log; the driver routes
registration URCs. Three readings of "is this line final?" had drifted apart (lower-case
``+cme error: 10`` was final for one and not the other; the two URC lists differed by 16
entries). Now each of them asks :func:`classify_line`, and the tables below are the only
place a final code or a URC prefix is written.

Decisions, made once:

* **Case.** Modems are case-insensitive on input and some firmware prints its result codes
  in lower case, so every match here ignores case: ``+cme error: 10`` is final, ``ring`` is
  a URC. Families are reported in upper case.
* **A bare ``+CME ERROR:``** (nothing at all after the colon) is *not* a final result code;
  ``+CME ERROR: `` (a blank, no value) is, with no code. This is ModemManager's rule, and
  the captured corpus pins it (vectors ``at_serial_parse_error-6/-7/-10/-11``). The framer
  therefore classifies the line as received (CR/LF removed, blanks kept). ``MODEM ERROR:``
  needs a number. A line that is not final is kept as a body line: the command then ends
  with its real final code or its timeout.
* **Registration lines** (``+CREG:`` ...) have the same prefix as answer and URC. A line is
  the answer when the command in flight owns its prefix (``owners``); a URC when another
  command is in flight (it cannot be that command's answer); with no command context the
  arity decides: ``<n>,<stat>,...`` is an answer, ``<stat>,...`` a URC (27.007 §7.2).
* ``+CPIN:``/``+CFUN:`` are URCs at start-up and answers to ``AT+CPIN?``/``AT+CFUN?``: the
  owner rule above makes them answers while their command is in flight.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from agent.modem import errcodes
from agent.modem.lex import is_short_decimal, opt_int, split_fields

LOGGER = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Final result codes (V.250 §5.7.1, 27.007 §9.2, 27.005 §3.2.5)
# --------------------------------------------------------------------------------------------

FINAL_OK: tuple[str, ...] = ("OK", "CONNECT")
"""Final codes that mean success (CONNECT, also ``CONNECT <rate>``: the port is in data mode)."""

FINAL_ERROR: tuple[str, ...] = ("ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "COMMAND NOT SUPPORT")
"""Whole-line final codes that mean failure. ``COMMAND NOT SUPPORT`` is a vendor ERROR seen on
some Chinese modules (ModemManager treats it as ERROR too)."""

FINAL_ERROR_PREFIXES: tuple[str, ...] = ("+CME ERROR:", "+CMS ERROR:", "MODEM ERROR:")
"""Prefixes of final error lines that carry a code."""

FINAL_CODES: tuple[str, ...] = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "CONNECT")
"""Whole-line final result codes of V.250 (verbose form); ModemManager's echo rule uses them."""

# --------------------------------------------------------------------------------------------
# Unsolicited result codes
# --------------------------------------------------------------------------------------------

REGISTRATION_FAMILIES: tuple[str, ...] = ("+CREG", "+CGREG", "+CEREG", "+C5GREG")
"""Answer and URC share the prefix; told apart as the module doc says."""

URC_PREFIXES: tuple[str, ...] = (
    "+CGEV", "+CPIN", "+CFUN", "+CRING", "+CLIP", "+CMTI", "+CMT", "+CDS", "+CBM", "+CIEV",
    "+CUSD", "+CTZV", "+CTZE", "+NITZ", "+QIND", "+QUSIM", "+VSIMSTAT", "^MODE", "^RSSI",
    "^HCSQ", "^SIMST", "^SRVST", "^BOOT", "*PSUTTZ",
)
"""Prefixes (before the colon) of lines that are always unsolicited, or unsolicited at
start-up (``+CPIN: READY``, ``+CFUN: 1``). 27.007 ones first, then vendors': Quectel
(``+QIND``, ``+QUSIM``), Huawei (``^MODE`` ...), SIMCom (``*PSUTTZ``); ``+VSIMSTAT`` is the
virtual board's vSIM slot status (docs/vsim-at.md)."""

QUIET_URC_PREFIXES: tuple[str, ...] = ("+SIMDATA",)
"""URCs logged by length only: the remote-SIM module's requests carry RAND and AUTN, and
the card's side never logs a data field (docs/remote-sim.md, secrets)."""

URC_BARE_PREFIXES: tuple[str, ...] = ("^SYSSTART", "+PACSP", "+SIMRESET")
"""URCs without a colon: Cinterion's boot message, Quectel's ``+PACSP0``/``+PACSP1``, the
remote-SIM module's card reset request (agent/modem/rsim.py)."""

URC_ONLY_PREFIXES: tuple[str, ...] = ("+SIMDATA",)
"""Prefixes that are a URC even while a command of the same name is in flight: the
remote-SIM module's ``+SIMDATA:`` carries its next command for the card, and
``AT+SIMDATA=`` (the host's answer) has no information line of its own, only OK. Modules
write the next ``+SIMDATA:`` before the OK of the host's answer (a SIM-bank gateway's
reader skips that OK for this reason), so the owner rule below must not take it."""

URC_LINES: tuple[str, ...] = ("RING", "RDY", "SMS READY", "SMS DONE", "PB DONE", "POWERED DOWN")
"""Whole-line URCs (RDY: Quectel boot finished; POWERED DOWN: Quectel before power-off)."""

MAX_STAT = 11
"""27.007 ``<stat>`` runs 0..11 (11 = attached for emergency bearer services only)."""


def has_mode_field(fields: list[tuple[str, bool]]) -> bool:
    """Does a registration report start with ``<n>`` (solicited form, or a URC that copies it)?

    The two forms differ only in arity and field shape: ``<n>,<stat>,<lac>,<ci>`` against
    ``<stat>,<lac>,<ci>,<AcT>``. The second field decides: a short bare decimal is a
    ``<stat>``; quoted, hex or empty is a LAC. A 4-digit decimal is ambiguous ("0011" is a
    padded stat, "0001" a LAC), so then the fourth field decides: a short decimal there is
    an AcT (URC), anything longer a cell id (solicited).
    """
    if len(fields) == 1:
        return False
    if len(fields) == 2:
        return True
    second, second_quoted = fields[1]
    if not second or second_quoted or not (second.isascii() and second.isdigit()):
        return False
    if len(second) <= 3:
        return int(second) <= MAX_STAT
    if int(second) > MAX_STAT:
        return False
    if len(fields) < 4:
        return True
    fourth, fourth_quoted = fields[3]
    return not is_short_decimal(fourth, fourth_quoted, 99)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtErrorCode:
    """A final error line: kind ``CME``/``CMS``/``MODEM``; ``code`` None when the modem gave none."""

    kind: str
    code: int | None
    name: str


@dataclass(frozen=True)
class FinalResult:
    """The line that ended a response. ``error`` is set for code-carrying error lines."""

    line: str
    is_error: bool
    error: AtErrorCode | None = None


@dataclass(frozen=True)
class ResponseFrame:
    """A buffer split at its final result code: body lines, the final, and what followed."""

    body: tuple[str, ...]
    final: FinalResult
    trailing: tuple[str, ...]


class LineKind(StrEnum):
    OK = "ok"
    """A final result code meaning success (OK, CONNECT)."""
    ERROR = "error"
    """A final result code meaning failure."""
    URC = "urc"
    """An unsolicited result code: it belongs to no command."""
    TEXT = "text"
    """Anything else: a line of the answer in flight (or a stale one)."""


class LineClass(NamedTuple):
    """What :func:`classify_line` says of one line. ``family``: the final code (``+CME ERROR``,
    ``NO CARRIER``, ``CONNECT``) or the URC's prefix (``+CEREG``, ``RING``); ``error``: the
    named code of an error final."""

    kind: LineKind
    family: str | None = None
    error: AtErrorCode | None = None

    @property
    def is_final(self) -> bool:
        return self.kind is LineKind.OK or self.kind is LineKind.ERROR


# --------------------------------------------------------------------------------------------
# Reading error codes
# --------------------------------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^(\+CME ERROR|\+CMS ERROR|MODEM ERROR):(.*)$", re.IGNORECASE)


def parse_error(line: str) -> AtErrorCode | None:
    """+CME ERROR: <n|text>, +CMS ERROR: <n|text>, MODEM ERROR: <n> or plain ERROR-like
    lines to a named code; None when the line is not an error line.

    Verbose texts map back to their number (unknown text: 100 for CME, 500 for CMS).
    """
    text = line.strip("\r\n") if isinstance(line, str) else ""
    stripped = text.strip()
    if stripped.upper() in FINAL_ERROR:
        return AtErrorCode("MODEM", None, stripped.lower())
    match = _ERROR_LINE.match(stripped)
    if not match:
        return None
    kind = match.group(1).upper().split()[0].lstrip("+")
    value = match.group(2).strip()
    if kind == "MODEM":
        number = opt_int(value)
        return AtErrorCode("MODEM", number, f"modem error {value}".strip()) if number is not None else None
    if not value:
        return AtErrorCode(kind, None, "unknown")
    number = opt_int(value)
    if kind == "CME":
        code = number if number is not None else errcodes.cme_code_for_text(value)
        name = errcodes.cme_name(code) if number is not None else value
    else:
        code = number if number is not None else errcodes.cms_code_for_text(value)
        name = errcodes.cms_name(code) if number is not None else value
    return AtErrorCode(kind, code, name)


# --------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------

TEXT = LineClass(LineKind.TEXT)
_WHOLE_LINES: dict[str, LineClass] = {
    **{code: LineClass(LineKind.OK, code) for code in FINAL_OK},
    **{code: LineClass(LineKind.ERROR, code, AtErrorCode("MODEM", None, code.lower())) for code in FINAL_ERROR},
    **{line: LineClass(LineKind.URC, line) for line in URC_LINES},
}
_URC_HEADS: dict[str, LineClass] = {prefix: LineClass(LineKind.URC, prefix) for prefix in URC_PREFIXES}
_URC_ONLY: dict[str, LineClass] = {prefix: LineClass(LineKind.URC, prefix) for prefix in URC_ONLY_PREFIXES}
_URC_BARE: tuple[LineClass, ...] = tuple(LineClass(LineKind.URC, prefix) for prefix in URC_BARE_PREFIXES)
_ERROR_HEADS: frozenset[str] = frozenset(prefix.rstrip(":") for prefix in FINAL_ERROR_PREFIXES)
_CONNECT_RATE = LineClass(LineKind.OK, "CONNECT")


def classify_line(line: str, owners: Collection[str] | None = None) -> LineClass:
    """Final, URC or text: the one reading of a line that every part of the agent uses.

    ``line`` is one line as received, CR/LF removed (other blanks are kept: see the module
    doc on ``+CME ERROR:``). ``owners`` are the answer prefixes of the command in flight, in
    upper case (``("+CREG",)`` during ``AT+CREG?``; see ``commands.answer_prefixes``), empty
    when a command without one (``AT``, ``ATE0``) is in flight, None when there is no
    command context. Case is ignored.
    """
    stripped = line.strip()
    upper = stripped.upper()
    known = _WHOLE_LINES.get(upper)
    if known is not None:
        return known
    head, colon, _ = upper.partition(":")
    if colon:
        if head in _ERROR_HEADS:
            return _error_line(line.lstrip(), head)
        if head in _URC_ONLY:
            return _URC_ONLY[head]
        if owners and head in owners:
            return TEXT
        if head in REGISTRATION_FAMILIES:
            return _registration_line(stripped, head, owners)
        urc = _URC_HEADS.get(head)
        if urc is not None:
            return urc
    elif upper.startswith("CONNECT "):
        return _CONNECT_RATE
    for urc in _URC_BARE:
        if upper.startswith(urc.family):  # type: ignore[arg-type]
            return urc
    return TEXT


def _error_line(line: str, head: str) -> LineClass:
    """``+CME ERROR:`` needs something after the colon, ``MODEM ERROR:`` a number."""
    if len(line) <= len(head) + 1:
        return TEXT
    error = parse_error(line)
    if error is None:
        return TEXT
    return LineClass(LineKind.ERROR, head, error)


def _registration_line(stripped: str, head: str, owners: Collection[str] | None) -> LineClass:
    if owners is not None:
        return LineClass(LineKind.URC, head)  # another command is in flight: not its answer
    payload = stripped[len(head) + 1 :].strip()
    return TEXT if has_mode_field(split_fields(payload)) else LineClass(LineKind.URC, head)


# --------------------------------------------------------------------------------------------
# Views for callers that want one answer
# --------------------------------------------------------------------------------------------


def is_urc(line: str, owners: Collection[str] | None = None) -> str | None:
    """The family of an unsolicited result code, or None (see :func:`classify_line`)."""
    if not isinstance(line, str):
        return None
    found = classify_line(line, owners)
    return found.family if found.kind is LineKind.URC else None


def final_line(line: str) -> FinalResult | None:
    """Is this line (CR/LF already removed, other blanks kept) a final result code?"""
    found = classify_line(line)
    if not found.is_final:
        return None
    return FinalResult(line.strip(), is_error=found.kind is LineKind.ERROR, error=found.error)


def final_result(buffer: str) -> ResponseFrame | None:
    """Split a raw buffer at its first final result code; None while the response is
    incomplete. Blank lines are dropped from the body; lines after the final (URCs that
    arrived in the same read) are returned as ``trailing`` for the framer to route."""
    lines = re.split(r"\r\n|\r|\n", buffer)
    for index, line in enumerate(lines):
        final = final_line(line)
        if final is not None:
            body = tuple(item.strip() for item in lines[:index] if item.strip())
            trailing = tuple(item.strip() for item in lines[index + 1 :] if item.strip())
            return ResponseFrame(body, final, trailing)
    return None


MIN_ECHO_BUFFER = 3
"""Buffers of 2 bytes or less are never echo (a bare CR LF); ModemManager's rule."""


def strip_echo(buffer: str, command: str | None = None) -> str:
    """Remove the command echo from the start of a response buffer.

    With ``command``: only a leading copy of that command (up to its CR) is removed, so a URC
    that raced the echo is never lost. Without it, ModemManager's rule: everything before the
    first CR LF is echo, except a buffer that begins with ``\\n`` + a final code (some modems
    drop the CR before ``NO CARRIER``/``CONNECT``).
    """
    if command is not None:
        stripped = command.strip()
        if stripped and buffer.upper().startswith(stripped.upper()):
            rest = buffer[len(stripped) :]
            return rest[1:] if rest.startswith("\r") and not rest.startswith("\r\n") else rest
        return buffer
    if len(buffer) < MIN_ECHO_BUFFER or buffer.startswith("\r\n"):
        return buffer
    if buffer.startswith("\n") and buffer[1:].split("\r", 1)[0].strip() in FINAL_CODES:
        return buffer
    index = buffer.find("\r\n")
    return buffer if index <= 0 else buffer[index:]

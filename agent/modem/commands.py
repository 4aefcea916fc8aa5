"""The AT commands the agent knows, each declared once, as data.

Why a table: what the agent knows about a command (how long it may take and why, which
parser reads its answer, the JSON names of that answer, whether it may answer without its
prefix, whether it carries secrets, whether a technician may type it) used to be spread
over the framer, the parsers, ``decode`` and ``pocket-agent at``, and the copies disagreed.
Now the framer's timeouts and sensitive-command redaction, ``decode``, ``at`` and the
technician's deny-list are all read from one :class:`CommandTable`. Modelled on
zigpy-znp's ``CommandDef`` (every command declared once, with its schemas) and bellows'
per-version command tables, which override only what changed: a dialect's table is
``BASE.with_(...)`` (see ``dialects/``).

Where a new command goes: one ``CommandDef`` below (or in the dialect that adds it), a
parser in ``parse/`` if its answer has meaning, and its JSON names in ``vocabulary.py``.
Final result codes and URCs are not commands: they are in ``codes.py``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.modem import vocabulary as v
from agent.modem.cmdline import (
    EXTENDED,
    FORMS,
    Form,
    Part,
    Unreadable,
    mentions,
    normalise,
    outside_quotes,
    parse,
    unquoted,
)
from agent.modem.parse import (
    parse_cclk,
    parse_ceer,
    parse_cesq,
    parse_cfun,
    parse_cgact_query,
    parse_cgcontrdp,
    parse_cgdcont,
    parse_cgev,
    parse_cgpaddr,
    parse_cimi,
    parse_cops,
    parse_cpin,
    parse_csq,
    parse_gsn,
    parse_iccid,
    parse_registration,
    parse_text,
)

LOGGER = logging.getLogger(__name__)

ALL_FORMS: frozenset[Form] = frozenset({"exec", "read", "test", "set"})


@dataclass(frozen=True)
class Timeout:
    """Seconds a command may take, and where the number comes from."""

    seconds: float
    reason: str


DEFAULT_TIMEOUT = 5.0
"""27.007 commands without a network round trip answer in well under a second; 5 s is
common practice (ModemManager uses 3-5 s) and leaves room for a busy baseband."""

COPS_SCAN_TIMEOUT = Timeout(180.0, "+COPS=? scans every band; vendor manuals (Quectel EC25: 180 s)")
COPS_SET_TIMEOUT = Timeout(180.0, "+COPS=<mode>: manual/automatic selection waits for a registration attempt")
CGACT_TIMEOUT = Timeout(150.0, "3GPP TS 24.301 T3380 (30 s) x 4 retransmissions of the ESM request + margin")
CFUN_TIMEOUT = Timeout(30.0, "radio on/off includes detach signalling; Quectel documents up to 15 s")
CGATT_TIMEOUT = Timeout(140.0, "attach with T3410 (15 s) x 5 attempts + margin (24.301)")
VSIM_TIMEOUT = Timeout(20.0, "vSIM load/select: profile write to the baseband plus a detach (docs/vsim-at.md)")

Parser = Callable[..., Any]
Describer = Callable[[Any, v.Reading], v.Fields]


@dataclass(frozen=True)
class CommandDef:
    """One AT command (without ``AT``): ``name`` is also the prefix of its answer lines."""

    name: str
    summary: str
    parser: Parser | None = None
    """Answer body -> typed value (``parse/``); None when the answer carries no meaning we use."""
    fields: Describer | None = None
    """Typed value -> its JSON names (``vocabulary.py``)."""
    timeouts: Mapping[Form, Timeout] = field(default_factory=dict)
    """Per form; a form not listed gets ``DEFAULT_TIMEOUT``."""
    bare_answer: bool = False
    """May answer without its prefix (``AT+CIMI`` -> ``440101234567890``)."""
    charset_aware: bool = False
    """The parser decodes strings per the modem's ``+CSCS`` (takes ``charset=``)."""
    sensitive: bool = False
    """Carries secrets: never logged, echo dropped, error text withheld (``at.py``)."""
    refusal: str | None = None
    """Why a technician may not send it; None: allowed."""
    refused_forms: frozenset[Form] = ALL_FORMS
    """The forms ``refusal`` applies to: ``+CFUN?`` only reads the level, ``+CFUN=1,1`` resets."""
    reads: re.Pattern[str] | None = None
    """Set-form arguments that only read although the set form is refused (``+CRSM=176,...``
    is READ BINARY, ``+CLCK="SC",2`` queries the lock): matched whole, case-insensitive."""

    @property
    def technician(self) -> bool:
        """Whether a technician may send every form of it."""
        return self.refusal is None

    def refusal_of(self, part: Part) -> str | None:
        """Why a technician may not send this use of the command, or None."""
        if self.refusal is None or part.form not in self.refused_forms:
            return None
        if part.form == "set" and self.reads is not None and self.reads.fullmatch(part.args):
            return None
        return self.refusal

    def timeout(self, form: Form) -> float:
        found = self.timeouts.get(form)
        return found.seconds if found is not None else DEFAULT_TIMEOUT

    def read(self, text: str, *, charset: str = "GSM") -> Any:
        """The typed value of an answer body; ParseError if it does not parse."""
        if self.parser is None:
            raise ValueError(f"{self.name} has no parser")
        return self.parser(text, charset=charset) if self.charset_aware else self.parser(text)

    def describe(self, value: Any, reading: v.Reading) -> v.Fields:
        """The value's fields in the one JSON vocabulary."""
        if self.fields is None:
            return {"value": repr(value)}
        return self.fields(value, reading)


# --------------------------------------------------------------------------------------------
# Command lines (the lexer is cmdline.py; these are what the framer needs of it)
# --------------------------------------------------------------------------------------------


def split_command_line(line: str) -> list[tuple[str, Form]]:
    """The extended commands of a command line, in order, with their forms.

    ``AT+CSQ;+CESQ`` -> ``[("+CSQ", "exec"), ("+CESQ", "exec")]``; basic commands (``E0``,
    ``&F``) are not listed. Within one ``;``-separated part only the first extended name is a
    command: later ones are its arguments (``AT+CMGS="+81..."`` is quoted anyway). Total: it
    reads any text (the framer's view); the technician's gate reads lines with ``cmdline.parse``.
    """
    text = normalise(line).removeprefix("AT")
    found: list[tuple[str, Form]] = []
    part: list[str] = []
    for char, quoted in outside_quotes(text + ";"):
        if char == ";" and not quoted:
            match = EXTENDED.search(unquoted("".join(part)))
            if match is not None:
                found.append((match.group(1), FORMS[match.group(2)]))
            part = []
        else:
            part.append(char)
    return found


def answer_prefixes(command_line: str) -> tuple[str, ...]:
    """The prefixes of the answers this line expects (``AT+CREG?`` -> ``("+CREG",)``): the
    framer's ``owners`` for ``codes.classify_line``. Empty for ``AT``, ``ATE0``, sentinels."""
    return tuple(name for name, _ in split_command_line(command_line))


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineFacts:
    """One command line as the framer sees it."""

    owners: tuple[str, ...]
    """Answer prefixes of its commands (``codes.classify_line``'s ``owners``)."""
    timeout: float
    """The longest named timeout among its commands, else ``DEFAULT_TIMEOUT``."""
    sensitive: bool
    """Any of its commands carries secrets."""


class CommandTable(Mapping[str, CommandDef]):
    """Commands by name. Immutable; ``with_`` gives a new table that adds or overrides."""

    def __init__(self, defs: Iterable[CommandDef]):
        self._defs: dict[str, CommandDef] = {}
        for definition in defs:
            if definition.name in self._defs:
                raise ValueError(f"{definition.name} declared twice")
            self._defs[definition.name] = definition

    def __getitem__(self, name: str) -> CommandDef:
        return self._defs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)

    def with_(self, *defs: CommandDef) -> CommandTable:
        """This table with ``defs`` added, or replacing the same names (bellows' override)."""
        return CommandTable([*(d for d in self._defs.values() if d.name not in {x.name for x in defs}), *defs])

    def changed(self, name: str, **changes: Any) -> CommandTable:
        """This table with only the named fields of one command changed."""
        return self.with_(replace(self._defs[name], **changes))

    def facts(self, command_line: str) -> LineFacts:
        """What the framer needs to send this line, from one reading of it. A line is
        sensitive if a sensitive command is named anywhere in it outside quotes, even where
        a well-formed line would not run it: redaction errs on the side of silence."""
        names = split_command_line(command_line)
        known = [(self._defs[n], f) for n, f in names if n in self._defs]
        mentioned = (self._defs.get(n) for n in mentions(command_line))
        return LineFacts(
            owners=tuple(n for n, _ in names),
            timeout=max((d.timeout(f) for d, f in known), default=DEFAULT_TIMEOUT),
            sensitive=any(d is not None and d.sensitive for d in mentioned),
        )

    def timeout_for(self, command_line: str) -> float:
        """The longest named timeout among the line's commands, else ``DEFAULT_TIMEOUT``."""
        return self.facts(command_line).timeout

    def is_sensitive(self, command_line: str) -> bool:
        return self.facts(command_line).sensitive

    def refusal(self, command_line: str) -> str | None:
        """Why a technician may not send this line, or None: the one gate for raw AT
        (the console's ``at``, the control socket's ``at`` op, ``pocket-agent at``).

        The line is split into every command a modem would run (``cmdline.parse``) and
        refused if any one is: an extended command by its entry here (a deny-list: a
        command the table does not know is allowed, since a technician's job is to try
        what we did not foresee), a basic command by ``basic_refusal`` (an allow-list:
        V.250's basic set is small and closed). A line the lexer cannot read is refused."""
        try:
            parts = parse(command_line)
        except Unreadable as exc:
            return f"refused: the gate cannot read this line as a modem would ({exc})"
        for part in parts:
            found = self._defs.get(part.name)
            why = basic_refusal(part) if part.basic else found.refusal_of(part) if found else None
            if why is not None:
                return f"{part.shown} refused: {why}"
        return None

    def technician_allowed(self, command_line: str) -> bool:
        return self.refusal(command_line) is None

    @functools.cached_property
    def families(self) -> dict[str, Parser]:
        """Answer prefix -> parser, for the commands whose answer we read."""
        return {name: d.parser for name, d in self._defs.items() if d.parser is not None}

    def family_of(self, line: str) -> str | None:
        """The command whose answer ``line`` is, by its prefix, if we read that answer."""
        head, colon, _ = line.strip().partition(":")
        head = head.upper()
        return head if colon and head in self.families else None

    def bare_family(self, command_line: str) -> str | None:
        """The family of a prefix-less answer to ``command_line`` (``AT+CIMI`` -> ``+CIMI``)."""
        names = split_command_line(command_line)
        found = self._defs.get(names[0][0]) if names else None
        return found.name if found is not None and found.bare_answer and found.parser else None


def _registration(family: str) -> CommandDef:
    return CommandDef(
        family, f"{family} registration status (answer and, with =2, a URC)",
        parser=functools.partial(parse_registration, family=family), fields=v.registration,
    )


def _text(name: str, summary: str) -> CommandDef:
    return CommandDef(name, summary, parser=parse_text, fields=v.text, bare_answer=True)


def _iccid(name: str, vendor: str) -> CommandDef:
    return CommandDef(name, f"ICCID ({vendor})", parser=parse_iccid, fields=v.iccid, bare_answer=True)


# Why a technician may not send a command: the categories of docs/console.md. The rule
# behind them: refused is what carries secrets, cannot be undone from the console
# (identity, firmware, NV and SIM-file writes, a locked SIM), changes the SIM or the modem's
# power behind the agent's back (the agent would not bring data back: swap and modem-reset
# do), or breaks the AT channel the agent shares with the technician.
SIM_LOCK_REFUSAL = "changes the SIM's PIN lock; three wrong PINs block the SIM until a PUK is entered"
PIN_REFUSAL = "enters a PIN or PUK; wrong ones block the SIM (ten wrong PUKs kill it)"
SIM_FILES_REFUSAL = "writes the SIM's files or sends it raw commands (PIN checks, UPDATE BINARY)"
IDENTITY_REFUSAL = "writes the modem's identity (IMEI) or NV items: not undoable from here, and illegal in many countries"
FIRMWARE_REFUSAL = "downloads or flashes modem firmware"
FACTORY_REFUSAL = "restores the modem's factory settings or writes settings to NV"
POWER_REFUSAL = ("powers the modem off, resets it or turns its radio off behind the agent's back: "
                 "use modem-reset, after which the agent brings data back")
PROFILE_REFUSAL = "switches or erases the SIM profile behind the agent's back: use swap"
CHANNEL_REFUSAL = "changes how the modem answers on the channel the agent reads (character set, operator format)"

SET_ONLY: frozenset[Form] = frozenset({"set"})
"""Refused in the set form only: reading (``?``) and the test form (``=?``) change nothing."""

BASE = CommandTable([
    *(_registration(family) for family in ("+CREG", "+CGREG", "+CEREG", "+C5GREG")),
    CommandDef("+CSQ", "signal quality (rssi, ber)", parser=parse_csq, fields=v.signal),
    CommandDef("+CESQ", "extended signal quality (rsrp, rsrq ...)", parser=parse_cesq, fields=v.signal),
    CommandDef("+COPS", "operator: current (?), scan (=?), select (=)", parser=parse_cops, fields=v.operator,
               charset_aware=True, timeouts={"test": COPS_SCAN_TIMEOUT, "set": COPS_SET_TIMEOUT},
               refusal="changes network selection or the operator format the agent reads (numeric MCC-MNC, "
                       "which its billing regions need)", refused_forms=SET_ONLY),
    CommandDef("+CPIN", "SIM lock state", parser=parse_cpin, fields=v.lock, refusal=PIN_REFUSAL,
               refused_forms=SET_ONLY),
    CommandDef("+CIMI", "IMSI", parser=parse_cimi, fields=v.imsi, bare_answer=True),
    _iccid("+CCID", "27.007 practice"),
    _iccid("+ICCID", "Sierra, Telit"),
    _iccid("^ICCID", "Huawei"),
    _iccid("+QCCID", "Quectel"),
    CommandDef("+CGSN", "IMEI (or ESN/MEID)", parser=parse_gsn, fields=v.device_ids, bare_answer=True),
    CommandDef("+GSN", "IMEI, V.250 name", parser=parse_gsn, fields=v.device_ids, bare_answer=True),
    _text("+CGMI", "manufacturer"),
    _text("+CGMM", "model"),
    _text("+CGMR", "firmware revision"),
    CommandDef("+CGDCONT", "PDP context definitions", parser=parse_cgdcont, fields=v.pdp_contexts,
               refusal="redefines the data context the agent sets from the SIM profile (many modems keep it in NV)",
               refused_forms=SET_ONLY),
    CommandDef("+CGACT", "PDP context activation", parser=parse_cgact_query, fields=v.context_states,
               timeouts={"set": CGACT_TIMEOUT}),
    CommandDef("+CGPADDR", "context addresses", parser=parse_cgpaddr, fields=v.context_addresses),
    CommandDef("+CGCONTRDP", "what the network gave a context", parser=parse_cgcontrdp, fields=v.context_params),
    CommandDef("+CGATT", "packet domain attach", timeouts={"set": CGATT_TIMEOUT}),
    CommandDef("+CFUN", "functionality level (radio on/off, reset)", parser=parse_cfun, fields=v.functionality,
               timeouts={"set": CFUN_TIMEOUT}, refusal=POWER_REFUSAL, refused_forms=SET_ONLY),
    CommandDef("+CGEV", "packet domain event (a URC; enabled by AT+CGEREP)", parser=parse_cgev, fields=v.cgev),
    CommandDef("+CEER", "extended error report", parser=parse_ceer, fields=v.ceer, bare_answer=True),
    CommandDef("+CCLK", "clock (set from the network)", parser=parse_cclk, fields=v.clock),
    CommandDef("+CLCK", "facility lock (SIM PIN on/off)", refusal=SIM_LOCK_REFUSAL, refused_forms=SET_ONLY,
               reads=re.compile(r'"[A-Z0-9]{2}",2', re.IGNORECASE)),  # mode 2: query the lock's status
    CommandDef("+CPWD", "change a facility password (SIM PIN)", refusal=SIM_LOCK_REFUSAL),
    CommandDef("+CSIM", "generic SIM access (raw APDUs)", refusal=SIM_FILES_REFUSAL, refused_forms=SET_ONLY),
    CommandDef("+CRSM", "restricted SIM access", refusal=SIM_FILES_REFUSAL, refused_forms=SET_ONLY,
               reads=re.compile(r"(176|178|192|242)(,.*)?")),  # 27.007 8.18: READ BINARY/RECORD, GET RESPONSE, STATUS
    CommandDef("+CSCS", "TE character set", refusal=CHANNEL_REFUSAL, refused_forms=SET_ONLY),
])
"""3GPP TS 27.007 and the V.250 basics every dialect shares."""

VSIM_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("+VSIMLOAD", "write a vSIM profile into a slot", timeouts={"set": VSIM_TIMEOUT}, sensitive=True,
               refusal="carries SIM keys (Ki, OPc); a typed command line ends up in history and scrollback"),
    CommandDef("+VSIMSEL", "select or query the active vSIM slot", timeouts={"set": VSIM_TIMEOUT},
               refusal=PROFILE_REFUSAL, refused_forms=SET_ONLY),
    CommandDef("+VSIMDEL", "erase a vSIM slot", refusal=PROFILE_REFUSAL),
    CommandDef("+VSIMLIST", "list the loaded vSIM slots (ICCID and IMSI, never keys)"),
    CommandDef("+VSINR", "SINR of the serving cell"),
)
"""The vSIM extension (docs/vsim-at.md); the ``virtual`` dialect adds it to ``BASE``."""

RSIM_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("+SIMDATA", "answer the module as its remote SIM card (Fibocom remote SIM protocol)",
               sensitive=True,
               refusal="answers the module as its SIM card: a typed answer breaks the card session the agent "
                       "serves, and a session's answers carry CK and IK"),
    CommandDef("+GTSET", "Fibocom settings, kept in NV; with \"RSIM\" the remote SIM on/off",
               refusal=PROFILE_REFUSAL + " (or writes the module's NV settings)", refused_forms=SET_ONLY),
)
"""The remote-SIM dialect's host commands (agent/modem/rsim.py, docs/remote-sim.md); the
``fibocom-rsim`` dialect adds them to ``BASE``."""

QUECTEL_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("+QPOWD", "power the module down (Quectel)", refusal=POWER_REFUSAL),
    CommandDef("+QCFG", "extended configuration, kept in NV (Quectel)", refusal=FACTORY_REFUSAL,
               refused_forms=SET_ONLY, reads=re.compile(r'"[A-Z0-9_/]+"', re.IGNORECASE)),  # one name: a query
    CommandDef("+QPRTPARA", "store or restore the configuration in NV (Quectel)", refusal=FACTORY_REFUSAL),
    CommandDef("+QNVW", "write an NV item (Quectel)", refusal=IDENTITY_REFUSAL),
    CommandDef("+QNVFW", "write an NV file (Quectel)", refusal=IDENTITY_REFUSAL),
    CommandDef("+EGMR", "write the IMEI (Quectel, MediaTek)", refusal=IDENTITY_REFUSAL),
    CommandDef("+QFOTADL", "firmware update over the air (Quectel)", refusal=FIRMWARE_REFUSAL),
)
"""Quectel's extensions (EC2x/EG25 AT manuals) that the gate must know: the EC25 boards
run the ``generic`` dialect, so these are refused whatever dialect the board names."""

UBLOX_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("+CPWROFF", "switch the module off (u-blox)", refusal=POWER_REFUSAL),
    CommandDef("+UFWUPD", "firmware update (u-blox)", refusal=FIRMWARE_REFUSAL),
    CommandDef("+UFWINSTALL", "install a downloaded firmware (u-blox)", refusal=FIRMWARE_REFUSAL),
    CommandDef("+UFACTORY", "restore factory configuration (u-blox)", refusal=FACTORY_REFUSAL),
)
"""u-blox's extensions (u-blox AT commands manual); ``+CFUN=15/16`` resets are +CFUN set forms."""

OTHER_VENDOR_COMMANDS: tuple[CommandDef, ...] = (
    CommandDef("^NVWR", "write an NV item (Huawei)", refusal=IDENTITY_REFUSAL),
    CommandDef("^NVWREX", "write an NV item, extended (Huawei)", refusal=IDENTITY_REFUSAL),
    CommandDef("^RESET", "reset the module (Huawei)", refusal=POWER_REFUSAL),
    CommandDef("+CPOF", "power off (SIMCom)", refusal=POWER_REFUSAL),
    CommandDef("+CRESET", "reset the module (SIMCom)", refusal=POWER_REFUSAL),
    CommandDef("+SIMEI", "write the IMEI (SIMCom)", refusal=IDENTITY_REFUSAL),
    CommandDef("#REBOOT", "reboot the module (Telit)", refusal=POWER_REFUSAL),
    CommandDef("#SHDN", "shut the module down (Telit)", refusal=POWER_REFUSAL),
)
"""Basebands a board may carry without a dialect of its own (they run ``generic``)."""

KNOWN = BASE.with_(*VSIM_COMMANDS, *RSIM_COMMANDS, *QUECTEL_COMMANDS, *UBLOX_COMMANDS, *OTHER_VENDOR_COMMANDS)
"""Every command any dialect or vendor group declares: the table of a channel opened
without a dialect (``pocket-agent at``, ``decode``), and the technician's one gate
(``KNOWN.refusal``), which must refuse a dangerous command whatever the board says it is."""

# ---- V.250 basic commands: an allow-list --------------------------------------------------

BASIC_ALLOWED: dict[str, str] = {
    "E": "echo on/off: the agent's framer drops an echo line",
    "I": "identification text",
}
"""Basic commands a technician may send. V.250 §6's set is small and closed: apart from
these and S-register reads, each one resets the agent's settings, writes NV, takes the
channel into or out of a call, or changes how results are framed."""

SETTINGS_RESET = ("resets the settings the agent made when it opened the modem (echo off, numeric errors, "
                  "the numeric operator format its billing regions need)")
BASIC_REFUSALS: dict[str, str] = {
    "Z": SETTINGS_RESET,
    "&F": SETTINGS_RESET,
    "&W": FACTORY_REFUSAL,
    "D": "dials: a data call takes over the AT channel the agent shares",
    "A": "answers a call: a data call takes over the AT channel the agent shares",
    "O": "returns to a data call's on-line state, leaving the agent's AT channel",
    "H": "hangs up, which some modems take as ending the data connection",
    "V": "changes how result codes are written, which the agent's channel reads",
    "Q": "silences result codes, which the agent's channel waits for",
    "S": "writes an S-register (S3 and S4 frame every line the agent reads)",
    "A/": "repeats the agent's last command line, which may carry SIM keys",
}
BASIC_UNKNOWN = "a V.250 basic command the gate does not let through (only E, I and S-register reads pass)"


def basic_refusal(part: Part) -> str | None:
    """Why a technician may not send this basic command, or None."""
    if part.name in BASIC_ALLOWED or (part.name == "S" and part.form == "read"):
        return None
    return BASIC_REFUSALS.get(part.name, BASIC_UNKNOWN)


FAMILIES = KNOWN.families
"""Answer prefix -> parser (``family_of`` finds the key of a line)."""


def timeout_for(command_line: str) -> float:
    """The named timeout of ``command_line`` in ``KNOWN``."""
    return KNOWN.timeout_for(command_line)


def family_of(line: str) -> str | None:
    return KNOWN.family_of(line)


def technician_allowed(command_line: str) -> bool:
    """May a technician send this command line? ``KNOWN.refusal`` says why not."""
    return KNOWN.technician_allowed(command_line)

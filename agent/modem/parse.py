"""Pure parsers from AT response text to typed values (3GPP TS 27.007 / 27.005 families).

Why a module of pure functions: the framer (``at.py``) and the driver do I/O; this module only
turns text into frozen dataclasses, so it can be tested against the captured ModemManager
corpus, fuzzed with hypothesis, and reused by ``pocket-agent decode`` on a field log.

Conventions every parser follows:

* Input is the response *body*: the lines after echo removal, without the final ``OK``
  (exactly the ``raw`` field of the corpus). CR/LF framing and surrounding blanks are tolerated.
* Real modems are sloppy (spaces inside fields, quoted or bare hex, stray parentheses,
  extra vendor fields). We accept what the corpus shows real devices print, and reject the
  rest with :class:`agent.errors.ParseError` carrying the input in ``raw``. No parser raises
  anything else, whatever the input (the property tests hold us to that).
* Unknown values are ``None``, never 0: "cell id 0" and "no cell id" mean different things
  to the health detector.

The table :data:`FAMILIES` maps a response prefix to its parser; :func:`is_urc` names the
family of an unsolicited result code so the framer can route it. See docs/at-parsers.md.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from agent.errors import ParseError
from agent.modem import errcodes

LOGGER = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Final result codes (the framer imports these)
# --------------------------------------------------------------------------------------------

FINAL_CODES: tuple[str, ...] = ("OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "CONNECT")
"""Whole-line final result codes of V.250 (verbose form)."""

FINAL_OK: tuple[str, ...] = ("OK", "CONNECT")
"""Final codes that mean success (CONNECT: the port switched to data mode)."""

FINAL_ERROR: tuple[str, ...] = ("ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "COMMAND NOT SUPPORT")
"""Whole-line final codes that mean failure. ``COMMAND NOT SUPPORT`` is a vendor ERROR seen on
some Chinese modules (ModemManager treats it as ERROR too)."""

FINAL_ERROR_PREFIXES: tuple[str, ...] = ("+CME ERROR:", "+CMS ERROR:", "MODEM ERROR:")
"""Prefixes of final error lines that carry a code."""


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """One +CREG/+CGREG/+CEREG/+C5GREG report. ``lac`` for CS/PS 2G-3G, ``tac`` for LTE/NR."""

    family: str
    n: int | None
    stat: int
    lac: int | None
    tac: int | None
    ci: int | None
    act: str | None
    cause_type: int | None
    reject_cause: int | None
    urc: bool

    @property
    def registered(self) -> bool:
        """Home or roaming, including the SMS-only and CSFB-not-preferred variants."""
        return self.stat in (1, 5, 6, 7, 9, 10)

    @property
    def roaming(self) -> bool:
        return self.stat in (5, 7, 10)


@dataclass(frozen=True)
class Signal:
    """Signal quality in physical units; ``raw`` keeps the 27.007 indices as received."""

    rssi_dbm: float | None
    ber: int | None
    rscp_dbm: float | None
    ecno_db: float | None
    rsrq_db: float | None
    rsrp_dbm: float | None
    sinr_db: float | None
    raw: dict[str, int | None] = field(default_factory=dict)


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


@dataclass(frozen=True)
class PdpContext:
    cid: int
    pdp_type: str
    apn: str | None


@dataclass(frozen=True)
class PdpFormat:
    """One line of +CGDCONT=?: the cid range the modem accepts for a PDP type."""

    pdp_type: str
    min_cid: int
    max_cid: int


@dataclass(frozen=True)
class CidChoice:
    """Which cid to use for an APN, and whether that reuses or overwrites a defined context."""

    cid: int
    reuses_existing: bool
    overwrites_existing: bool


@dataclass(frozen=True)
class ContextState:
    cid: int
    active: bool


@dataclass(frozen=True)
class ContextAddress:
    cid: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ContextParams:
    """+CGCONTRDP: what the network gave a context. ``prefix`` is the subnet as a length."""

    cid: int
    bearer_id: int | None
    apn: str | None
    address: str | None
    prefix: int | None
    gateway: str | None
    dns: tuple[str, ...]
    mtu: int | None


@dataclass(frozen=True)
class AtErrorCode:
    """A final error line: kind ``CME``/``CMS``/``MODEM``; ``code`` None when the modem gave none."""

    kind: str
    code: int | None
    name: str


@dataclass(frozen=True)
class CgevEvent:
    """A +CGEV packet-domain event (27.007 §10.1.19). ``event`` uses snake_case names."""

    event: str
    pdp_type: str | None = None
    address: str | None = None
    cid: int | None = None
    parent_cid: int | None = None
    event_type: int | None = None
    reason: int | None = None
    mobile_class: str | None = None


@dataclass(frozen=True)
class Ceer:
    """+CEER extended error report: the vendor's free text (may be empty)."""

    reason: str


@dataclass(frozen=True)
class DeviceIds:
    """+CGSN/+GSN: an IMEI (3GPP) or an ESN/MEID (3GPP2 modems)."""

    imei: str | None
    esn: str | None
    meid: str | None


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


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

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


def _fail(message: str, raw: str) -> ParseError:
    """A ParseError carrying the input; logged at debug (the caller decides if it matters)."""
    LOGGER.debug("parse error: %s: %r", message, raw[:200])
    return ParseError(f"{message}: {raw[:200]!r}", raw=raw)


def _lines(text: str) -> list[str]:
    """Non-blank lines of a body, CR/LF tolerant, surrounding blanks removed."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}", raw=repr(text))
    if len(text) > MAX_INPUT_CHARS:
        raise _fail("response too long", text)
    return [line.strip() for line in _LINE_SPLIT.split(text) if line.strip()]


def _split_fields(payload: str) -> list[tuple[str, bool]]:
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


def _payload(line: str, prefix: str) -> str | None:
    """The text after ``prefix`` (case-insensitive, optional blanks), or None if absent."""
    if line[: len(prefix)].upper() != prefix.upper():
        return None
    return line[len(prefix) :].strip()


def _find_payloads(text: str, prefix: str) -> list[str]:
    return [p for p in (_payload(line, prefix) for line in _lines(text)) if p is not None]


def _int(value: str, raw: str, what: str) -> int:
    """A decimal field (leading zeros allowed)."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        raise _fail(f"{what} is not a number", raw)
    return int(value)


def _opt_int(value: str) -> int | None:
    """A decimal field where garbage means "not given" (trailing optional fields)."""
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


_HEX = re.compile(r"[0-9A-Fa-f]+")


def _hex(value: str, raw: str, what: str) -> int | None:
    """A hex field, quoted or not; empty -> None. A garbled field keeps its leading token
    (Gobi 1000 prints ``  0 5`` for LAC 0, which ModemManager reads as 0)."""
    value = value.strip()
    if not value:
        return None
    token = value.split()[0]
    if not _HEX.fullmatch(token) or len(token) > 16:
        raise _fail(f"{what} is not hexadecimal", raw)
    return int(token, 16)


def _act(value: str) -> str | None:
    number = _opt_int(value)
    return ACT_NAMES.get(number) if number is not None else None


def _is_short_decimal(value: str, quoted: bool, limit: int) -> bool:
    value = value.strip()
    return not quoted and value.isascii() and value.isdigit() and len(value) <= 3 and int(value) <= limit


# --------------------------------------------------------------------------------------------
# Registration: +CREG / +CGREG / +CEREG / +C5GREG
# --------------------------------------------------------------------------------------------

REGISTRATION_FAMILIES: tuple[str, ...] = ("+CREG", "+CGREG", "+CEREG", "+C5GREG")

MAX_STAT = 11
"""27.007 ``<stat>`` runs 0..11 (11 = attached for emergency bearer services only)."""

_AFTER_ACT: dict[str, tuple[str, ...]] = {
    "+CREG": ("cause_type", "reject_cause"),
    "+CGREG": ("rac", "cause_type", "reject_cause"),
    "+CEREG": ("cause_type", "reject_cause"),
    "+C5GREG": ("nssai_len", "nssai", "cause_type", "reject_cause"),
}
"""Fields after ``<AcT>`` per family (27.007 §7.2, §10.1.20, §10.1.22, §10.1.54)."""


def _registration_line(text: str, family: str | None) -> tuple[str, str]:
    """The first registration line (ModemManager matches the first of several URCs)."""
    families = (family,) if family else REGISTRATION_FAMILIES
    for line in _lines(text):
        for fam in families:
            payload = _payload(line, fam + ":")
            if payload is not None:
                return fam, payload
    if family is not None and len(_lines(text)) == 1 and not _lines(text)[0].startswith("+"):
        return family, _lines(text)[0]
    raise _fail("no registration line", text)


def _has_mode_field(fields: list[tuple[str, bool]]) -> bool:
    """Does the report start with ``<n>`` (solicited form, or a URC that copies it)?

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
    return not _is_short_decimal(fourth, fourth_quoted, 99)


def _drop_vendor_extra(rest: list[tuple[str, bool]], raw: str) -> list[tuple[str, bool]]:
    """Novatel/others put an extra field between TAC and CI (``1F00, 20 ,79D903 ,7``).
    Detected when the field in the AcT slot is not a small number but the next one is."""
    if len(rest) >= 5:
        act_slot, act_quoted = rest[3]
        after, after_quoted = rest[4]
        looks_like_ci = bool(act_slot) and not _is_short_decimal(act_slot, act_quoted, 99)
        if looks_like_ci and _is_short_decimal(after, after_quoted, 99):
            return rest[:2] + rest[3:]
    return rest


def parse_registration(text: str, *, family: str | None = None, solicited: bool | None = None) -> Registration:
    """Parse a registration report in any ``<n>`` mode, solicited or URC.

    ``family`` restricts the prefix (and allows a payload without it); ``solicited``, when the
    caller knows it, sets ``urc``; otherwise ``urc`` is inferred from the absence of ``<n>``.
    """
    fam, payload = _registration_line(text, family)
    fields = _split_fields(payload)
    has_n = _has_mode_field(fields)
    n = _int(fields[0][0], text, "<n>") if has_n else None
    rest = _drop_vendor_extra(fields[1:] if has_n else fields, text)
    stat = _int(rest[0][0], text, "<stat>")
    if stat > MAX_STAT:
        raise _fail(f"<stat> {stat} out of range", text)
    loc = _hex(rest[1][0], text, "<lac>/<tac>") if len(rest) > 1 else None
    ci = _hex(rest[2][0], text, "<ci>") if len(rest) > 2 else None
    act = _act(rest[3][0]) if len(rest) > 3 else None
    extras = dict(zip(_AFTER_ACT[fam], (f for f, _ in rest[4:])))
    is_lte_family = fam in ("+CEREG", "+C5GREG")
    return Registration(
        family=fam,
        n=n,
        stat=stat,
        lac=None if is_lte_family else loc,
        tac=loc if is_lte_family else None,
        ci=ci,
        act=act,
        cause_type=_opt_int(extras.get("cause_type", "")),
        reject_cause=_opt_int(extras.get("reject_cause", "")),
        urc=(not solicited) if solicited is not None else not has_n,
    )


# --------------------------------------------------------------------------------------------
# Signal: +CSQ / +CESQ
# --------------------------------------------------------------------------------------------

CSQ_UNKNOWN = 99
"""27.007 +CSQ: 99 = not known or not detectable (both <rssi> and <ber>)."""

CESQ_UNKNOWN_RXLEV = 99
CESQ_UNKNOWN = 255
"""27.007 +CESQ: <rxlev>/<ber> use 99, <rscp>/<ecno>/<rsrq>/<rsrp> use 255 for "not known"."""

CESQ_RANGES: dict[str, int] = {"rxlev": 63, "ber": 7, "rscp": 96, "ecno": 49, "rsrq": 34, "rsrp": 97}
"""Highest valid index of each +CESQ field (27.007 §8.69)."""


def _csq_rssi_dbm(rssi: int) -> float:
    """+CSQ <rssi>: 0 = -113 dBm or less, 31 = -51 dBm or more, 2 dB steps."""
    return -113.0 + 2.0 * rssi


def _cesq_convert(name: str, value: int) -> float:
    """The 27.007 §8.69 tables, as ModemManager reads them (lower edge of each step)."""
    if name == "rxlev":
        return -111.0 + value  # 0 = < -110 dBm ... 63 = >= -48 dBm
    if name == "rscp":
        return -121.0 + value  # 0 = < -120 dBm ... 96 = >= -25 dBm
    if name == "ecno":
        return -24.5 + 0.5 * value  # 0 = < -24 dB ... 49 = >= 0.5 dB
    if name == "rsrq":
        return -20.0 + 0.5 * value  # 0 = < -19.5 dB ... 34 = >= -3 dB
    return -141.0 + value  # rsrp: 0 = < -140 dBm ... 97 = >= -44 dBm


def _signal_fields(text: str, prefix: str, count: int) -> list[int]:
    payloads = _find_payloads(text, prefix)
    if not payloads:
        raise _fail(f"no {prefix} line", text)
    fields = [f for f, _ in _split_fields(payloads[0])]
    if len(fields) < count:
        raise _fail(f"{prefix} needs {count} fields", text)
    return [_int(f, text, prefix) for f in fields[:count]]


def parse_csq(text: str) -> Signal:
    """+CSQ: <rssi>,<ber>. 99 = unknown; 100..191 (TD-SCDMA extension) are rejected."""
    rssi, ber = _signal_fields(text, "+CSQ:", 2)
    if not (rssi <= 31 or rssi == CSQ_UNKNOWN) or not (ber <= 7 or ber == CSQ_UNKNOWN):
        raise _fail("+CSQ value out of range", text)
    return Signal(
        rssi_dbm=None if rssi == CSQ_UNKNOWN else _csq_rssi_dbm(rssi),
        ber=None if ber == CSQ_UNKNOWN else ber,
        rscp_dbm=None,
        ecno_db=None,
        rsrq_db=None,
        rsrp_dbm=None,
        sinr_db=None,
        raw={"rssi": rssi, "ber": ber},
    )


def parse_cesq(text: str) -> Signal:
    """+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp> to dBm/dB (unknown -> None)."""
    values = dict(zip(CESQ_RANGES, _signal_fields(text, "+CESQ:", 6)))
    converted: dict[str, float | None] = {}
    for name, value in values.items():
        unknown = CESQ_UNKNOWN_RXLEV if name in ("rxlev", "ber") else CESQ_UNKNOWN
        if value == unknown:
            converted[name] = None
        elif value > CESQ_RANGES[name]:
            raise _fail(f"+CESQ <{name}> {value} out of range", text)
        else:
            converted[name] = float(value) if name == "ber" else _cesq_convert(name, value)
    ber = converted["ber"]
    return Signal(
        rssi_dbm=converted["rxlev"],
        ber=None if ber is None else int(ber),
        rscp_dbm=converted["rscp"],
        ecno_db=converted["ecno"],
        rsrq_db=converted["rsrq"],
        rsrp_dbm=converted["rsrp"],
        sinr_db=None,
        raw=dict(values),
    )


# --------------------------------------------------------------------------------------------
# Operator: +COPS? / +COPS=?
# --------------------------------------------------------------------------------------------

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
    payloads = _find_payloads(text, "+COPS:")
    if not payloads:
        raise _fail("no +COPS line", text)
    fields = _split_fields(payloads[0])
    if fields[0][0].startswith("("):
        raise _fail("+COPS=? list where +COPS? answer expected", text)
    mode = _int(fields[0][0], text, "<mode>")
    fmt = _int(fields[1][0], text, "<format>") if len(fields) > 1 and fields[1][0] else None
    oper = decode_text(fields[2][0], charset) if len(fields) > 2 and fields[2][0] else None
    act = _act(fields[3][0]) if len(fields) > 3 else None
    if fmt is not None and fmt > 2 or mode > 4:
        raise _fail("+COPS <mode>/<format> out of range", text)
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
        raise _fail("no +COPS line", text)
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


# --------------------------------------------------------------------------------------------
# SIM and identity: +CPIN / +CIMI / ICCID / +CGSN
# --------------------------------------------------------------------------------------------

PIN_STATES: frozenset[str] = frozenset(
    {
        "READY", "SIM PIN", "SIM PUK", "SIM PIN2", "SIM PUK2", "PH-SIM PIN", "PH-FSIM PIN",
        "PH-FSIM PUK", "PH-NET PIN", "PH-NET PUK", "PH-NETSUB PIN", "PH-NETSUB PUK",
        "PH-SP PIN", "PH-SP PUK", "PH-CORP PIN", "PH-CORP PUK", "PH-ESL PIN",
        "NOT INSERTED", "NOT READY", "SIM REMOVED",
    }
)
"""27.007 §8.3 ``<code>`` values, plus the vendor "no SIM" states seen as spontaneous +CPIN."""


def parse_cpin(text: str) -> str:
    """+CPIN: <code> (quoted or not); a bare code without prefix is accepted too."""
    lines = _lines(text)
    payloads = _find_payloads(text, "+CPIN:")
    value = payloads[0] if payloads else (lines[0] if len(lines) == 1 else "")
    code = " ".join(value.strip().strip('"').upper().split())
    if code not in PIN_STATES:
        raise _fail("unknown +CPIN code", text)
    return code


def parse_cimi(text: str) -> str:
    """+CIMI: the IMSI, 5..15 decimal digits (some modems prefix ``+CIMI:``)."""
    lines = _lines(text)
    if len(lines) != 1:
        raise _fail("+CIMI answer must be one line", text)
    value = lines[0]
    value = _payload(value, "+CIMI:") or value
    value = value.strip().strip('"')
    if not (value.isascii() and value.isdigit() and 5 <= len(value) <= 15):
        raise _fail("IMSI must be 5..15 digits", text)
    return value


ICCID_PREFIXES: tuple[str, ...] = ("+CCID:", "+ICCID:", "^ICCID:", "+QCCID:", "^SCID:", "+CRSM:")


def _swap_nibbles(value: str) -> str:
    return "".join(value[i + 1] + value[i] for i in range(0, len(value) - 1, 2))


def parse_iccid(text: str) -> str:
    """The SIM's ICCID from +CCID/+ICCID/^ICCID/+QCCID or a bare value.

    Accepts the BCD-as-stored form (nibble-swapped, detected by a leading ``98``) and strips
    the ``F`` filler of 19-digit ICCIDs. The major industry identifier must be 89 (telecom).
    Hex digits in the account part are kept (some Chinese SIMs carry them).
    """
    lines = _lines(text)
    if len(lines) != 1:
        raise _fail("ICCID answer must be one line", text)
    value = lines[0]
    for prefix in ICCID_PREFIXES:
        payload = _payload(value, prefix)
        if payload is not None:
            value = payload.split(",")[-1]
            break
    value = value.strip().strip('"').strip().upper()
    if len(value) not in (19, 20) or not _HEX.fullmatch(value):
        raise _fail("ICCID must be 19 or 20 hex digits", text)
    if value.startswith("98"):
        if len(value) % 2:
            raise _fail("swapped ICCID has odd length", text)
        value = _swap_nibbles(value)
    value = value.rstrip("F") if value.endswith("F") else value
    if not value.startswith("89") or len(value) < 19:
        raise _fail("ICCID must start with 89", text)
    return value


_ESN_MEID = re.compile(r"0x([0-9A-Fa-f]+)\s*:\s*0x([0-9A-Fa-f]+)")


def parse_gsn(text: str) -> DeviceIds:
    """+CGSN/+GSN: a 15-digit IMEI (optionally ``,serial``), a hex ESN (8 digits, ``0x``
    optional, leading zeros restored) or a ``MEID:ESN`` pair as Sierra CDMA modems print."""
    lines = _lines(text)
    if not lines:
        raise _fail("empty +CGSN answer", text)
    for line in lines:
        match = _ESN_MEID.search(line)
        if match:
            return DeviceIds(imei=None, esn=match.group(2).upper().zfill(8)[-8:], meid=match.group(1).upper()[-14:])
    value = lines[0]
    for prefix in ("+CGSN:", "+GSN:"):
        value = _payload(value, prefix) or value
    value = value.strip().strip('"').split(",")[0].strip()
    if value.lower().startswith("0x"):
        digits = value[2:]
        if not _HEX.fullmatch(digits) or len(digits) > 8:
            raise _fail("ESN must be up to 8 hex digits", text)
        return DeviceIds(imei=None, esn=digits.upper().zfill(8), meid=None)
    if value.isascii() and value.isdigit() and len(value) == 15:
        return DeviceIds(imei=value, esn=None, meid=None)
    if _HEX.fullmatch(value) and len(value) == 8:
        return DeviceIds(imei=None, esn=value.upper(), meid=None)
    if _HEX.fullmatch(value) and len(value) == 14:
        return DeviceIds(imei=None, esn=None, meid=value.upper())
    raise _fail("not an IMEI, ESN or MEID", text)


def parse_imei(text: str) -> str:
    """The IMEI from +CGSN/+GSN; a CDMA-only answer (ESN/MEID) is a ParseError here."""
    ids = parse_gsn(text)
    if ids.imei is None:
        raise _fail("no IMEI (ESN/MEID only)", text)
    return ids.imei


# --------------------------------------------------------------------------------------------
# PDP contexts: +CGDCONT / +CGACT / +CGPADDR / +CGCONTRDP
# --------------------------------------------------------------------------------------------

IP_PDP_TYPES: frozenset[str] = frozenset({"IP", "IPV6", "IPV4V6", "NON-IP"})
"""PDP types that carry our data; PPP and X.25 entries of +CGDCONT=? are ignored."""


def parse_cgdcont_query(text: str) -> list[PdpContext]:
    """+CGDCONT: <cid>,<PDP_type>,<APN>,... one line per defined context; empty APN -> None."""
    contexts = []
    for payload in _find_payloads(text, "+CGDCONT:"):
        fields = _split_fields(payload)
        if len(fields) < 2:
            raise _fail("+CGDCONT line needs cid and type", text)
        apn = fields[2][0] if len(fields) > 2 and fields[2][0] else None
        contexts.append(PdpContext(_int(fields[0][0], text, "<cid>"), fields[1][0].upper(), apn))
    if not contexts and _lines(text):
        raise _fail("no +CGDCONT line", text)
    return contexts


_RANGE = re.compile(r"\(\s*(\d+)\s*(?:-\s*(\d+))?\s*[,)]")


def parse_cgdcont_test(text: str) -> list[PdpFormat]:
    """+CGDCONT: (<cid range>),<PDP_type>,... per type. Only the first cid range is used
    (Cinterion prints ``(1-17,101-116)``); lines with no range or a non-IP type are skipped."""
    formats = []
    payloads = _find_payloads(text, "+CGDCONT:")
    if not payloads:
        raise _fail("no +CGDCONT line", text)
    for payload in payloads:
        match = _RANGE.match(payload)
        type_match = re.search(r'"([^"]*)"', payload)
        if not match or not type_match:
            continue
        pdp_type = type_match.group(1).strip().upper()
        if pdp_type not in IP_PDP_TYPES:
            continue
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        formats.append(PdpFormat(pdp_type, low, high))
    return formats


_OPERATOR_SUFFIX = re.compile(r"\.mnc\d+\.mcc\d+\.gprs$", re.IGNORECASE)


def same_apn(a: str | None, b: str | None) -> bool:
    """APNs compared as the network does: case-insensitive, operator-id suffix ignored."""
    if not a or not b:
        return False
    return _OPERATOR_SUFFIX.sub("", a).lower() == _OPERATOR_SUFFIX.sub("", b).lower()


def select_cid(contexts: list[PdpContext], formats: list[PdpFormat], apn: str, pdp_type: str) -> CidChoice:
    """Which cid to program for ``apn``: reuse a matching context, else the first free cid,
    else overwrite a context with an empty APN, else the last one (ModemManager's order)."""
    for ctx in contexts:
        if same_apn(ctx.apn, apn) and ctx.pdp_type == pdp_type.upper():
            return CidChoice(ctx.cid, reuses_existing=True, overwrites_existing=False)
    fmt = next((f for f in formats if f.pdp_type == pdp_type.upper()), None)
    low, high = (fmt.min_cid, fmt.max_cid) if fmt else (1, max([c.cid for c in contexts] + [1]) + 1)
    used = sorted({c.cid for c in contexts})
    free = next((cid for cid in range(low, high + 1) if cid not in used), None)
    if free is not None:
        return CidChoice(free, reuses_existing=False, overwrites_existing=False)
    empty = next((c for c in contexts if not c.apn), None)
    target = empty.cid if empty else contexts[-1].cid
    return CidChoice(target, reuses_existing=False, overwrites_existing=True)


def parse_cgact_query(text: str) -> list[ContextState]:
    """+CGACT: <cid>,<state> per context; an empty body (just OK) is no contexts."""
    states = []
    for payload in _find_payloads(text, "+CGACT:"):
        fields = _split_fields(payload)
        if len(fields) < 2:
            raise _fail("+CGACT line needs cid and state", text)
        state = _int(fields[1][0], text, "<state>")
        if state > 1:
            raise _fail("+CGACT <state> must be 0 or 1", text)
        states.append(ContextState(_int(fields[0][0], text, "<cid>"), bool(state)))
    if not states and _lines(text):
        raise _fail("no +CGACT line", text)
    return states


def normalise_address(value: str) -> str | None:
    """An IP address as standard text. Modems print IPv6 as 16 dotted decimals
    (27.007 pre-R12 ``+CGDCONT`` form) or colon-hex in upper case with leading zeros."""
    value = value.strip().strip('"').strip()
    if not value:
        return None
    octets = value.split(".")
    try:
        if len(octets) == 16:
            return str(ipaddress.IPv6Address(bytes(int(o) for o in octets)))
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _split_address_mask(value: str) -> tuple[str | None, int | None]:
    """``a.b.c.d.m1.m2.m3.m4`` (IPv4 + mask), 32 dotted octets (IPv6 + mask), ``addr mask``,
    or a lone address. Returns (address, prefix length)."""
    value = value.strip().strip('"').strip()
    if not value:
        return None, None
    octets = value.split(".")
    if len(octets) in (8, 32) and all(o.isdigit() for o in octets):
        half = len(octets) // 2
        addr = normalise_address(".".join(octets[:half]))
        mask = _mask_prefix(".".join(octets[half:]))
        return addr, mask
    if " " in value:
        addr_s, mask_s = value.split(None, 1)
        return normalise_address(addr_s), _mask_prefix(mask_s)
    return normalise_address(value), None


def _mask_prefix(value: str) -> int | None:
    """Prefix length of a contiguous netmask (dotted IPv4, 16 dotted octets or colon IPv6)."""
    text = normalise_address(value)
    if text is None:
        return None
    bits = int(ipaddress.ip_address(text))
    width = 32 if "." in text else 128
    prefix = (bits).bit_count()
    if bits != ((1 << width) - 1) ^ ((1 << (width - prefix)) - 1):
        return None
    return prefix


def _looks_like_netmask(value: str) -> bool:
    text = value.strip().strip('"')
    return text.count(".") == 3 and text.startswith("255.") and _mask_prefix(text) is not None


CGCONTRDP_MTU_INDEX = 11
"""Index of ``<IPv4_MTU>`` in the R10+ +CGCONTRDP layout (after the two P-CSCF fields,
IM_CN_Signalling_Flag and LIPA_indication)."""


def _contrdp_line(payload: str, raw: str) -> ContextParams:
    fields = [f for f, _ in _split_fields(payload)]
    if len(fields) < 2:
        raise _fail("+CGCONTRDP needs cid and bearer id", raw)
    cid = _int(fields[0], raw, "<cid>")
    bearer = _opt_int(fields[1])
    apn = fields[2] if len(fields) > 2 and fields[2] else None
    rest = fields[3:]
    address, prefix = _split_address_mask(rest[0]) if rest else (None, None)
    if len(rest) > 1 and prefix is None and _looks_like_netmask(rest[1]):
        prefix = _mask_prefix(rest[1])  # pre-R9.4 layout: mask in its own field
        rest = rest[1:]
    gateway = normalise_address(rest[1]) if len(rest) > 1 else None
    dns = tuple(
        a for a in (normalise_address(f) for f in rest[2:4]) if a is not None and not ipaddress.ip_address(a).is_unspecified
    )
    mtu_index = CGCONTRDP_MTU_INDEX - 3
    mtu = _opt_int(rest[mtu_index]) if len(rest) > mtu_index else None
    return ContextParams(cid, bearer, apn, address, prefix, gateway, dns, mtu or None)


def parse_cgcontrdp(text: str) -> list[ContextParams]:
    """+CGCONTRDP: one line per active context (two for a dual-stack IPV4V6 context)."""
    payloads = _find_payloads(text, "+CGCONTRDP:")
    if not payloads and _lines(text):
        raise _fail("no +CGCONTRDP line", text)
    return [_contrdp_line(p, text) for p in payloads]


def parse_cgpaddr(text: str) -> list[ContextAddress]:
    """+CGPADDR: <cid>[,<PDP_addr_1>[,<PDP_addr_2>]] per context; empty addresses dropped."""
    result = []
    for payload in _find_payloads(text, "+CGPADDR:"):
        fields = [f for f, _ in _split_fields(payload)]
        cid = _int(fields[0], text, "<cid>")
        addresses = []
        for value in fields[1:]:
            if not value.strip():
                continue
            addr = normalise_address(value)
            if addr is None:
                raise _fail("+CGPADDR address is not an IP address", text)
            addresses.append(addr)
        result.append(ContextAddress(cid, tuple(addresses)))
    if not result and _lines(text):
        raise _fail("no +CGPADDR line", text)
    return result


# --------------------------------------------------------------------------------------------
# +CFUN, +CEER, +CCLK
# --------------------------------------------------------------------------------------------


def parse_cfun(text: str) -> int:
    """+CFUN: <fun>[,<rst>]: the functionality level (0 off, 1 full, 4 radio off, vendor >4)."""
    payloads = _find_payloads(text, "+CFUN:")
    if not payloads:
        raise _fail("no +CFUN line", text)
    return _int(_split_fields(payloads[0])[0][0], text, "<fun>")


LOW_POWER_FUN: dict[str, frozenset[int]] = {
    "generic": frozenset({4}),
    "ublox": frozenset({0, 4, 19}),
}
"""Which <fun> values mean "on but radio off" per dialect (u-blox documents 0 and 19 too)."""


def cfun_power_state(fun: int, dialect: str = "generic") -> str:
    """``off``, ``low`` or ``on`` for a <fun>, as the dialect defines it."""
    if fun in LOW_POWER_FUN.get(dialect, LOW_POWER_FUN["generic"]):
        return "low"
    if fun == 0:
        return "off"
    return "on"


def cfun_allowed_modes(fun: int, supported: tuple[str, ...] = ("2g", "3g")) -> list[str]:
    """Radio modes a <fun> allows on modems that use 5/6 for 2G-only/3G-only (Ericsson MBM,
    Linktop): 0/4 none, 1 all ``supported``, 5 2G, 6 3G."""
    table = {0: [], 4: [], 1: list(supported), 5: ["2g"], 6: ["3g"]}
    return table.get(fun, list(supported))


def parse_ceer(text: str) -> Ceer:
    """+CEER: <report>; an empty body or a bare prefix means "no reason"."""
    lines = _lines(text)
    if not lines:
        return Ceer("")
    payload = _payload(lines[0], "+CEER:")
    if payload is None:
        raise _fail("no +CEER line", text)
    return Ceer(payload.strip().strip('"'))


_CCLK = re.compile(r'"?(\d{2,4})/(\d{1,2})/(\d{1,2}),(\d{1,2}):(\d{1,2}):(\d{1,2})(?:([+-])(\d{1,2}))?"?')

MAX_TZ_QUARTERS = 56
"""Time zones run from -12:00 to +14:00 (Kiribati): -48..+56 quarter hours."""


def parse_cclk(text: str) -> datetime:
    """+CCLK: "yy/MM/dd,hh:mm:ss±zz" to an aware datetime; zz is quarter hours. No zone
    given means UTC (what the modem's network time is unless it says otherwise)."""
    payloads = _find_payloads(text, "+CCLK:")
    if not payloads:
        raise _fail("no +CCLK line", text)
    match = _CCLK.fullmatch(payloads[0].strip())
    if not match:
        raise _fail("+CCLK is not yy/MM/dd,hh:mm:ss±zz", text)
    year, month, day, hour, minute, second, sign, quarters = match.groups()
    offset = 0
    if sign:
        offset = int(quarters) * (-1 if sign == "-" else 1)
        if not -48 <= offset <= MAX_TZ_QUARTERS:
            raise _fail("+CCLK time zone out of range", text)
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    try:
        tz = timezone(timedelta(minutes=15 * offset))
        return datetime(full_year, int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise _fail(f"+CCLK date invalid ({exc})", text) from None


# --------------------------------------------------------------------------------------------
# +CGEV packet-domain events
# --------------------------------------------------------------------------------------------


def _cgev_pdp(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<PDP_type>, <PDP_addr>[, <cid>]`` (REJECT, NW REACT, NW/ME DEACT)."""
    if len(args) < 2 or not args[0]:
        raise _fail("+CGEV event needs PDP type and address", raw)
    pdp_type, address = args[0].strip('"').upper(), args[1].strip('"').strip()
    cid = _opt_int(args[2]) if len(args) > 2 else None
    return CgevEvent(event, pdp_type=pdp_type, address=address or None, cid=cid)


def _cgev_secondary(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<p_cid>, <cid>, <event_type>`` (NW/ME ACT and DEACT of secondary contexts)."""
    if len(args) < 3:
        raise _fail("+CGEV secondary event needs p_cid, cid, event_type", raw)
    p_cid, cid, ev_type = (_int(a, raw, "+CGEV field") for a in args[:3])
    return CgevEvent(event, parent_cid=p_cid, cid=cid, event_type=ev_type)


def _cgev_pdn(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<cid>[,<reason>[,<cid_other>]]`` (NW/ME PDN ACT/DEACT)."""
    if not args:
        raise _fail("+CGEV PDN event needs a cid", raw)
    reason = _opt_int(args[1]) if len(args) > 1 and event == "me_pdn_act" else None
    return CgevEvent(event, cid=_int(args[0], raw, "<cid>"), reason=reason)


def _cgev_modify(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<cid>, <change_reason>, <event_type>`` (NW/ME MODIFY)."""
    if len(args) < 3:
        raise _fail("+CGEV MODIFY needs cid, reason, event_type", raw)
    cid, reason, ev_type = (_int(a, raw, "+CGEV field") for a in args[:3])
    return CgevEvent(event, cid=cid, reason=reason, event_type=ev_type)


_CGEV_KEYWORDS: tuple[tuple[str, str, str], ...] = (
    ("NW PDN ACT", "nw_pdn_act", "pdn"),
    ("ME PDN ACT", "me_pdn_act", "pdn"),
    ("NW PDN DEACT", "nw_pdn_deact", "pdn"),
    ("ME PDN DEACT", "me_pdn_deact", "pdn"),
    ("NW MODIFY", "nw_modify", "modify"),
    ("ME MODIFY", "me_modify", "modify"),
    ("NW REACT", "nw_react", "pdp"),
    ("REJECT", "reject", "pdp"),
    ("NW DEACT", "nw_deact", "deact"),
    ("ME DEACT", "me_deact", "deact"),
    ("NW ACT", "nw_act_secondary", "secondary"),
    ("ME ACT", "me_act_secondary", "secondary"),
    ("NW DETACH", "nw_detach", "bare"),
    ("ME DETACH", "me_detach", "bare"),
    ("NW CLASS", "nw_class", "class"),
    ("ME CLASS", "me_class", "class"),
)
"""27.007 §10.1.19 event keywords, longest first where one is a prefix of another."""


def parse_cgev(text: str) -> CgevEvent:
    """A +CGEV URC (or its payload without the prefix) to a typed event."""
    lines = _lines(text)
    if len(lines) != 1:
        raise _fail("+CGEV must be one line", text)
    payload = _payload(lines[0], "+CGEV:")
    body = (payload if payload is not None else lines[0]).strip()
    upper = body.upper()
    for keyword, event, shape in _CGEV_KEYWORDS:
        if upper == keyword or upper.startswith(keyword + " "):
            args_text = body[len(keyword) :].strip()
            args = [a.strip() for a in args_text.split(",")] if args_text else []
            return _CGEV_SHAPES[shape](event, args, text)
    raise _fail("unknown +CGEV event", text)


def _cgev_deact(event: str, args: list[str], raw: str) -> CgevEvent:
    """NW/ME DEACT is a secondary-context event when it starts with a number, else a PDP one."""
    if args and args[0].isdigit():
        return _cgev_secondary(event + "_secondary", args, raw)
    return _cgev_pdp(event + "_pdp", args, raw)


def _cgev_bare(event: str, args: list[str], raw: str) -> CgevEvent:
    return CgevEvent(event)


def _cgev_class(event: str, args: list[str], raw: str) -> CgevEvent:
    return CgevEvent(event, mobile_class=args[0] if args else None)


_CGEV_SHAPES: dict[str, Callable[[str, list[str], str], CgevEvent]] = {
    "pdp": _cgev_pdp,
    "secondary": _cgev_secondary,
    "pdn": _cgev_pdn,
    "modify": _cgev_modify,
    "deact": _cgev_deact,
    "bare": _cgev_bare,
    "class": _cgev_class,
}


# --------------------------------------------------------------------------------------------
# Errors and final result codes
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
        number = _opt_int(value)
        return AtErrorCode("MODEM", number, f"modem error {value}".strip()) if number is not None else None
    if not value:
        return AtErrorCode(kind, None, "unknown")
    number = _opt_int(value)
    if kind == "CME":
        code = number if number is not None else errcodes.cme_code_for_text(value)
        name = errcodes.cme_name(code) if number is not None else value
    else:
        code = number if number is not None else errcodes.cms_code_for_text(value)
        name = errcodes.cms_name(code) if number is not None else value
    return AtErrorCode(kind, code, name)


def final_line(line: str) -> FinalResult | None:
    """Is this line (CR/LF already removed, other blanks kept) a final result code?

    Follows ModemManager: ``+CME ERROR:`` needs a blank or a value after the colon (a bare
    ``+CME ERROR:`` is not final), and ``MODEM ERROR:`` needs a number.
    """
    stripped = line.strip()
    if stripped in FINAL_OK:
        return FinalResult(stripped, is_error=False)
    if stripped in FINAL_ERROR:
        return FinalResult(stripped, is_error=True, error=AtErrorCode("MODEM", None, stripped.lower()))
    for prefix in FINAL_ERROR_PREFIXES:
        if line.lstrip().upper().startswith(prefix) and len(line.lstrip()) > len(prefix):
            error = parse_error(line)
            if error is not None:
                return FinalResult(stripped, is_error=True, error=error)
    return None


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


# --------------------------------------------------------------------------------------------
# URCs and the family table
# --------------------------------------------------------------------------------------------

URC_PREFIXES: dict[str, str] = {
    "+CGEV:": "+CGEV",
    "+CPIN:": "+CPIN",
    "+CFUN:": "+CFUN",
    "+CRING:": "+CRING",
    "+CLIP:": "+CLIP",
    "+CMTI:": "+CMTI",
    "+CMT:": "+CMT",
    "+CDS:": "+CDS",
    "+CIEV:": "+CIEV",
    "+CUSD:": "+CUSD",
    "+CTZV:": "+CTZV",
    "+CTZE:": "+CTZE",
    "+QIND:": "+QIND",
    "+QUSIM:": "+QUSIM",
    "+VSIMSTAT:": "+VSIMSTAT",
    "^MODE:": "^MODE",
    "^RSSI:": "^RSSI",
    "^HCSQ:": "^HCSQ",
    "^SIMST:": "^SIMST",
    "^SRVST:": "^SRVST",
    "^SYSSTART": "^SYSSTART",
    "^BOOT:": "^BOOT",
    "*PSUTTZ:": "*PSUTTZ",
}
"""Line prefixes that are always unsolicited, or unsolicited at start-up (+CPIN: READY,
+CFUN: 1). ``+VSIMSTAT:`` is the virtual board's vSIM slot status URC."""

URC_LINES: dict[str, str] = {"RING": "RING", "RDY": "RDY", "SMS READY": "SMS READY", "PB DONE": "PB DONE"}
"""Whole-line URCs (RDY: Quectel boot finished)."""


def is_urc(line: str) -> str | None:
    """The family of an unsolicited result code, or None.

    Registration lines count only with URC arity (no ``<n>``): ``+CREG: 1,3`` is the answer to
    ``AT+CREG?``. ``+CPIN:``/``+CFUN:`` are reported as URCs because modems send them on
    their own at start-up; the framer must first match a line against the prefix of the
    command in flight and only then ask this function.
    """
    stripped = line.strip() if isinstance(line, str) else ""
    if not stripped:
        return None
    upper = stripped.upper()
    if upper in URC_LINES:
        return URC_LINES[upper]
    for fam in REGISTRATION_FAMILIES:
        payload = _payload(stripped, fam + ":")
        if payload is not None:
            return fam if not _has_mode_field(_split_fields(payload)) else None
    for prefix, family in URC_PREFIXES.items():
        if upper.startswith(prefix):
            return family
    return None


def _parse_cgdcont_any(text: str) -> list[PdpContext] | list[PdpFormat]:
    """+CGDCONT: a ``(`` after the prefix is the =? form."""
    payloads = _find_payloads(text, "+CGDCONT:")
    if payloads and payloads[0].startswith("("):
        return parse_cgdcont_test(text)
    return parse_cgdcont_query(text)


def parse_cops(text: str, *, charset: str = "GSM") -> Operator | list[Network]:
    """+COPS? or +COPS=? answer, told apart by the ``(`` that opens a scan list."""
    payloads = _find_payloads(text, "+COPS:")
    if payloads and payloads[0].startswith("("):
        return parse_cops_test(text, charset=charset)
    return parse_cops_query(text, charset=charset)


FAMILIES: dict[str, Callable[[str], Any]] = {
    "+CREG": lambda text: parse_registration(text, family="+CREG"),
    "+CGREG": lambda text: parse_registration(text, family="+CGREG"),
    "+CEREG": lambda text: parse_registration(text, family="+CEREG"),
    "+C5GREG": lambda text: parse_registration(text, family="+C5GREG"),
    "+CSQ": parse_csq,
    "+CESQ": parse_cesq,
    "+COPS": parse_cops,
    "+CPIN": parse_cpin,
    "+CIMI": parse_cimi,
    "+CCID": parse_iccid,
    "+ICCID": parse_iccid,
    "^ICCID": parse_iccid,
    "+QCCID": parse_iccid,
    "+CGSN": parse_imei,
    "+GSN": parse_imei,
    "+CGDCONT": _parse_cgdcont_any,
    "+CGACT": parse_cgact_query,
    "+CGPADDR": parse_cgpaddr,
    "+CGCONTRDP": parse_cgcontrdp,
    "+CFUN": parse_cfun,
    "+CGEV": parse_cgev,
    "+CEER": parse_ceer,
    "+CCLK": parse_cclk,
}
"""Response prefix (without the colon) to its parser; each takes the response body."""


def family_of(line: str) -> str | None:
    """The FAMILIES key a line's prefix names, or None."""
    head = line.strip().split(":", 1)[0].upper()
    return head if ":" in line and head in FAMILIES else None

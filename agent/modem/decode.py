"""``pocket-agent decode``: modem output on stdin to one JSON object per response, URC or error.

Why: a field engineer has a serial log (picocom, a support ticket, a ``-vv`` daemon log) and
wants to know what the modem said, in numbers, without reading 27.007. This tool runs the
same parsers the daemon runs, so what it prints is what the agent believed.

Input framing is tolerant: CR, LF or CR LF line ends, blank lines, command echo. Each line
becomes part of exactly one output object; ``OK`` lines are the only ones skipped. Lines we
cannot decode are printed as ``{"kind": "unknown", "raw": ...}`` (with the parser's reason
when a known family failed to parse), never dropped.

Consecutive lines of one family (``+CGDCONT:`` per context, a ``+COPS=?`` list broken over
lines) form one response. An echoed ``AT...`` command line tells the tool which family a bare
answer (``+CIMI``'s IMSI, ``+CGSN``'s IMEI, ``+CCID``) belongs to, and that a ``+CPIN:`` line
is the answer to ``AT+CPIN?`` rather than a spontaneous URC.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from agent.errors import ParseError
from agent.modem import parse as p

LOGGER = logging.getLogger(__name__)

MAX_LINE_CHARS = 8 * 1024
"""A line longer than any real AT response (a full +COPS=? scan is ~2 KB) is cut here, so a
log with binary garbage cannot make one JSON object of megabytes."""

BARE_ANSWER_COMMANDS: dict[str, str] = {
    "+CIMI": "+CIMI",
    "+CGSN": "+CGSN",
    "+GSN": "+CGSN",
    "+CCID": "+CCID",
    "+ICCID": "+CCID",
    "^ICCID": "+CCID",
    "+QCCID": "+CCID",
    "+CEER": "+CEER",
}
"""Commands whose answer may come without a prefix, to the family that parses it."""

_ECHO = re.compile(r"^AT(?:([+^*#$%!][A-Z0-9]+)(?:[=?].*)?|(?:[A-Z&]\d{0,3})*)$", re.IGNORECASE)
"""A command echo: ``AT``, basic commands (``ATE0``, ``AT&C1``) or one extended command
(``AT+CPIN?``, ``AT^SYSCFG=...``); group 1 is the extended command's name."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--charset",
        default="GSM",
        help='the modem\'s +CSCS setting, for operator names ("GSM" default, "UCS2", "IRA")',
    )


def main(args: argparse.Namespace) -> int:
    for obj in decode_stream(_lines(sys.stdin.buffer), charset=args.charset):
        _emit(obj, sys.stdout)
    return 0


def _emit(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _lines(stream: Iterable[bytes]) -> Iterator[str]:
    """Text lines from raw bytes, splitting on CR as well as LF (CR-only modems exist)."""
    for chunk in stream:
        text = chunk.decode("utf-8", errors="replace")
        for line in re.split(r"[\r\n]+", text):
            if line.strip():
                yield line.strip()[:MAX_LINE_CHARS]


@dataclass
class _Decoder:
    """Groups lines into responses and turns each group into a JSON-ready dict."""

    charset: str = "GSM"
    command: str | None = None
    family: str | None = None
    pending: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Iterator[dict[str, Any]]:
        if _ECHO.match(line) and not line.upper().startswith("AT&T"):
            yield from self.flush()
            self.command = _command_family(line)
            yield {"kind": "echo", "command": line}
            return
        final = p.final_line(line)
        if final is not None:
            yield from self.flush()
            self.command = None
            if final.is_error and final.error is not None:
                yield _error_object(line, final.error)
            elif final.line != "OK":
                yield {"family": final.line, "kind": "response", "raw": line.strip()}  # CONNECT
            return
        if line.startswith("(") and self.family == "+COPS":
            self.pending.append(line)  # a +COPS=? list continued on the next line
            return
        yield from self._feed_content(line)

    def _feed_content(self, line: str) -> Iterator[dict[str, Any]]:
        family = p.family_of(line)
        urc_family = p.is_urc(line)
        solicited = family is not None and family == self.command
        if urc_family is not None and not solicited:
            yield from self.flush()
            yield self._urc(line, urc_family)
            return
        if family is None and self.command in BARE_ANSWER_COMMANDS:
            family = BARE_ANSWER_COMMANDS[self.command]
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
        if family in p.FAMILIES:
            return self._decode(family, line, "urc")
        return {"family": family, "kind": "urc", "raw": line}

    def _decode(self, family: str, text: str, kind: str) -> dict[str, Any]:
        try:
            fields = describe(family, text, charset=self.charset)
        except ParseError as exc:
            LOGGER.debug("cannot decode %s: %s", family, exc)
            return {"family": family, "kind": "unknown", "raw": text, "error": str(exc)}
        if kind == "response" and fields.pop("urc", False):
            kind = "urc"
        fields.pop("urc", None)
        return {"family": fields.pop("family", family), "kind": kind, **fields}


def decode_stream(lines: Iterable[str], *, charset: str = "GSM") -> Iterator[dict[str, Any]]:
    """Decode modem output lines to JSON-ready dicts, in input order."""
    decoder = _Decoder(charset=charset)
    for line in lines:
        yield from decoder.feed(line)
    yield from decoder.flush()


def _command_family(echo: str) -> str | None:
    """``AT+CPIN?`` -> ``+CPIN``; ``AT+CGSN`` -> ``+CGSN``; plain ``AT`` -> None."""
    match = _ECHO.match(echo.strip())
    return match.group(1).upper() if match and match.group(1) else None


def _error_object(line: str, error: p.AtErrorCode) -> dict[str, Any]:
    family = {"CME": "+CME ERROR", "CMS": "+CMS ERROR"}.get(error.kind)
    if family is None:
        family = "MODEM ERROR" if line.strip().upper().startswith("MODEM ERROR") else line.strip().upper()
    return {"family": family, "kind": "error", "code": error.code, "name": error.name, "raw": line.strip()}


# ---- per-family field naming (the corpus README's names) --------------------------------------


def describe(family: str, text: str, *, charset: str = "GSM") -> dict[str, Any]:
    """Parse ``text`` as ``family`` and name the fields as the corpus README does."""
    if family in p.REGISTRATION_FAMILIES:
        return _registration(p.parse_registration(text, family=family))
    if family == "+COPS":
        return _cops(text, charset)
    simple = _SIMPLE.get(family)
    if simple is None:
        result = p.FAMILIES[family](text)
        return {"value": repr(result)}
    return simple(text)


def _registration(reg: p.Registration) -> dict[str, Any]:
    loc = {"tac": reg.tac} if reg.family in ("+CEREG", "+C5GREG") else {"lac": reg.lac}
    out: dict[str, Any] = {"family": reg.family, "urc": reg.urc, "n": reg.n, "stat": reg.stat, **loc}
    out.update(ci=reg.ci, act=reg.act, registered=reg.registered, roaming=reg.roaming)
    if reg.cause_type is not None or reg.reject_cause is not None:
        out.update(cause_type=reg.cause_type, reject_cause=reg.reject_cause)
    return out


def _signal(sig: p.Signal) -> dict[str, Any]:
    converted = {
        "rssi_dbm": sig.rssi_dbm,
        "rscp_dbm": sig.rscp_dbm,
        "ecno_db": sig.ecno_db,
        "rsrq_db": sig.rsrq_db,
        "rsrp_dbm": sig.rsrp_dbm,
    }
    return {**sig.raw, "converted": {k: v for k, v in converted.items() if v is not None}}


def _cops(text: str, charset: str) -> dict[str, Any]:
    result = p.parse_cops(text, charset=charset)
    if isinstance(result, p.Operator):
        return {"mode": result.mode, "format": result.format, "operator": result.oper, "act": result.act}
    return {
        "networks": [
            {"stat": n.stat, "operator_long": n.long_name, "operator_short": n.short_name,
             "operator_id": n.numeric, "act": n.act}
            for n in result
        ]
    }


def _cgdcont(text: str) -> dict[str, Any]:
    result = p.FAMILIES["+CGDCONT"](text)
    if result and isinstance(result[0], p.PdpFormat):
        return {"formats": [{"pdp_type": f.pdp_type, "min_cid": f.min_cid, "max_cid": f.max_cid} for f in result]}
    return {"contexts": [{"cid": c.cid, "pdp_type": c.pdp_type, "apn": c.apn} for c in result]}


def _contrdp(text: str) -> dict[str, Any]:
    return {
        "contexts": [
            {"cid": c.cid, "bearer_id": c.bearer_id, "apn": c.apn, "address": c.address, "prefix": c.prefix,
             "gateway": c.gateway, "dns": list(c.dns), "mtu": c.mtu}
            for c in p.parse_cgcontrdp(text)
        ]
    }


def _cgev(text: str) -> dict[str, Any]:
    event = p.parse_cgev(text)
    return {k: v for k, v in vars(event).items() if v is not None}


def _cclk(text: str) -> dict[str, Any]:
    moment = p.parse_cclk(text)
    offset = moment.utcoffset()
    return {"iso8601": moment.isoformat(), "tz_offset_minutes": int(offset.total_seconds() // 60) if offset else 0}


def _cfun(text: str) -> dict[str, Any]:
    fun = p.parse_cfun(text)
    return {"fun": fun, "power_state": p.cfun_power_state(fun)}


def _gsn(text: str) -> dict[str, Any]:
    ids = p.parse_gsn(text)
    return {"imei": ids.imei, "esn": ids.esn, "meid": ids.meid}


_SIMPLE: dict[str, Any] = {
    "+CSQ": lambda t: _signal(p.parse_csq(t)),
    "+CESQ": lambda t: _signal(p.parse_cesq(t)),
    "+CPIN": lambda t: {"lock": p.parse_cpin(t)},
    "+CIMI": lambda t: {"imsi": p.parse_cimi(t)},
    "+CCID": lambda t: {"iccid": p.parse_iccid(t)},
    "+ICCID": lambda t: {"iccid": p.parse_iccid(t)},
    "^ICCID": lambda t: {"iccid": p.parse_iccid(t)},
    "+QCCID": lambda t: {"iccid": p.parse_iccid(t)},
    "+CGSN": _gsn,
    "+GSN": _gsn,
    "+CGDCONT": _cgdcont,
    "+CGACT": lambda t: {"contexts": [{"cid": s.cid, "active": s.active} for s in p.parse_cgact_query(t)]},
    "+CGPADDR": lambda t: {
        "contexts": [{"cid": a.cid, "addresses": list(a.addresses)} for a in p.parse_cgpaddr(t)]
    },
    "+CGCONTRDP": _contrdp,
    "+CFUN": _cfun,
    "+CGEV": _cgev,
    "+CEER": lambda t: {"reason": p.parse_ceer(t).reason},
    "+CCLK": _cclk,
}
"""Family to a function from response text to the named fields."""

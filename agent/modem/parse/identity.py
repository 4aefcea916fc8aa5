"""SIM and device identity: +CPIN, +CIMI, the ICCID commands, +CGSN/+GSN (27.007 §5, §8.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.modem.lex import HEX_DIGITS, body_lines, fail, find_payloads, payload_after


@dataclass(frozen=True)
class DeviceIds:
    """+CGSN/+GSN: an IMEI (3GPP) or an ESN/MEID (3GPP2 modems)."""

    imei: str | None
    esn: str | None
    meid: str | None


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
    lines = body_lines(text)
    payloads = find_payloads(text, "+CPIN:")
    value = payloads[0] if payloads else (lines[0] if len(lines) == 1 else "")
    code = " ".join(value.strip().strip('"').upper().split())
    if code not in PIN_STATES:
        raise fail("unknown +CPIN code", text)
    return code


def parse_cimi(text: str) -> str:
    """+CIMI: the IMSI, 5..15 decimal digits (some modems prefix ``+CIMI:``)."""
    lines = body_lines(text)
    if len(lines) != 1:
        raise fail("+CIMI answer must be one line", text)
    value = lines[0]
    value = payload_after(value, "+CIMI:") or value
    value = value.strip().strip('"')
    if not (value.isascii() and value.isdigit() and 5 <= len(value) <= 15):
        raise fail("IMSI must be 5..15 digits", text)
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
    lines = body_lines(text)
    if len(lines) != 1:
        raise fail("ICCID answer must be one line", text)
    value = lines[0]
    for prefix in ICCID_PREFIXES:
        payload = payload_after(value, prefix)
        if payload is not None:
            value = payload.split(",")[-1]
            break
    value = value.strip().strip('"').strip().upper()
    if len(value) not in (19, 20) or not HEX_DIGITS.fullmatch(value):
        raise fail("ICCID must be 19 or 20 hex digits", text)
    if value.startswith("98"):
        if len(value) % 2:
            raise fail("swapped ICCID has odd length", text)
        value = _swap_nibbles(value)
    value = value.rstrip("F") if value.endswith("F") else value
    if not value.startswith("89") or len(value) < 19:
        raise fail("ICCID must start with 89", text)
    return value


_ESN_MEID = re.compile(r"0x([0-9A-Fa-f]+)\s*:\s*0x([0-9A-Fa-f]+)")


def parse_gsn(text: str) -> DeviceIds:
    """+CGSN/+GSN: a 15-digit IMEI (optionally ``,serial``), a hex ESN (8 digits, ``0x``
    optional, leading zeros restored) or a ``MEID:ESN`` pair as Sierra CDMA modems print."""
    lines = body_lines(text)
    if not lines:
        raise fail("empty +CGSN answer", text)
    for line in lines:
        match = _ESN_MEID.search(line)
        if match:
            return DeviceIds(imei=None, esn=match.group(2).upper().zfill(8)[-8:], meid=match.group(1).upper()[-14:])
    value = lines[0]
    for prefix in ("+CGSN:", "+GSN:"):
        value = payload_after(value, prefix) or value
    value = value.strip().strip('"').split(",")[0].strip()
    if value.lower().startswith("0x"):
        digits = value[2:]
        if not HEX_DIGITS.fullmatch(digits) or len(digits) > 8:
            raise fail("ESN must be up to 8 hex digits", text)
        return DeviceIds(imei=None, esn=digits.upper().zfill(8), meid=None)
    if value.isascii() and value.isdigit() and len(value) == 15:
        return DeviceIds(imei=value, esn=None, meid=None)
    if HEX_DIGITS.fullmatch(value) and len(value) == 8:
        return DeviceIds(imei=None, esn=value.upper(), meid=None)
    if HEX_DIGITS.fullmatch(value) and len(value) == 14:
        return DeviceIds(imei=None, esn=None, meid=value.upper())
    raise fail("not an IMEI, ESN or MEID", text)


def parse_imei(text: str) -> str:
    """The IMEI from +CGSN/+GSN; a CDMA-only answer (ESN/MEID) is a ParseError here."""
    ids = parse_gsn(text)
    if ids.imei is None:
        raise fail("no IMEI (ESN/MEID only)", text)
    return ids.imei


def parse_text(text: str) -> str:
    """A free-text answer (+CGMI manufacturer, +CGMM model, +CGMR revision): its lines
    joined by one blank, an optional ``+CGMI:``-style prefix removed."""
    lines = body_lines(text)
    if not lines:
        raise fail("empty answer", text)
    first = lines[0]
    head, colon, rest = first.partition(":")
    if colon and head.startswith("+") and head[1:].isalnum():
        lines[0] = rest.strip()
    return " ".join(line.strip('"') for line in lines if line).strip()

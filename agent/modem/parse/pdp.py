"""Packet data contexts: +CGDCONT, +CGACT, +CGPADDR, +CGCONTRDP (27.007 §10.1).

Which cid to use for an APN is a decision, not a reading: it lives in the driver (``select_cid``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from agent.modem.lex import body_lines, fail, find_payloads, opt_int, split_fields, to_int


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


IP_PDP_TYPES: frozenset[str] = frozenset({"IP", "IPV6", "IPV4V6", "NON-IP"})
"""PDP types that carry our data; PPP and X.25 entries of +CGDCONT=? are ignored."""


def parse_cgdcont_query(text: str) -> list[PdpContext]:
    """+CGDCONT: <cid>,<PDP_type>,<APN>,... one line per defined context; empty APN -> None."""
    contexts = []
    for payload in find_payloads(text, "+CGDCONT:"):
        fields = split_fields(payload)
        if len(fields) < 2:
            raise fail("+CGDCONT line needs cid and type", text)
        apn = fields[2][0] if len(fields) > 2 and fields[2][0] else None
        contexts.append(PdpContext(to_int(fields[0][0], text, "<cid>"), fields[1][0].upper(), apn))
    if not contexts and body_lines(text):
        raise fail("no +CGDCONT line", text)
    return contexts


_RANGE = re.compile(r"\(\s*(\d+)\s*(?:-\s*(\d+))?\s*[,)]")


def parse_cgdcont_test(text: str) -> list[PdpFormat]:
    """+CGDCONT: (<cid range>),<PDP_type>,... per type. Only the first cid range is used
    (Cinterion prints ``(1-17,101-116)``); lines with no range or a non-IP type are skipped."""
    formats = []
    payloads = find_payloads(text, "+CGDCONT:")
    if not payloads:
        raise fail("no +CGDCONT line", text)
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


def parse_cgact_query(text: str) -> list[ContextState]:
    """+CGACT: <cid>,<state> per context; an empty body (just OK) is no contexts."""
    states = []
    for payload in find_payloads(text, "+CGACT:"):
        fields = split_fields(payload)
        if len(fields) < 2:
            raise fail("+CGACT line needs cid and state", text)
        state = to_int(fields[1][0], text, "<state>")
        if state > 1:
            raise fail("+CGACT <state> must be 0 or 1", text)
        states.append(ContextState(to_int(fields[0][0], text, "<cid>"), bool(state)))
    if not states and body_lines(text):
        raise fail("no +CGACT line", text)
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
    fields = [f for f, _ in split_fields(payload)]
    if len(fields) < 2:
        raise fail("+CGCONTRDP needs cid and bearer id", raw)
    cid = to_int(fields[0], raw, "<cid>")
    bearer = opt_int(fields[1])
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
    mtu = opt_int(rest[mtu_index]) if len(rest) > mtu_index else None
    return ContextParams(cid, bearer, apn, address, prefix, gateway, dns, mtu or None)


def parse_cgcontrdp(text: str) -> list[ContextParams]:
    """+CGCONTRDP: one line per active context (two for a dual-stack IPV4V6 context)."""
    payloads = find_payloads(text, "+CGCONTRDP:")
    if not payloads and body_lines(text):
        raise fail("no +CGCONTRDP line", text)
    return [_contrdp_line(p, text) for p in payloads]


def parse_cgpaddr(text: str) -> list[ContextAddress]:
    """+CGPADDR: <cid>[,<PDP_addr_1>[,<PDP_addr_2>]] per context; empty addresses dropped."""
    result = []
    for payload in find_payloads(text, "+CGPADDR:"):
        fields = [f for f, _ in split_fields(payload)]
        cid = to_int(fields[0], text, "<cid>")
        addresses = []
        for value in fields[1:]:
            if not value.strip():
                continue
            addr = normalise_address(value)
            if addr is None:
                raise fail("+CGPADDR address is not an IP address", text)
            addresses.append(addr)
        result.append(ContextAddress(cid, tuple(addresses)))
    if not result and body_lines(text):
        raise fail("no +CGPADDR line", text)
    return result


def parse_cgdcont(text: str) -> list[PdpContext] | list[PdpFormat]:
    """+CGDCONT: a ``(`` after the prefix is the =? form."""
    payloads = find_payloads(text, "+CGDCONT:")
    if payloads and payloads[0].startswith("("):
        return parse_cgdcont_test(text)
    return parse_cgdcont_query(text)

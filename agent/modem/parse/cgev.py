"""+CGEV: packet-domain events, a URC (27.007 §10.1.19).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.modem.lex import body_lines, fail, opt_int, payload_after, to_int


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


def _cgev_pdp(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<PDP_type>, <PDP_addr>[, <cid>]`` (REJECT, NW REACT, NW/ME DEACT)."""
    if len(args) < 2 or not args[0]:
        raise fail("+CGEV event needs PDP type and address", raw)
    pdp_type, address = args[0].strip('"').upper(), args[1].strip('"').strip()
    cid = opt_int(args[2]) if len(args) > 2 else None
    return CgevEvent(event, pdp_type=pdp_type, address=address or None, cid=cid)


def _cgev_secondary(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<p_cid>, <cid>, <event_type>`` (NW/ME ACT and DEACT of secondary contexts)."""
    if len(args) < 3:
        raise fail("+CGEV secondary event needs p_cid, cid, event_type", raw)
    p_cid, cid, ev_type = (to_int(a, raw, "+CGEV field") for a in args[:3])
    return CgevEvent(event, parent_cid=p_cid, cid=cid, event_type=ev_type)


def _cgev_pdn(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<cid>[,<reason>[,<cid_other>]]`` (NW/ME PDN ACT/DEACT)."""
    if not args:
        raise fail("+CGEV PDN event needs a cid", raw)
    reason = opt_int(args[1]) if len(args) > 1 and event == "me_pdn_act" else None
    return CgevEvent(event, cid=to_int(args[0], raw, "<cid>"), reason=reason)


def _cgev_modify(event: str, args: list[str], raw: str) -> CgevEvent:
    """``<cid>, <change_reason>, <event_type>`` (NW/ME MODIFY)."""
    if len(args) < 3:
        raise fail("+CGEV MODIFY needs cid, reason, event_type", raw)
    cid, reason, ev_type = (to_int(a, raw, "+CGEV field") for a in args[:3])
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
    lines = body_lines(text)
    if len(lines) != 1:
        raise fail("+CGEV must be one line", text)
    payload = payload_after(lines[0], "+CGEV:")
    body = (payload if payload is not None else lines[0]).strip()
    upper = body.upper()
    for keyword, event, shape in _CGEV_KEYWORDS:
        if upper == keyword or upper.startswith(keyword + " "):
            args_text = body[len(keyword) :].strip()
            args = [a.strip() for a in args_text.split(",")] if args_text else []
            return _CGEV_SHAPES[shape](event, args, text)
    raise fail("unknown +CGEV event", text)


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

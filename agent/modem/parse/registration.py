"""Registration reports: +CREG / +CGREG / +CEREG / +C5GREG (27.007 §7.2, §10.1.20, §10.1.22, §10.1.54).

Answer and URC share one syntax; which is which is the classifier's rule (``codes.has_mode_field``),
used here to know whether the first field is ``<n>``. See docs/at-parsers.md for the heuristics.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.modem.codes import MAX_STAT, REGISTRATION_FAMILIES, has_mode_field
from agent.modem.lex import (
    act_name,
    body_lines,
    fail,
    hex_field,
    is_short_decimal,
    opt_int,
    payload_after,
    split_fields,
    to_int,
)


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
    for line in body_lines(text):
        for fam in families:
            payload = payload_after(line, fam + ":")
            if payload is not None:
                return fam, payload
    if family is not None and len(body_lines(text)) == 1 and not body_lines(text)[0].startswith("+"):
        return family, body_lines(text)[0]
    raise fail("no registration line", text)


def _drop_vendor_extra(rest: list[tuple[str, bool]], raw: str) -> list[tuple[str, bool]]:
    """Novatel/others put an extra field between TAC and CI (``1F00, 20 ,79D903 ,7``).
    Detected when the field in the AcT slot is not a small number but the next one is."""
    if len(rest) >= 5:
        act_slot, act_quoted = rest[3]
        after, after_quoted = rest[4]
        looks_like_ci = bool(act_slot) and not is_short_decimal(act_slot, act_quoted, 99)
        if looks_like_ci and is_short_decimal(after, after_quoted, 99):
            return rest[:2] + rest[3:]
    return rest


def parse_registration(text: str, *, family: str | None = None, solicited: bool | None = None) -> Registration:
    """Parse a registration report in any ``<n>`` mode, solicited or URC.

    ``family`` restricts the prefix (and allows a payload without it); ``solicited``, when the
    caller knows it, sets ``urc``; otherwise ``urc`` is inferred from the absence of ``<n>``.
    """
    fam, payload = _registration_line(text, family)
    fields = split_fields(payload)
    has_n = has_mode_field(fields)
    n = to_int(fields[0][0], text, "<n>") if has_n else None
    rest = _drop_vendor_extra(fields[1:] if has_n else fields, text)
    stat = to_int(rest[0][0], text, "<stat>")
    if stat > MAX_STAT:
        raise fail(f"<stat> {stat} out of range", text)
    loc = hex_field(rest[1][0], text, "<lac>/<tac>") if len(rest) > 1 else None
    ci = hex_field(rest[2][0], text, "<ci>") if len(rest) > 2 else None
    act = act_name(rest[3][0]) if len(rest) > 3 else None
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
        cause_type=opt_int(extras.get("cause_type", "")),
        reject_cause=opt_int(extras.get("reject_cause", "")),
        urc=(not solicited) if solicited is not None else not has_n,
    )

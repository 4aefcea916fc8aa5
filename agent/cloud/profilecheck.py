"""Every plaintext field of an opened sealed profile, checked against its format.

Why: the platform's signature says who issued a profile, not that its fields are sane. A
signed profile whose ICCID held one non-ASCII character passed the dialect (which looked
for quotes and line breaks only) and made the AT layer raise ``UnicodeEncodeError`` on the
``AT+VSIMLOAD`` line; the supervisor logged the dying task with ``%r``, and that repr holds
the whole line with Ki and OPc (issue 20, finding 2). So an opened profile is checked here,
field by field, before anything of it leaves ``sealing.profile_from_dict``: a field that
does not fit is a ``ProfileFieldError`` (a ``SealError``, reason ``profile_field``) that
names the field and the rule it breaks and never the value (some values are keys; the
rest would still let whoever writes profiles write into our logs and the console). The
assignment exchange reports it upstream as an ``error`` event, like every refused envelope.

The formats are the ones the rest of the contract already uses (``schema.py``'s event
patterns: a profile whose ICCID no health event could carry is no use to anyone).
"""

from __future__ import annotations

import re
from typing import Any

from agent.cloud.schema import ICCID_RE, IMSI_RE, PLMN_RE
from agent.errors import PlanError, SealError
from agent.plans.rules import parse_plan

KEY_HEX = re.compile(r"[0-9a-f]{32}")
"""Ki and OPc: 128 bits each (TS 33.102, TS 35.206), written as 32 lowercase hex digits:
the one spelling the sealer writes (docs/protocol.md 4), so there is no second one to accept."""

APN_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")
"""TS 23.003 9.1: an APN label is letters, digits and hyphens (DNS's rules), 1-63 octets."""
APN_NI_MAX = 63
"""TS 23.003 9.1.1: the APN Network Identifier is at most 63 octets once encoded (each
label gets a length octet, so the text is at most 62 characters)."""
APN_RESERVED_STARTS = ("rac", "lac", "sgsn", "rnc")
"""TS 23.003 9.1.1: a Network Identifier must not start with these (they name network
nodes in DNS), nor end in ``.gprs`` (that is the Operator Identifier's ending)."""

PROFILE_FIELDS = frozenset({"iccid", "imsi", "ki", "opc", "plmn", "apn", "plan"})
"""What ``sealing.profile_to_dict`` writes. A field outside these is refused, as every
other part of the contract refuses a misspelt key (``schema.py``); the plan's own fields
are agent/plans/rules.py's."""


class ProfileFieldError(SealError):
    """A field of an opened profile does not fit its format; ``field`` names it (``plan.tz``)."""

    def __init__(self, field: str, rule: str):
        super().__init__(f"sealed profile field {field!r} {rule}", reason="profile_field")
        self.field = field


def check_profile(body: Any) -> None:
    """Every field of an opened profile's plaintext, or ProfileFieldError for the first bad one."""
    if not isinstance(body, dict):
        raise ProfileFieldError("profile", "is not an object")
    _known(body, PROFILE_FIELDS, "")
    _text(body, "iccid", ICCID_RE, "is not 18-20 digits starting 89 (ITU-T E.118)")
    if not luhn_valid(body["iccid"]):
        raise ProfileFieldError("iccid", "fails its Luhn check digit (ITU-T E.118)")
    _text(body, "imsi", IMSI_RE, "is not 14-15 digits (TS 23.003 2.2)")
    _text(body, "plmn", PLMN_RE, "is not 5-6 digits (MCC and MNC)")
    for key in ("ki", "opc"):
        _text(body, key, KEY_HEX, "is not 32 hex digits")
    apn = body.get("apn", "")
    if not isinstance(apn, str):
        raise ProfileFieldError("apn", "is not a string")
    apn_problem(apn)
    plan = body.get("plan", {})
    if plan is not None:
        check_plan(plan)


def luhn_valid(digits: str) -> bool:
    """The Luhn check (ISO/IEC 7812, which ITU-T E.118 uses for ICCIDs) over ``digits``."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def apn_problem(apn: str) -> None:
    """ProfileFieldError unless ``apn`` is empty (the network's default APN) or a TS 23.003
    Network Identifier."""
    if apn == "":
        return
    if len(apn) + 1 > APN_NI_MAX:
        raise ProfileFieldError("apn", f"is longer than {APN_NI_MAX} octets encoded (TS 23.003 9.1.1)")
    if not all(APN_LABEL.fullmatch(label) for label in apn.split(".")):
        raise ProfileFieldError("apn", "is not dot-separated labels of letters, digits and hyphens (TS 23.003 9.1)")
    lower = apn.lower()
    if lower.startswith(APN_RESERVED_STARTS) or lower.endswith(".gprs"):
        raise ProfileFieldError("apn", "uses a reserved start or the .gprs ending (TS 23.003 9.1.1)")


def check_plan(plan: Any) -> None:
    """The plan's fields: typed, bounded, from the known vocabulary, its rules consistent
    (agent/plans/rules.py reads both the rules form and the old single-rule form)."""
    try:
        parse_plan(plan)
    except PlanError as exc:
        raise ProfileFieldError(exc.field, exc.rule) from None


def _known(body: dict[str, Any], fields: frozenset[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in body if k not in fields)
    if unknown:  # the name is ours to show only if it is one of ours: an unknown key may be anything
        raise ProfileFieldError(f"{prefix}<unknown>", f"is not a field of the contract ({len(unknown)} unknown)")


def _text(body: dict[str, Any], key: str, pattern: re.Pattern[str], rule: str, prefix: str = "") -> None:
    value = body.get(key)  # isascii: a pattern's \d also takes other scripts' digits ("٣")
    if not isinstance(value, str) or not value.isascii() or not pattern.fullmatch(value):
        raise ProfileFieldError(prefix + key, "is missing" if value is None else rule)

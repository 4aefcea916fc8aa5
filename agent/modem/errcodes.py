"""Numeric error codes of ``+CME ERROR`` (3GPP TS 27.007 §9.2) and ``+CMS ERROR`` (TS 27.005 §3.2.5).

Why a table and not just the number: a field log that says ``+CME ERROR: 133`` needs a
person with the spec open; ``requested service option not subscribed`` tells the support desk
at once that the SIM's plan, not the radio, is the problem. Modems in verbose mode
(``AT+CMEE=2``) print the text instead of the number, so the reverse lookup exists too; it
normalises text the way ModemManager does (lower case, only letters and digits) so
"Operation not allowed" and "operation not allowed." both map to 3.
"""

from __future__ import annotations

import re

CME_UNKNOWN = 100
"""27.007: 100 = "unknown"; the code a verbose error text we do not know maps to."""

CMS_UNKNOWN = 500
"""27.005: 500 = "unknown error"; the code an unknown verbose SMS error text maps to."""

CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    48: "hidden key required",
    49: "EAP method not supported",
    50: "incorrect parameters",
    51: "command implemented but currently disabled",
    52: "command aborted by user",
    53: "not attached to network due to MT functionality restrictions",
    54: "modem not allowed - MT restricted to emergency calls only",
    55: "operation not allowed because of MT functionality restrictions",
    56: "fixed dial number only allowed",
    57: "temporarily out of service due to other MT usage",
    58: "language/alphabet not supported",
    59: "unexpected data value",
    60: "system failure",
    61: "data missing",
    62: "call barred",
    63: "message waiting indication subscription failure",
    100: "unknown",
    # Attach failures (27.007 §9.2.2.1; the 24.008/24.301 cause in brackets).
    103: "illegal MS",  # #3
    106: "illegal ME",  # #6
    107: "GPRS services not allowed",  # #7
    108: "GPRS services and non-GPRS services not allowed",  # #8
    111: "PLMN not allowed",  # #11
    112: "location area not allowed",  # #12
    113: "roaming not allowed in this location area",  # #13
    114: "GPRS services not allowed in this PLMN",  # #14
    115: "no suitable cells in location area",  # #15
    122: "congestion",  # #22
    125: "not authorized for this CSG",  # #25
    # Context activation failures (27.007 §9.2.2.2).
    126: "insufficient resources",  # #26
    127: "missing or unknown APN",  # #27
    128: "unknown PDP address or PDP type",  # #28
    129: "user authentication failed",  # #29
    130: "activation rejected by GGSN, Serving GW or PDN GW",  # #30
    131: "activation rejected, unspecified",  # #31
    132: "service option not supported",  # #32
    133: "requested service option not subscribed",  # #33
    134: "service option temporarily out of order",  # #34
    140: "feature not supported",  # #40
    141: "semantic error in the TFT operation",  # #41
    142: "syntactical error in the TFT operation",  # #42
    143: "unknown PDP context",  # #43
    144: "semantic errors in packet filter(s)",  # #44
    145: "syntactical errors in packet filter(s)",  # #45
    146: "PDP context without TFT already activated",  # #46
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
    171: "last PDN disconnection not allowed",  # #49
    172: "semantically incorrect message",  # #95
    173: "invalid mandatory information",  # #96
    174: "message type non-existent or not implemented",  # #97
    175: "conditional IE error",  # #100
    176: "protocol error, unspecified",  # #111
    177: "operator determined barring",  # #8
    178: "maximum number of PDP contexts reached",  # #65
    179: "requested APN not supported in current RAT and PLMN combination",  # #66
    180: "request rejected, bearer control mode violation",  # #48
    181: "unsupported QCI value",  # #83
}
"""27.007 §9.2 ``<err>`` values to their verbose text."""

CMS_ERRORS: dict[int, str] = {
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}
"""27.005 §3.2.5 ``<err>`` values; 0..127 are 24.011 RP causes, 128..255 are 23.040 TP causes."""

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def normalise_error_text(text: str) -> str:
    """Lower case with everything but letters and digits removed (ModemManager's key form)."""
    return _NOT_ALNUM.sub("", text.lower())


_CME_BY_TEXT = {normalise_error_text(name): code for code, name in CME_ERRORS.items()}
_CMS_BY_TEXT = {normalise_error_text(name): code for code, name in CMS_ERRORS.items()}


def cme_name(code: int) -> str:
    """Verbose text of a +CME ERROR number; unknown numbers keep the number visible."""
    return CME_ERRORS.get(code, f"unknown CME error {code}")


def cms_name(code: int) -> str:
    """Verbose text of a +CMS ERROR number; network causes (< 300) are named as such."""
    if code in CMS_ERRORS:
        return CMS_ERRORS[code]
    if 0 <= code <= 127:
        return f"network RP cause {code}"
    if 128 <= code <= 255:
        return f"network TP cause {code}"
    return f"unknown CMS error {code}"


def cme_code_for_text(text: str) -> int:
    """27.007 number of a verbose +CME ERROR text; 100 (unknown) when not in the table."""
    return _CME_BY_TEXT.get(normalise_error_text(text), CME_UNKNOWN)


def cms_code_for_text(text: str) -> int:
    """27.005 number of a verbose +CMS ERROR text; 500 (unknown error) when not in the table."""
    return _CMS_BY_TEXT.get(normalise_error_text(text), CMS_UNKNOWN)

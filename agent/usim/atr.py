"""The card's Answer To Reset (ISO/IEC 7816-3 8.2, ETSI TS 102 221 6.3): what a reset of
the host-side USIM answers before any APDU.

A terminal reads three things from it here: the card speaks T=0 (TD1), it is a UICC whose
supply voltage classes are A, B and C (the T=15 global byte TA3, which 102 221 requires),
and, from the historical bytes, what selection methods it offers and that it has no
logical channels beyond the basic one, which matches what ``apdu.py`` accepts. No TA1:
the default rate (Fi 372, Di 1) is all a card behind a host needs, the module talking
to it over AT rather than a contact.
"""

from __future__ import annotations

from functools import reduce

TS_DIRECT = 0x3B
"""Direct convention."""
TD1_T0_MORE = 0x80
"""TD1: TD2 follows, protocol T=0."""
TD2_T15_TA = 0x1F
"""TD2: TA3 follows, T=15 (global interface bytes)."""
TA3_UICC = 0xC7
"""Clock stop: no preference (b8-b7 11); classes A, B, C (b3-b1)."""
HISTORICAL = bytes.fromhex("80" "31E0" "73F62100")
"""Category 80 (compact-TLV follows); card service data (31): application selection by
full and partial DF name, EF_DIR holds BER-TLV templates; card capabilities (73): DF
selection by full DF name, partial DF name, path and FID, SFI and record numbers (F6),
data coding byte 21, no command chaining, no extended lengths, no logical channels (00)."""


def build_atr() -> bytes:
    """TS T0 TD1 TD2 TA3 historical TCK; T0 says TD1 follows and counts the historical
    bytes; TCK makes the XOR of T0..TCK zero (required once T=15 is indicated)."""
    t0 = 0x80 | len(HISTORICAL)
    body = bytes([t0, TD1_T0_MORE, TD2_T15_TA, TA3_UICC]) + HISTORICAL
    tck = reduce(lambda a, b: a ^ b, body, 0)
    return bytes([TS_DIRECT]) + body + bytes([tck])


ATR = build_atr()

"""+CCLK: the modem's clock, set from the network (NITZ) (27.007 §8.15).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from agent.modem.lex import fail, find_payloads

_CCLK = re.compile(r'"?(\d{2,4})/(\d{1,2})/(\d{1,2}),(\d{1,2}):(\d{1,2}):(\d{1,2})(?:([+-])(\d{1,2}))?"?')

MAX_TZ_QUARTERS = 56
"""Time zones run from -12:00 to +14:00 (Kiribati): -48..+56 quarter hours."""


def parse_cclk(text: str) -> datetime:
    """+CCLK: "yy/MM/dd,hh:mm:ss±zz" to an aware datetime; zz is quarter hours. No zone
    given means UTC (what the modem's network time is unless it says otherwise)."""
    payloads = find_payloads(text, "+CCLK:")
    if not payloads:
        raise fail("no +CCLK line", text)
    match = _CCLK.fullmatch(payloads[0].strip())
    if not match:
        raise fail("+CCLK is not yy/MM/dd,hh:mm:ss±zz", text)
    year, month, day, hour, minute, second, sign, quarters = match.groups()
    offset = 0
    if sign:
        offset = int(quarters) * (-1 if sign == "-" else 1)
        if not -48 <= offset <= MAX_TZ_QUARTERS:
            raise fail("+CCLK time zone out of range", text)
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    try:
        tz = timezone(timedelta(minutes=15 * offset))
        return datetime(full_year, int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError as exc:
        raise fail(f"+CCLK date invalid ({exc})", text) from None

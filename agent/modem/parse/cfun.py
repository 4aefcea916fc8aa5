"""+CFUN: the functionality level (27.007 §8.2).

What a level *means* for power differs per baseband (u-blox: 0 and 19 are low power), so that
reading is the dialect's (``Dialect.cfun_power_state``); this module only reads the number.
"""

from __future__ import annotations

from agent.modem.lex import fail, find_payloads, split_fields, to_int


def parse_cfun(text: str) -> int:
    """+CFUN: <fun>[,<rst>]: the functionality level (0 off, 1 full, 4 radio off, vendor >4)."""
    payloads = find_payloads(text, "+CFUN:")
    if not payloads:
        raise fail("no +CFUN line", text)
    return to_int(split_fields(payloads[0])[0][0], text, "<fun>")


def cfun_allowed_modes(fun: int, supported: tuple[str, ...] = ("2g", "3g")) -> list[str]:
    """Radio modes a <fun> allows on modems that use 5/6 for 2G-only/3G-only (Ericsson MBM,
    Linktop): 0/4 none, 1 all ``supported``, 5 2G, 6 3G."""
    table = {0: [], 4: [], 1: list(supported), 5: ["2g"], 6: ["3g"]}
    return table.get(fun, list(supported))

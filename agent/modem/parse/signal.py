"""Signal quality: +CSQ and +CESQ to physical units (27.007 §8.5, §8.69; tables in docs/at-parsers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.modem.lex import fail, find_payloads, split_fields, to_int


@dataclass(frozen=True)
class Signal:
    """Signal quality in physical units; ``raw`` keeps the 27.007 indices as received."""

    rssi_dbm: float | None
    ber: int | None
    rscp_dbm: float | None
    ecno_db: float | None
    rsrq_db: float | None
    rsrp_dbm: float | None
    sinr_db: float | None
    raw: dict[str, int | None] = field(default_factory=dict)


CSQ_UNKNOWN = 99
"""27.007 +CSQ: 99 = not known or not detectable (both <rssi> and <ber>)."""

CESQ_UNKNOWN_RXLEV = 99
CESQ_UNKNOWN = 255
"""27.007 +CESQ: <rxlev>/<ber> use 99, <rscp>/<ecno>/<rsrq>/<rsrp> use 255 for "not known"."""

CESQ_RANGES: dict[str, int] = {"rxlev": 63, "ber": 7, "rscp": 96, "ecno": 49, "rsrq": 34, "rsrp": 97}
"""Highest valid index of each +CESQ field (27.007 §8.69)."""


def _csq_rssi_dbm(rssi: int) -> float:
    """+CSQ <rssi>: 0 = -113 dBm or less, 31 = -51 dBm or more, 2 dB steps."""
    return -113.0 + 2.0 * rssi


def _cesq_convert(name: str, value: int) -> float:
    """The 27.007 §8.69 tables, as ModemManager reads them (lower edge of each step)."""
    if name == "rxlev":
        return -111.0 + value  # 0 = < -110 dBm ... 63 = >= -48 dBm
    if name == "rscp":
        return -121.0 + value  # 0 = < -120 dBm ... 96 = >= -25 dBm
    if name == "ecno":
        return -24.5 + 0.5 * value  # 0 = < -24 dB ... 49 = >= 0.5 dB
    if name == "rsrq":
        return -20.0 + 0.5 * value  # 0 = < -19.5 dB ... 34 = >= -3 dB
    return -141.0 + value  # rsrp: 0 = < -140 dBm ... 97 = >= -44 dBm


def _signal_fields(text: str, prefix: str, count: int) -> list[int]:
    payloads = find_payloads(text, prefix)
    if not payloads:
        raise fail(f"no {prefix} line", text)
    fields = [f for f, _ in split_fields(payloads[0])]
    if len(fields) < count:
        raise fail(f"{prefix} needs {count} fields", text)
    return [to_int(f, text, prefix) for f in fields[:count]]


def parse_csq(text: str) -> Signal:
    """+CSQ: <rssi>,<ber>. 99 = unknown; 100..191 (TD-SCDMA extension) are rejected."""
    rssi, ber = _signal_fields(text, "+CSQ:", 2)
    if not (rssi <= 31 or rssi == CSQ_UNKNOWN) or not (ber <= 7 or ber == CSQ_UNKNOWN):
        raise fail("+CSQ value out of range", text)
    return Signal(
        rssi_dbm=None if rssi == CSQ_UNKNOWN else _csq_rssi_dbm(rssi),
        ber=None if ber == CSQ_UNKNOWN else ber,
        rscp_dbm=None,
        ecno_db=None,
        rsrq_db=None,
        rsrp_dbm=None,
        sinr_db=None,
        raw={"rssi": rssi, "ber": ber},
    )


def parse_cesq(text: str) -> Signal:
    """+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp> to dBm/dB (unknown -> None)."""
    values = dict(zip(CESQ_RANGES, _signal_fields(text, "+CESQ:", 6)))
    converted: dict[str, float | None] = {}
    for name, value in values.items():
        unknown = CESQ_UNKNOWN_RXLEV if name in ("rxlev", "ber") else CESQ_UNKNOWN
        if value == unknown:
            converted[name] = None
        elif value > CESQ_RANGES[name]:
            raise fail(f"+CESQ <{name}> {value} out of range", text)
        else:
            converted[name] = float(value) if name == "ber" else _cesq_convert(name, value)
    ber = converted["ber"]
    return Signal(
        rssi_dbm=converted["rxlev"],
        ber=None if ber is None else int(ber),
        rscp_dbm=converted["rscp"],
        ecno_db=converted["ecno"],
        rsrq_db=converted["rsrq"],
        rsrp_dbm=converted["rsrp"],
        sinr_db=None,
        raw=dict(values),
    )

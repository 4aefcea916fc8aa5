"""The one JSON vocabulary for parsed AT values: what every tool prints for an answer.

Why: ``pocket-agent decode`` printed ``operator`` for a +COPS? answer while ``pocket-agent
at`` printed ``oper`` (a dataclass dumped as it is). A technician comparing the two, or a
script reading either, needs one name per value. The names are the captured corpus' (its
README), which is also what docs/at-parsers.md shows. Each command in the table
(``commands.py``) names the function here that turns its parsed value into fields.

Functions take the parsed value and a ``Reading`` (what the value's meaning depends on:
the dialect's reading of +CFUN levels), and return a JSON-ready dict. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from agent.modem.codes import AtErrorCode
from agent.modem.parse import (
    Ceer,
    CgevEvent,
    ContextAddress,
    ContextParams,
    ContextState,
    DeviceIds,
    Network,
    Operator,
    PdpContext,
    PdpFormat,
    Registration,
    Signal,
)

Fields = dict[str, Any]


class Reading(Protocol):
    """What a value's meaning depends on beyond its text: the dialect (see ``dialects/``)."""

    def cfun_power_state(self, fun: int) -> str: ...


def registration(reg: Registration, reading: Reading) -> Fields:
    loc = {"tac": reg.tac} if reg.family in ("+CEREG", "+C5GREG") else {"lac": reg.lac}
    out: Fields = {"n": reg.n, "stat": reg.stat, **loc}
    out.update(ci=reg.ci, act=reg.act, registered=reg.registered, roaming=reg.roaming)
    if reg.cause_type is not None or reg.reject_cause is not None:
        out.update(cause_type=reg.cause_type, reject_cause=reg.reject_cause)
    return out


def signal(sig: Signal, reading: Reading) -> Fields:
    """The indices as received, and what they mean in dBm/dB (unknown ones left out)."""
    converted = {
        "rssi_dbm": sig.rssi_dbm,
        "rscp_dbm": sig.rscp_dbm,
        "ecno_db": sig.ecno_db,
        "rsrq_db": sig.rsrq_db,
        "rsrp_dbm": sig.rsrp_dbm,
        "sinr_db": sig.sinr_db,
    }
    return {**sig.raw, "converted": {k: v for k, v in converted.items() if v is not None}}


def operator(value: Operator | list[Network], reading: Reading) -> Fields:
    if isinstance(value, Operator):
        return {"mode": value.mode, "format": value.format, "operator": value.oper, "act": value.act}
    return {
        "networks": [
            {"stat": n.stat, "operator_long": n.long_name, "operator_short": n.short_name,
             "operator_id": n.numeric, "act": n.act}
            for n in value
        ]
    }


def lock(code: str, reading: Reading) -> Fields:
    return {"lock": code}


def imsi(value: str, reading: Reading) -> Fields:
    return {"imsi": value}


def iccid(value: str, reading: Reading) -> Fields:
    return {"iccid": value}


def device_ids(ids: DeviceIds, reading: Reading) -> Fields:
    return {"imei": ids.imei, "esn": ids.esn, "meid": ids.meid}


def text(value: str, reading: Reading) -> Fields:
    return {"text": value}


def pdp_contexts(value: list[PdpContext] | list[PdpFormat], reading: Reading) -> Fields:
    if value and isinstance(value[0], PdpFormat):
        return {"formats": [{"pdp_type": f.pdp_type, "min_cid": f.min_cid, "max_cid": f.max_cid}
                            for f in value if isinstance(f, PdpFormat)]}
    return {"contexts": [{"cid": c.cid, "pdp_type": c.pdp_type, "apn": c.apn}
                         for c in value if isinstance(c, PdpContext)]}


def context_states(value: list[ContextState], reading: Reading) -> Fields:
    return {"contexts": [{"cid": s.cid, "active": s.active} for s in value]}


def context_addresses(value: list[ContextAddress], reading: Reading) -> Fields:
    return {"contexts": [{"cid": a.cid, "addresses": list(a.addresses)} for a in value]}


def context_params(value: list[ContextParams], reading: Reading) -> Fields:
    return {
        "contexts": [
            {"cid": c.cid, "bearer_id": c.bearer_id, "apn": c.apn, "address": c.address, "prefix": c.prefix,
             "gateway": c.gateway, "dns": list(c.dns), "mtu": c.mtu}
            for c in value
        ]
    }


def functionality(fun: int, reading: Reading) -> Fields:
    return {"fun": fun, "power_state": reading.cfun_power_state(fun)}


def cgev(event: CgevEvent, reading: Reading) -> Fields:
    return {k: v for k, v in vars(event).items() if v is not None}


def ceer(report: Ceer, reading: Reading) -> Fields:
    return {"reason": report.reason}


def clock(moment: datetime, reading: Reading) -> Fields:
    offset = moment.utcoffset()
    return {"iso8601": moment.isoformat(), "tz_offset_minutes": int(offset.total_seconds() // 60) if offset else 0}


def error(err: AtErrorCode) -> Fields:
    """A final error code: its number (None when the modem gave none) and its name."""
    return {"code": err.code, "name": err.name}

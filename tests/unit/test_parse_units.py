"""Edge cases the ModemManager corpus lacks: +CSQ, +CIMI, +CGPADDR, unknown-value markers,
reject causes, URC recognition, error naming, framing helpers with a known command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import ParseError
from agent.modem import parse as p
from agent.modem.commands import FAMILIES, family_of
from agent.modem.dialects import get_dialect
from agent.modem.driver import CidChoice, select_cid

# ---- signal ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rssi_dbm", "ber"),
    [
        ("+CSQ: 0,0", -113.0, 0),
        ("+CSQ: 31,7", -51.0, 7),
        ("+CSQ: 20,99", -73.0, None),
        ("+CSQ: 99,99", None, None),
        ("\r\n+CSQ:15, 3\r\n", -83.0, 3),
    ],
)
def test_csq_converts_rssi_and_marks_99_unknown(text: str, rssi_dbm: float | None, ber: int | None) -> None:
    sig = p.parse_csq(text)
    assert (sig.rssi_dbm, sig.ber) == (rssi_dbm, ber)
    assert sig.rsrp_dbm is None and sig.raw["rssi"] == int(text.split(":")[1].split(",")[0])


@pytest.mark.parametrize("text", ["+CSQ: 32,0", "+CSQ: 20,8", "+CSQ: 20", "+CSQ: a,b", "+CESQ: 1,2", "", "OK"])
def test_csq_rejects_out_of_range_and_malformed(text: str) -> None:
    with pytest.raises(ParseError) as info:
        p.parse_csq(text)
    assert info.value.raw == text


def test_cesq_all_unknown_is_all_none_but_keeps_raw_indices() -> None:
    sig = p.parse_cesq("+CESQ: 99,99,255,255,255,255")
    assert (sig.rssi_dbm, sig.ber, sig.rscp_dbm, sig.ecno_db, sig.rsrq_db, sig.rsrp_dbm) == (None,) * 6
    assert sig.raw == {"rxlev": 99, "ber": 99, "rscp": 255, "ecno": 255, "rsrq": 255, "rsrp": 255}


def test_cesq_table_edges() -> None:
    low = p.parse_cesq("+CESQ: 0,0,0,0,0,0")
    high = p.parse_cesq("+CESQ: 63,7,96,49,34,97")
    assert (low.rssi_dbm, low.rscp_dbm, low.ecno_db, low.rsrq_db, low.rsrp_dbm) == (-111, -121, -24.5, -20, -141)
    assert (high.rssi_dbm, high.rscp_dbm, high.ecno_db, high.rsrq_db, high.rsrp_dbm) == (-48, -25, 0, -3, -44)


@pytest.mark.parametrize("text", ["+CESQ: 64,0,0,0,0,0", "+CESQ: 0,0,0,0,35,0", "+CESQ: 0,0,0,0,0,98"])
def test_cesq_rejects_indices_beyond_the_table(text: str) -> None:
    with pytest.raises(ParseError):
        p.parse_cesq(text)


# ---- identity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "imsi"), [("440101234567890", "440101234567890"), ("+CIMI: 44010123", "44010123")])
def test_cimi(text: str, imsi: str) -> None:
    assert p.parse_cimi(text) == imsi


@pytest.mark.parametrize("text", ["", "1234", "44010123456789012", "4401O1234567890", "440\r\n101"])
def test_cimi_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        p.parse_cimi(text)


@pytest.mark.parametrize(
    "text",
    [
        "+CCID: 8944200053671052499F",
        "+ICCID: 8944200053671052499",
        '^ICCID: "984402003576012594F9"',
        "+QCCID: 8944200053671052499F",
    ],
)
def test_iccid_vendor_prefixes(text: str) -> None:
    assert p.parse_iccid(text) == "8944200053671052499"


def test_imei_rejects_a_cdma_esn_and_accepts_prefixed_imei() -> None:
    assert p.parse_imei('+CGSN: "354237065082227"') == "354237065082227"
    with pytest.raises(ParseError):
        p.parse_imei("0x2214A600")


@pytest.mark.parametrize("text", ["+CPIN: BANANA", "", "+CPIN:", "READY\r\nREADY"])
def test_cpin_rejects_unknown_codes(text: str) -> None:
    with pytest.raises(ParseError):
        p.parse_cpin(text)


# ---- registration --------------------------------------------------------------------------------


def test_cereg_n3_carries_reject_cause() -> None:
    reg = p.parse_registration('+CEREG: 3,3,"1F00","079D903",7,0,15')
    assert (reg.n, reg.stat, reg.tac, reg.ci, reg.act) == (3, 3, 0x1F00, 0x79D903, "lte")
    assert (reg.cause_type, reg.reject_cause, reg.urc, reg.registered) == (0, 15, False, False)


def test_cgreg_reject_cause_comes_after_rac() -> None:
    reg = p.parse_registration('+CGREG: 3,3,"1422","00000142",3,"00",0,7')
    assert (reg.stat, reg.lac, reg.act, reg.cause_type, reg.reject_cause) == (3, 0x1422, "edge", 0, 7)


def test_c5greg_reject_cause_comes_after_nssai() -> None:
    reg = p.parse_registration("+C5GREG: 3,1F00,79D903,11,6,ABCDEF,0,12")
    assert (reg.n, reg.stat, reg.tac, reg.act, reg.reject_cause, reg.urc) == (None, 3, 0x1F00, "5gnr", 12, True)


def test_creg_urc_with_empty_location_and_reject_cause() -> None:
    reg = p.parse_registration("+CREG: 3,3,,,,0,11")
    assert (reg.n, reg.stat, reg.lac, reg.ci, reg.act, reg.reject_cause) == (3, 3, None, None, None, 11)


def test_solicited_hint_overrides_inference_and_family_filters() -> None:
    text = "+CREG: 5\r\n+CEREG: 1,\"1F00\",\"1\",7"
    assert p.parse_registration(text).family == "+CREG"
    assert p.parse_registration(text, family="+CEREG").tac == 0x1F00
    assert p.parse_registration("+CREG: 2,5", solicited=False).urc is True


@pytest.mark.parametrize("text", ["+CREG: 12", "+CREG: x", "+CREG:", '+CREG: 1,"XYZ","1"', "+COPS: 0", "", "OK"])
def test_registration_rejects(text: str) -> None:
    with pytest.raises(ParseError) as info:
        p.parse_registration(text)
    assert info.value.raw == text


# ---- PDP ---------------------------------------------------------------------------------------


def test_cgpaddr_ipv4_dual_stack_dotted_ipv6_and_empty() -> None:
    text = (
        '+CGPADDR: 1,"10.1.2.3"\r\n'
        '+CGPADDR: 2,"10.1.2.4","32.1.13.184.0.0.0.0.0.0.0.0.0.0.0.1"\r\n'
        "+CGPADDR: 3\r\n"
        '+CGPADDR: 4,""\r\n'
    )
    assert p.parse_cgpaddr(text) == [
        p.ContextAddress(1, ("10.1.2.3",)),
        p.ContextAddress(2, ("10.1.2.4", "2001:db8::1")),
        p.ContextAddress(3, ()),
        p.ContextAddress(4, ()),
    ]


@pytest.mark.parametrize("text", ['+CGPADDR: 1,"10.1.2"', '+CGPADDR: x,"10.1.2.3"', "garbage"])
def test_cgpaddr_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        p.parse_cgpaddr(text)


def test_cgcontrdp_ipv6_with_mask_and_mtu() -> None:
    v6 = ".".join(["32", "1", "13", "184"] + ["0"] * 11 + ["1"])
    mask = ".".join(["255"] * 8 + ["0"] * 8)
    text = f'+CGCONTRDP: 1,5,"internet","{v6}.{mask}","","8.8.8.8","0.0.0.0","","",0,0,1400'
    (params,) = p.parse_cgcontrdp(text)
    assert (params.address, params.prefix, params.gateway) == ("2001:db8::1", 64, None)
    assert params.dns == ("8.8.8.8",)
    assert params.mtu == 1400


def test_cgcontrdp_empty_body_is_no_contexts_and_garbage_is_an_error() -> None:
    assert p.parse_cgcontrdp("") == []
    with pytest.raises(ParseError):
        p.parse_cgcontrdp("+CGCONTRDP: x,5")


def test_select_cid_without_test_response_takes_the_next_cid() -> None:
    contexts = [p.PdpContext(1, "IP", "ims"), p.PdpContext(2, "IPV4V6", "internet")]
    assert select_cid(contexts, [], "internet", "ipv4v6") == CidChoice(2, True, False)
    assert select_cid(contexts, [], "vsim.example", "IP") == CidChoice(3, False, False)


# ---- events and clock --------------------------------------------------------------------------


def test_cgev_modify_and_pdn_act_reason() -> None:
    assert p.parse_cgev("+CGEV: NW MODIFY 1, 2, 0") == p.CgevEvent("nw_modify", cid=1, reason=2, event_type=0)
    assert p.parse_cgev("+CGEV: ME PDN ACT 1, 0").reason == 0
    assert p.parse_cgev("+CGEV: NW CLASS B").mobile_class == "B"


@pytest.mark.parametrize("text", ["+CGEV: NW EXPLODE", "+CGEV: REJECT IP", "+CGEV: ME ACT 1", "+CGEV: ME PDN ACT x"])
def test_cgev_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        p.parse_cgev(text)


def test_cclk_jst_and_invalid_dates() -> None:
    moment = p.parse_cclk('+CCLK: "24/02/29,23:59:59+36"')
    assert moment == datetime(2024, 2, 29, 14, 59, 59, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(hours=9)
    for bad in ('+CCLK: "23/02/29,00:00:00+00"', '+CCLK: "24/13/01,00:00:00"', '+CCLK: "24/01/01,24:00:00"',
                '+CCLK: "24/01/01,00:00:00+99"'):
        with pytest.raises(ParseError):
            p.parse_cclk(bad)


def test_cfun_and_ceer_edges() -> None:
    assert p.parse_cfun("\r\n+CFUN: 1,0\r\n") == 1
    assert get_dialect("generic").cfun_power_state(0) == "off" and get_dialect("ublox").cfun_power_state(0) == "low"
    assert p.parse_ceer('+CEER: "LTE Detach","No cause"').reason == 'LTE Detach","No cause'
    with pytest.raises(ParseError):
        p.parse_cfun("+CFUN: on")


# ---- errors, finals, echo, URCs: moved with their code to tests/unit/test_codes.py ----------


def test_families_table_dispatches_by_prefix() -> None:
    assert FAMILIES["+CSQ"]("+CSQ: 10,0").rssi_dbm == -93.0
    assert FAMILIES["+COPS"]('+COPS: 0,2,"44010",7') == p.Operator(0, 2, "44010", "lte")
    assert FAMILIES["+COPS"]('+COPS: (2,"","","44010",7),,(0-4),(0-2)')[0].numeric == "44010"
    assert FAMILIES["+CGDCONT"]('+CGDCONT: (1-24),"IP",,,(0-3),(0-4)') == [p.PdpFormat("IP", 1, 24)]
    assert family_of("+CGCONTRDP: 1,5") == "+CGCONTRDP"
    assert family_of("+XYZ: 1") is None


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(ParseError):
        p.parse_cgdcont_query("+CGDCONT: 1,\"IP\",\"a\"\r\n" * 10_000)

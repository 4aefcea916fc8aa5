"""``decode_stream`` in process: how a field engineer's serial log is cut into responses.

tests/cli/test_decode.py runs the real command in a subprocess; these drive the decoder
itself, so that each grouping rule (docs/at-parsers.md; the module doc of
agent/modem/decode.py) is checked where it is decided: what an echo tells about the next
line, where one response ends, that no line is ever dropped, and which reading (charset,
dialect) names the values. Issue 29: these paths had no fast test.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import ParseError
from agent.modem.decode import decode_stream, describe
from agent.modem.dialects import get_dialect

IMSI = "440101234567890"


def decoded(*lines: str, **kwargs: Any) -> list[dict[str, Any]]:
    return list(decode_stream(lines, **kwargs))


def kinds(objects: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(o.get("family"), o["kind"]) for o in objects]


# ---- echoes ----------------------------------------------------------------------------


@pytest.mark.parametrize("echo", ["AT", "ATE0", "AT&C1", "AT+CSQ", "at+csq", "AT+CPIN?", "AT+CGDCONT=1,\"IP\",\"a\"",
                                  "AT^SYSCFG=2,2,3FFFFFFF,1,2", "AT+COPS=?"])
def test_a_command_echo_is_reported_as_one_echo_object(echo: str) -> None:
    assert decoded(f"  {echo}  ") == [{"kind": "echo", "command": echo}]


@pytest.mark.parametrize("line", ["AT&T", "at&t"])
def test_a_line_that_names_the_carrier_at_and_t_is_not_taken_for_an_echo(line: str) -> None:
    """The decoder does not read a line starting "AT&T" as an echo (in a log it is the
    carrier's name at least as often as V.250's &T test command): kept as an unknown line."""
    assert decoded(line) == [{"kind": "unknown", "raw": line}]


@pytest.mark.parametrize("line", ["ATTN: reboot at 3am", "AT+CSQ junk", "AT+", "+CSQ"])
def test_a_line_that_only_starts_like_a_command_is_not_an_echo(line: str) -> None:
    assert [o["kind"] for o in decoded(line)] == ["unknown"]


def test_a_bare_answer_belongs_to_the_echoed_command() -> None:
    assert decoded("AT+CIMI", IMSI, "OK") == [
        {"kind": "echo", "command": "AT+CIMI"},
        {"family": "+CIMI", "kind": "response", "imsi": IMSI},
    ]


def test_a_bare_line_without_an_echo_before_it_is_unknown_and_kept() -> None:
    assert decoded(IMSI) == [{"kind": "unknown", "raw": IMSI}]


@pytest.mark.parametrize("final", ["OK", "ERROR", "+CME ERROR: 10"])
def test_a_final_result_ends_the_command_so_a_later_bare_line_is_not_its_answer(final: str) -> None:
    objects = decoded("AT+CIMI", final, IMSI)
    assert objects[-1] == {"kind": "unknown", "raw": IMSI}


def test_a_bare_line_after_an_echo_of_a_command_with_prefixed_answers_is_unknown() -> None:
    """AT+CSQ answers with "+CSQ:", so a bare line after it is not +CSQ's."""
    assert decoded("AT+CSQ", IMSI)[-1] == {"kind": "unknown", "raw": IMSI}


def test_a_new_echo_ends_the_response_before_it_and_comes_after_it() -> None:
    objects = decoded("AT+CIMI", IMSI, "AT+CSQ", "+CSQ: 20,99", "OK")
    assert kinds(objects) == [(None, "echo"), ("+CIMI", "response"), (None, "echo"), ("+CSQ", "response")]
    assert objects[1]["imsi"] == IMSI and objects[3]["rssi"] == 20


# ---- the echo decides answer or URC -----------------------------------------------------


def test_cpin_after_its_query_is_the_answer_and_alone_is_a_urc() -> None:
    assert kinds(decoded("AT+CPIN?", "+CPIN: READY", "OK")) == [(None, "echo"), ("+CPIN", "response")]
    assert decoded("+CPIN: READY") == [{"family": "+CPIN", "kind": "urc", "lock": "READY"}]


def test_cpin_after_the_query_was_answered_is_a_urc_again() -> None:
    assert kinds(decoded("AT+CPIN?", "+CPIN: SIM PIN", "OK", "+CPIN: READY")) == [
        (None, "echo"), ("+CPIN", "response"), ("+CPIN", "urc")]


def test_a_registration_line_in_urc_form_is_a_urc_even_right_after_its_query() -> None:
    """+CEREG: <stat>,<tac>,<ci>,<AcT> (no <n>) is the URC form whatever the echo before it
    says; the answer form starts with <n>."""
    urc, answer = decoded("AT+CEREG?", '+CEREG: 1,"1F00","79D903",7', "OK",
                          "AT+CEREG?", '+CEREG: 2,5,"1F00","79D903",7', "OK")[1::2]
    assert (urc["kind"], urc["n"], urc["stat"], urc["tac"], urc["roaming"]) == ("urc", None, 1, 0x1F00, False)
    assert (answer["kind"], answer["n"], answer["stat"], answer["roaming"]) == ("response", 2, 5, True)


def test_a_registration_urc_while_another_command_is_in_flight_is_a_urc() -> None:
    objects = decoded("AT+CSQ", '+CEREG: 2,1,"1F00","79D903",7', "+CSQ: 20,99", "OK")
    assert kinds(objects) == [(None, "echo"), ("+CEREG", "urc"), ("+CSQ", "response")]


# ---- final result codes ----------------------------------------------------------------


def test_ok_is_skipped_and_every_other_final_is_an_object_with_its_line() -> None:
    objects = decoded("OK", "+CME ERROR: 10", "ERROR", "NO CARRIER", "CONNECT 150000000", "CONNECT")
    assert objects == [
        {"family": "+CME ERROR", "kind": "error", "code": 10, "name": "SIM not inserted", "raw": "+CME ERROR: 10"},
        {"family": "ERROR", "kind": "error", "code": None, "name": "error", "raw": "ERROR"},
        {"family": "NO CARRIER", "kind": "error", "code": None, "name": "no carrier", "raw": "NO CARRIER"},
        {"family": "CONNECT", "kind": "response", "raw": "CONNECT 150000000"},
        {"family": "CONNECT", "kind": "response", "raw": "CONNECT"},
    ]


def test_a_final_result_ends_the_response_before_it() -> None:
    objects = decoded('+CGDCONT: 1,"IP","a"', "+CMS ERROR: 500", '+CGDCONT: 2,"IP","b"')
    assert kinds(objects) == [("+CGDCONT", "response"), ("+CMS ERROR", "error"), ("+CGDCONT", "response")]
    assert [o["contexts"][0]["apn"] for o in (objects[0], objects[2])] == ["a", "b"]


# ---- grouping ----------------------------------------------------------------------------


def test_consecutive_lines_of_one_family_are_one_response() -> None:
    (response,) = decoded('+CGDCONT: 1,"IP","internet"', '+CGDCONT: 2,"IPV6","ims"')
    assert response["contexts"] == [{"cid": 1, "pdp_type": "IP", "apn": "internet"},
                                    {"cid": 2, "pdp_type": "IPV6", "apn": "ims"}]


def test_a_change_of_family_starts_a_new_response() -> None:
    assert kinds(decoded("+CSQ: 20,99", "+CESQ: 99,99,255,255,20,80")) == [("+CSQ", "response"),
                                                                         ("+CESQ", "response")]


def test_a_urc_between_lines_of_one_family_splits_them_and_keeps_the_order() -> None:
    objects = decoded('+CGDCONT: 1,"IP","a"', "RING", '+CGDCONT: 2,"IP","b"')
    assert objects == [
        {"family": "+CGDCONT", "kind": "response", "contexts": [{"cid": 1, "pdp_type": "IP", "apn": "a"}]},
        {"family": "RING", "kind": "urc", "raw": "RING"},
        {"family": "+CGDCONT", "kind": "response", "contexts": [{"cid": 2, "pdp_type": "IP", "apn": "b"}]},
    ]


def test_an_unknown_line_between_lines_of_one_family_splits_them_and_is_kept() -> None:
    objects = decoded('+CGDCONT: 1,"IP","a"', "garbage", '+CGDCONT: 2,"IP","b"')
    assert kinds(objects) == [("+CGDCONT", "response"), (None, "unknown"), ("+CGDCONT", "response")]
    assert objects[1]["raw"] == "garbage"


def test_a_urc_we_parse_is_named_and_one_we_do_not_is_kept_raw() -> None:
    assert decoded("+CGEV: NW PDN DEACT 1", "+CMTI: \"SM\",3") == [
        {"family": "+CGEV", "kind": "urc", "event": "nw_pdn_deact", "cid": 1},
        {"family": "+CMTI", "kind": "urc", "raw": '+CMTI: "SM",3'},
    ]


def test_a_cops_scan_broken_over_lines_is_one_response() -> None:
    objects = decoded("AT+COPS=?", '+COPS: (2,"NTT DOCOMO","DOCOMO","44010",7),',
                      '(1,"SoftBank","SoftBank","44020",7),(3,"KDDI, au","au","44051",7),,(0-4),(0-2)', "OK")
    assert kinds(objects) == [(None, "echo"), ("+COPS", "response")]
    assert [(n["operator_long"], n["operator_id"], n["stat"]) for n in objects[1]["networks"]] == [
        ("NTT DOCOMO", "44010", 2), ("SoftBank", "44020", 1), ("KDDI, au", "44051", 3)]


@pytest.mark.parametrize("lines", [("(1,2)",), ("+CSQ: 20,99", "(1,2)")])
def test_a_parenthesised_line_outside_a_cops_scan_is_unknown_and_kept(lines: tuple[str, ...]) -> None:
    assert decoded(*lines)[-1] == {"kind": "unknown", "raw": "(1,2)"}


def test_an_answer_that_does_not_parse_is_unknown_with_the_parsers_reason() -> None:
    (obj,) = decoded("+CSQ: twenty,99")
    assert (obj["family"], obj["kind"], obj["raw"]) == ("+CSQ", "unknown", "+CSQ: twenty,99")
    assert "not a number" in obj["error"]


def test_nothing_is_lost_at_the_end_of_the_input() -> None:
    assert kinds(decoded("AT+CIMI", IMSI)) == [(None, "echo"), ("+CIMI", "response")]
    assert decoded() == []


# ---- the reading: charset and dialect ----------------------------------------------------


def test_the_charset_decodes_operator_names() -> None:
    """A modem set to +CSCS="UCS2" prints names as hex UTF-16; "NTT" here."""
    line = '+COPS: 0,0,"004E00540054",7'
    assert decoded(line, charset="UCS2")[0]["operator"] == "NTT"
    assert decoded(line)[0]["operator"] == "004E00540054"  # GSM: the text as printed
    assert describe("+COPS", line, charset="UCS2")["operator"] == "NTT"


def test_the_dialect_names_power_levels() -> None:
    """u-blox defines +CFUN: 19 as radio off (low power); 27.007 leaves 19 to vendors (on)."""
    assert decoded("+CFUN: 19")[0]["power_state"] == "on"
    assert decoded("+CFUN: 19", dialect=get_dialect("ublox"))[0]["power_state"] == "low"
    assert describe("+CFUN", "+CFUN: 19") == {"fun": 19, "power_state": "on"}
    assert describe("+CFUN", "+CFUN: 19", dialect=get_dialect("ublox")) == {"fun": 19, "power_state": "low"}


def test_describe_raises_the_parsers_error_for_an_answer_that_does_not_parse() -> None:
    with pytest.raises(ParseError):
        describe("+CSQ", "+CSQ: twenty,99")


def test_names_are_read_as_gsm_text_unless_told_otherwise() -> None:
    """27.007's default +CSCS is "GSM": the modem's "@" byte is the GSM alphabet's "¡"."""
    line = '+COPS: 0,0,"@Home",7'
    assert decoded(line)[0]["operator"] == "\u00a1Home"
    assert describe("+COPS", line)["operator"] == "\u00a1Home"
    assert decoded(line, charset="IRA")[0]["operator"] == "@Home"


def test_with_echo_off_an_answer_after_the_last_commands_ok_is_still_an_answer() -> None:
    """ATE0 logs show no echo: after an OK there is no command context, and a registration
    line in answer form (it starts with <n>) is the answer to a query the log does not show."""
    objects = decoded("AT+CSQ", "+CSQ: 20,99", "OK", '+CEREG: 2,1,"1F00","79D903",7', "OK")
    assert kinds(objects) == [(None, "echo"), ("+CSQ", "response"), ("+CEREG", "response")]
    assert objects[2]["n"] == 2

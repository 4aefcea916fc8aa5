"""The shared AT lexers on lines as real modems print them (issue 29: lex.py's survivors).

No corpus vector quotes a comma, an escaped quote or an empty quoted field, yet modems
print all three: an SMS list header's timestamp is one quoted field holding a comma, an
operator's long name may hold one, a quote inside a 27.007 string is escaped as ``\\22``,
and empty fields (quoted or not) mark what the network did not send. Each rule is checked
where the agent meets it: the field a parser reads, the number or ``None`` it gets, the
``ParseError`` (carrying the input) it raises.
"""

from __future__ import annotations

import pytest

from agent.errors import ParseError
from agent.modem import lex
from agent.modem.lex import (
    MAX_INPUT_CHARS,
    act_name,
    body_lines,
    find_payloads,
    hex_field,
    is_short_decimal,
    opt_int,
    payload_after,
    split_fields,
    to_int,
)
from agent.modem.parse import parse_cops_query, parse_registration

# ---- fields ------------------------------------------------------------------------------


def test_an_sms_list_header_keeps_its_timestamp_whole_and_its_empty_name() -> None:
    """27.005 +CMGL in text mode: <index>,<stat>,<oa>,[<alpha>],<scts>; the alpha is empty
    and the timestamp "yy/MM/dd,hh:mm:ss+zz" is one field with a comma in it."""
    payload = payload_after('+CMGL: 1,"REC UNREAD","+819012345678",,"26/12/03,12:00:00+36"', "+CMGL:")
    assert payload is not None
    assert split_fields(payload) == [("1", False), ("REC UNREAD", True), ("+819012345678", True),
                                     ("", False), ("26/12/03,12:00:00+36", True)]


def test_an_escaped_quote_does_not_end_the_field() -> None:
    """27.007 writes a quote inside a string as \\22 (a backslash and its two hex digits):
    the lexer leaves it as printed, and the comma after it stays inside the name."""
    assert split_fields(r'0,0,"Say \22Hi\22, Inc.",7') == [("0", False), ("0", False),
                                                            (r"Say \22Hi\22, Inc.", True), ("7", False)]


def test_an_operator_name_with_commas_and_its_act_after_it() -> None:
    op = parse_cops_query('+COPS: 1,0,"KDDI, au, Okinawa",9\r\n')
    assert (op.mode, op.format, op.oper, op.act) == (1, 0, "KDDI, au, Okinawa", "lte_nb_iot")


def test_empty_quoted_and_unquoted_fields_are_told_apart_and_kept_in_place() -> None:
    assert split_fields('1,"IP","","0.0.0.0",0,0') == [("1", False), ("IP", True), ("", True),
                                                       ("0.0.0.0", True), ("0", False), ("0", False)]
    assert split_fields(",,") == [("", False), ("", False), ("", False)]
    assert split_fields("") == [("", False)]


def test_only_the_quoted_field_is_marked_quoted() -> None:
    """The quoted mark does not leak into the fields after it (a registration line's LAC is
    told from its <stat> by exactly this mark: codes.has_mode_field)."""
    assert split_fields('"1F00",5,"79D903",7') == [("1F00", True), ("5", False), ("79D903", True), ("7", False)]


def test_blanks_around_fields_are_not_part_of_them() -> None:
    assert split_fields(' 1 , "IP" ,  7 ') == [("1", False), ("IP", True), ("7", False)]


# ---- lines and payloads --------------------------------------------------------------------


def test_body_lines_are_the_non_blank_lines_for_any_line_ending() -> None:
    assert body_lines("\r\n+CSQ: 20,99\r\n\r\n  \nOK\r") == ["+CSQ: 20,99", "OK"]
    assert body_lines("a\rb\nc\r\nd") == ["a", "b", "c", "d"]
    assert body_lines("") == []


def test_a_response_up_to_the_limit_is_read_and_one_byte_more_is_refused() -> None:
    at_limit = "+CSQ: 20,99\r\n" + "x" * (MAX_INPUT_CHARS - len("+CSQ: 20,99\r\n"))
    assert len(at_limit) == MAX_INPUT_CHARS == 65536
    assert body_lines(at_limit)[0] == "+CSQ: 20,99"
    with pytest.raises(ParseError) as err:
        body_lines(at_limit + "x")
    assert err.value.raw == at_limit + "x"  # the whole input, for the caller to log if it must
    assert str(err.value).startswith("response too long: '+CSQ: 20,99")  # what decode prints as "error"


@pytest.mark.parametrize("value", [None, b"+CSQ: 20,99", 7])
def test_body_lines_refuses_what_is_not_text_with_a_parse_error(value: object) -> None:
    with pytest.raises(ParseError) as err:
        body_lines(value)  # type: ignore[arg-type]
    assert err.value.raw == repr(value) and type(value).__name__ in str(err.value)


def test_a_prefix_matches_in_any_case_and_its_blanks_are_dropped() -> None:
    assert payload_after("+cops:   0,0,\"A\"", "+COPS:") == '0,0,"A"'
    assert payload_after("+COPS: 0", "+cops:") == "0"
    assert payload_after("+COP", "+COPS:") is None
    assert payload_after("+CGREG: 1,1", "+CREG:") is None


def test_find_payloads_takes_every_line_of_the_family_in_order() -> None:
    text = '\r\n+CGDCONT: 1,"IP","a"\r\n+CGEV: ME PDN ACT 1\r\n+cgdcont: 2,"IP","b"\r\n\r\nOK\r\n'
    assert find_payloads(text, "+CGDCONT:") == ['1,"IP","a"', '2,"IP","b"']
    assert find_payloads(text, "+CSQ:") == []


# ---- numbers --------------------------------------------------------------------------------


def test_a_decimal_field_allows_leading_zeros_and_blanks() -> None:
    assert to_int(" 007 ", "raw", "<cid>") == 7


@pytest.mark.parametrize("value", ["", "x", "-1", "1.5", "\u0661\u0662", "1 2"])
def test_a_decimal_field_that_is_not_ascii_digits_is_a_parse_error_naming_it(value: str) -> None:
    with pytest.raises(ParseError) as err:
        to_int(value, "+CGACT: x,1", "<cid>")
    assert err.value.raw == "+CGACT: x,1"
    assert "<cid> is not a number" in str(err.value) and "+CGACT: x,1" in str(err.value)


def test_an_optional_decimal_reads_digits_and_calls_anything_else_not_given() -> None:
    assert opt_int(" 042 ") == 42
    assert [opt_int(v) for v in ("", "x", "-3", "\u0661", " ")] == [None] * 5


def test_a_hex_field_is_read_and_an_empty_one_means_not_given() -> None:
    assert hex_field(" 1f00 ", "raw", "<tac>") == 0x1F00
    assert hex_field("  ", "raw", "<tac>") is None
    assert hex_field("FFFFFFFFFFFFFFFF", "raw", "<ci>") == 2 ** 64 - 1  # 16 digits: the longest taken


def test_a_garbled_hex_field_keeps_its_leading_token() -> None:
    """Gobi 1000 prints "  0 5" for LAC 0; ModemManager reads 0."""
    assert hex_field("  0 5", "raw", "<lac>") == 0


@pytest.mark.parametrize("value", ["1G00", "0x1F", "1FFFFFFFFFFFFFFFF"])
def test_a_field_that_is_not_short_hex_is_a_parse_error_naming_it(value: str) -> None:
    with pytest.raises(ParseError) as err:
        hex_field(value, "+CEREG: 1," + value, "<tac>")
    assert err.value.raw == "+CEREG: 1," + value and "<tac> is not hexadecimal" in str(err.value)


@pytest.mark.parametrize("value, quoted, limit, short", [
    ("5", False, 11, True), ("11", False, 11, True), ("12", False, 11, False), ("5", True, 11, False),
    (" 099 ", False, 99, True), ("0011", False, 9999, False), ("", False, 11, False), ("1F", False, 99, False),
    ("\u0661", False, 99, False),
])
def test_a_short_decimal_is_unquoted_at_most_three_digits_and_within_the_limit(
        value: str, quoted: bool, limit: int, short: bool) -> None:
    assert is_short_decimal(value, quoted, limit) is short


# ---- access technologies --------------------------------------------------------------------

ACT_27007 = {0: "gsm", 1: "gsm_compact", 2: "umts", 3: "edge", 4: "hsdpa", 5: "hsupa", 6: "hspa", 7: "lte",
             8: "ec_gsm_iot", 9: "lte_nb_iot", 10: "lte", 11: "5gnr", 12: "5gnr", 13: "lte_5gnr"}
"""27.007 §7.3 <AcT>, in ModemManager's names; 10 is E-UTRA on a 5G core, 12 NG-RAN,
13 E-UTRA-NR dual connectivity."""


@pytest.mark.parametrize("number, name", sorted(ACT_27007.items()))
def test_each_act_number_is_named_in_a_registration_report(number: int, name: str) -> None:
    reg = parse_registration(f'+CEREG: 2,1,"1F00","79D903",{number}', family="+CEREG")
    assert reg.act == name
    assert act_name(f" {number} ") == name


@pytest.mark.parametrize("value", ["14", "", "x", "-1"])
def test_an_act_we_do_not_know_is_not_named(value: str) -> None:
    assert act_name(value) is None


def test_parse_errors_quote_at_most_200_characters_of_the_input() -> None:
    raw = "+CSQ: " + "9" * 500
    err = lex.fail("too long to show", raw)
    assert err.raw == raw and str(err) == f"too long to show: {raw[:200]!r}"

"""Quoted fields keep their commas (issue 29: splitting inside quotes passed every test,
all 293 corpus vectors included, because no vector quotes a comma). Operator names do:
"AT&T, Inc." is what a roaming router's +COPS? says, and the name and the technology after
it are what the status, the console and the health events show."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.modem.lex import split_fields
from agent.modem.parse import parse_cops_query


def test_an_operator_name_with_a_comma_is_one_field() -> None:
    op = parse_cops_query('+COPS: 0,0,"AT&T, Inc.",7\r\n')
    assert (op.mode, op.format, op.oper, op.act) == (0, 0, "AT&T, Inc.", "lte")


def test_split_fields_keeps_quoted_commas_and_says_what_was_quoted() -> None:
    assert split_fields('1,"a,b",,"",2') == [("1", False), ("a,b", True), ("", False), ("", True), ("2", False)]


unquoted = st.text(alphabet="0123456789ABCabc .-:()", max_size=6).map(str.strip)
quoted = st.text(alphabet='0123456789ABCabc .-:(),', max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(unquoted.map(lambda v: (v, False)), quoted.map(lambda v: (v, True))), min_size=1, max_size=8))
def test_split_fields_inverts_joining_fields_with_commas(fields: list[tuple[str, bool]]) -> None:
    """The oracle is the writer: fields a modem joins with commas, quoting some (which may
    hold commas), split back into the same fields. Blanks around an unquoted field are
    not part of it (a modem may pad)."""
    line = ",".join(f'"{v}"' if q else v for v, q in fields)
    assert split_fields(line) == [(v.strip(), q) for v, q in fields]

"""The line classifier (agent/modem/codes.py): every final code and URC, in upper and lower
case, and the framer and ``decode`` reading lines the same way."""

from __future__ import annotations

import pytest

from agent.errors import AtCommandError, AtTimeout
from agent.modem import codes
from agent.modem.codes import AtErrorCode, LineKind, classify_line
from agent.modem.decode import decode_stream
from tests.unit.at_fakes import async_test, in_flight

FINAL_SAMPLES: list[tuple[str, LineKind, str]] = [
    *((code, LineKind.OK, code) for code in codes.FINAL_OK),
    ("CONNECT 150000000", LineKind.OK, "CONNECT"),
    *((code, LineKind.ERROR, code) for code in codes.FINAL_ERROR),
    ("+CME ERROR: 10", LineKind.ERROR, "+CME ERROR"),
    ("+CME ERROR: SIM not inserted", LineKind.ERROR, "+CME ERROR"),
    ("+CMS ERROR: 500", LineKind.ERROR, "+CMS ERROR"),
    ("MODEM ERROR: 5", LineKind.ERROR, "MODEM ERROR"),
]
"""One line per final code the table declares (and its code-carrying forms)."""

URC_SAMPLES: list[tuple[str, str]] = [
    *((f"{prefix}: 1,2", prefix) for prefix in codes.URC_PREFIXES),
    *((f"{prefix}1", prefix) for prefix in codes.URC_BARE_PREFIXES),
    *((f'{prefix}: "00A4"', prefix) for prefix in codes.URC_ONLY_PREFIXES),
    *((line, line) for line in codes.URC_LINES),
    *((f"{family}: 1", family) for family in codes.REGISTRATION_FAMILIES),  # URC arity
]
"""One line per URC the table declares."""


def both_cases(samples: list[tuple]) -> list[tuple]:  # type: ignore[type-arg]
    return [(s[0].upper(), *s[1:]) for s in samples] + [(s[0].lower(), *s[1:]) for s in samples]


def test_every_declared_code_has_a_sample() -> None:
    finals = {family for _, _, family in FINAL_SAMPLES}
    assert finals >= set(codes.FINAL_OK) | set(codes.FINAL_ERROR) | {p.rstrip(":") for p in codes.FINAL_ERROR_PREFIXES}
    urcs = {family for _, family in URC_SAMPLES}
    assert urcs == set(codes.URC_PREFIXES) | set(codes.URC_BARE_PREFIXES) | set(codes.URC_LINES) | set(
        codes.REGISTRATION_FAMILIES
    ) | set(codes.URC_ONLY_PREFIXES)


def test_a_remote_sim_request_is_a_urc_while_the_hosts_answer_is_in_flight() -> None:
    """The module writes its next ``+SIMDATA:`` before the OK of ``AT+SIMDATA=``: the owner
    rule must not make it an answer line of the command in flight."""
    assert classify_line('+SIMDATA: "00B0000009"', ("+SIMDATA",)).kind is LineKind.URC
    assert classify_line("+SIMRESET", ("+SIMDATA",)).kind is LineKind.URC


@pytest.mark.parametrize(("line", "kind", "family"), both_cases(FINAL_SAMPLES))
def test_every_final_code_in_either_case(line: str, kind: LineKind, family: str) -> None:
    found = classify_line(line)
    assert (found.kind, found.family) == (kind, family)
    assert found.is_final
    assert (found.error is not None) == (kind is LineKind.ERROR)
    assert codes.final_line(line) is not None and codes.is_urc(line) is None


@pytest.mark.parametrize(("line", "family"), both_cases(URC_SAMPLES))
def test_every_urc_in_either_case(line: str, family: str) -> None:
    assert classify_line(line) == (LineKind.URC, family, None)
    assert codes.is_urc(line) == family
    assert codes.final_line(line) is None


def test_lower_case_cme_error_names_its_code() -> None:
    assert classify_line("+cme error: 10").error == AtErrorCode("CME", 10, "SIM not inserted")


@pytest.mark.parametrize(
    ("line", "final"),
    [("+CME ERROR:", False), ("+cms error:", False), ("+CME ERROR: ", True), ("+CMS ERROR: ", True),
     ("MODEM ERROR:", False), ("MODEM ERROR: apple", False), ("modem error: 3", True)],
)
def test_the_bare_error_prefix_decision(line: str, final: bool) -> None:
    """Decided once (module doc): nothing after the colon is not final; a blank is."""
    assert classify_line(line).is_final is final


@pytest.mark.parametrize(
    ("line", "owners", "kind"),
    [
        ("+CREG: 2,1", None, LineKind.TEXT),  # <n>,<stat>: an answer, no command context
        ("+CREG: 1", None, LineKind.URC),  # <stat>: a URC
        ("+CREG: 2,1", ("+CSQ",), LineKind.URC),  # another command in flight: not its answer
        ("+CREG: 1", ("+CREG",), LineKind.TEXT),  # its own command in flight
        ("+CREG: 2,1", (), LineKind.URC),  # AT (no answer prefix) in flight
        ("+CPIN: READY", None, LineKind.URC),
        ("+cpin: READY", ("+CPIN",), LineKind.TEXT),
        ("+CSQ: 20,99", None, LineKind.TEXT),
        ("OKAY", None, LineKind.TEXT),
        ("RINGING", None, LineKind.TEXT),
    ],
)
def test_owners_decide_answer_or_urc(line: str, owners: tuple[str, ...] | None, kind: LineKind) -> None:
    assert classify_line(line, owners).kind is kind


# ---- moved from test_at_framing.py (classify_final -> classify_line) ----------------------


@pytest.mark.parametrize(
    "line,kind",
    [("OK", "ok"), ("ERROR", "fail"), ("+CME ERROR: 10", "fail"), ("+CMS ERROR: 500", "fail"),
     ("NO CARRIER", "fail"), ("BUSY", "fail"), ("NO ANSWER", "fail"), ("NO DIALTONE", "fail"),
     ("CONNECT", "connect"), ("CONNECT 150000000", "connect"), ("+CSQ: 1,2", None), ("OKAY", None)],
)
def test_final_result_codes(line: str, kind: str | None) -> None:
    found = classify_line(line)
    old_kind = {LineKind.ERROR: "fail", LineKind.TEXT: None, LineKind.URC: None}.get(found.kind)
    if found.kind is LineKind.OK:
        old_kind = "connect" if found.family == "CONNECT" else "ok"
    assert old_kind == kind


# ---- moved from test_parse_units.py (errors, finals, echo, URCs) ---------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("+CME ERROR: 10", AtErrorCode("CME", 10, "SIM not inserted")),
        ("+CME ERROR: SIM not inserted", AtErrorCode("CME", 10, "SIM not inserted")),
        ("+CME ERROR: 9999", AtErrorCode("CME", 9999, "unknown CME error 9999")),
        ("+CMS ERROR: 302", AtErrorCode("CMS", 302, "operation not allowed")),
        ("+CMS ERROR: 42", AtErrorCode("CMS", 42, "network RP cause 42")),
        ("+CME ERROR: ", AtErrorCode("CME", None, "unknown")),
        ("MODEM ERROR: 5", AtErrorCode("MODEM", 5, "modem error 5")),
        ("ERROR", AtErrorCode("MODEM", None, "error")),
        ("MODEM ERROR: apple", None),
        ("OK", None),
        ("+CREG: 1", None),
    ],
)
def test_parse_error_names_codes(line: str, expected: AtErrorCode | None) -> None:
    assert codes.parse_error(line) == expected


def test_final_result_splits_body_final_and_trailing_urcs() -> None:
    frame = codes.final_result('\r\n+CGACT: 1,1\r\n\r\n+CME ERROR: 30\r\n\r\n+CREG: 1\r\n')
    assert frame is not None
    assert frame.body == ("+CGACT: 1,1",)
    assert frame.final.is_error and frame.final.error == AtErrorCode("CME", 30, "no network service")
    assert frame.trailing == ("+CREG: 1",)
    assert codes.final_result("\r\n+CSQ: 20,99\r\n") is None
    assert codes.final_result("\r\nCONNECT\r\n").final.is_error is False  # type: ignore[union-attr]


def test_strip_echo_with_command_only_removes_that_command() -> None:
    assert codes.strip_echo("AT+CSQ\r\r\n+CSQ: 20,99\r\n", "AT+CSQ") == "\r\n+CSQ: 20,99\r\n"
    assert codes.strip_echo('\r\n+CREG: 1\r\nAT+CSQ\r', "AT+CSQ") == '\r\n+CREG: 1\r\nAT+CSQ\r'
    assert codes.strip_echo("at+csq\r\n+CSQ: 1,1", "AT+CSQ") == "\r\n+CSQ: 1,1"


@pytest.mark.parametrize(
    ("line", "family"),
    [
        ("+CREG: 1", "+CREG"),
        ('+CGREG: 1,"8BE3","00002B5D",3', "+CGREG"),
        ('+CEREG: 1,"1F00","79D903",7', "+CEREG"),
        ("+C5GREG: 1,1F00,79D903,11,6,ABCDEF", "+C5GREG"),
        ("+CREG: 1,3", None),  # <n>,<stat>: the answer to AT+CREG?
        ('+CEREG: 2,1,"1F00","79D903",7', None),
        ("+CGEV: NW DETACH", "+CGEV"),
        ("+CPIN: READY", "+CPIN"),
        ("+CFUN: 1", "+CFUN"),
        ("RDY", "RDY"),
        ("RING", "RING"),
        ("^MODE: 17,17", "^MODE"),
        ("+QIND: SMS DONE", "+QIND"),
        ("+VSIMSTAT: 1,\"READY\"", "+VSIMSTAT"),
        ("+CSQ: 20,99", None),
        ("OK", None),
        ("", None),
    ],
)
def test_is_urc(line: str, family: str | None) -> None:
    assert codes.is_urc(line) == family


# ---- the framer and decode agree with the classifier ----------------------------------------

SHORT = 0.3
"""Seconds a command waits in these tests: a final code ends it long before."""


@pytest.mark.parametrize(("line", "kind", "family"), both_cases(FINAL_SAMPLES))
@async_test
async def test_the_framer_ends_a_command_on_every_final_code(line: str, kind: LineKind, family: str) -> None:
    channel, task = await in_flight("AT+SILENT", SHORT)
    channel.data_received(b"\r\n+CSQ: 20,99\r\n" + line.encode() + b"\r\n")
    if kind is LineKind.OK:
        assert (await task).lines == ("+CSQ: 20,99",)
    else:
        with pytest.raises(AtCommandError) as err:
            await task
        assert err.value.code == classify_line(line).error.code  # type: ignore[union-attr]


@pytest.mark.parametrize(("line", "family"), both_cases(URC_SAMPLES))
@async_test
async def test_the_framer_routes_every_urc_and_decode_calls_it_one(line: str, family: str) -> None:
    channel, task = await in_flight("AT", SHORT)
    seen: list[str] = []
    channel.subscribe(family, seen.append)
    channel.data_received(b"\r\n" + line.encode() + b"\r\nOK\r\n")
    assert (await task).lines == ()
    assert seen == [line]
    decoded = list(decode_stream([line]))
    assert [(o["kind"], o.get("family")) for o in decoded] in ([("urc", family)], [("unknown", family)])


@async_test
async def test_a_bare_cme_error_is_not_final_for_the_framer_either() -> None:
    channel, task = await in_flight("AT+SILENT", 0.1)
    channel.data_received(b"\r\n+CME ERROR:\r\n")
    with pytest.raises(AtTimeout):
        await task
    assert [o["kind"] for o in decode_stream(["+CME ERROR:"])] == ["unknown"]
    assert [o["kind"] for o in decode_stream(["+CME ERROR: "])] == ["error"]

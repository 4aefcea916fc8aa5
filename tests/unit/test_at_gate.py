"""The one gate for raw AT (``CommandTable.refusal``): every command of a line is judged.

The console used to ask ``answer.refusal()``, which only looked at how a line starts, so
``at +CSQ;+EGMR=...``, ``at E0+QPOWD=1`` and ``at +CSQ;+VSIMSEL=1`` went through (issue 20,
finding 1). Hypothesis builds lines the way V.250 lets a modem read them (commands run
together or after ``;``, any case, blanks anywhere outside strings, any ``AT`` spelling)
with one denied command hidden among allowed ones: none may pass. The console over its
pty is tested in tests/console/test_console_pty.py.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.faces.cli import at as at_cli
from agent.modem import answer, cmdline
from agent.modem.commands import KNOWN, technician_allowed
from agent.modem.dialects import DIALECTS, get_dialect
from agent.sim import SimProfile

DENIED = [
    '+EGMR=1,7,"359000000000099"', "+QPOWD=1", "+QPOWD", "+CFUN=1,1", "+CFUN=0", "+CFUN=4", "+CFUN=16",
    "+VSIMSEL=1", '+VSIMLOAD=1,"8981","4401","00","00","44010","apn"', "+VSIMDEL=1",
    '+CLCK="SC",1,"1234"', '+CPWD="SC","1234","0000"', '+CPIN="1234"', '+CSIM=10,"0020000100"',
    '+CRSM=214,28423,0,0,9,"0849"', '+QCFG="nwscanmode",3', "+QPRTPARA=3", '+QNVW=550,0,"0100"',
    '+QNVFW="/nv/item_files/x","00"', "^NVWR=1,2,3", '+QFOTADL="http://x/fw.zip"', "+CPWROFF", "+UFWUPD=3",
    "+UFWINSTALL", "+UFACTORY=0,1", "+CPOF", "+CRESET", '+SIMEI="359000000000099"', "#REBOOT", "#SHDN",
    "^RESET", "+COPS=2", "+COPS=3,0", '+CSCS="UCS2"', '+CGDCONT=1,"IP","evil.example"',
    "&F", "Z", "&W", "V0", "Q1", "S3=10", "S4=0", "D*99#", "H", "O", "A",
]
"""One of each thing docs/console.md says ``at`` refuses, in every dialect's spelling."""

ALLOWED = [
    "+CSQ", "+CESQ", "+COPS?", "+COPS=?", "+CFUN?", "+CFUN=?", "+CEREG?", "+CGSN", "+CIMI", "+CCID", "I", "E0",
    "E1", "S7?", "+VSIMLIST?", "+VSIMSEL?", "+CRSM=176,12258,0,0,10", '+QCFG="nwscanmode"', '+CLCK="SC",2',
    "+CPIN?", "+CGDCONT?", "+XYZZY=1", "+CGPADDR=1", '+CUSD=1,"*100#",15', "+QNWINFO", "+QCSQ",
    '+CGDCONT=?', "^SYSINFO",
]
"""Reading commands a technician needs; an unknown command (``+XYZZY``) passes too."""

PREFIXES = ["AT", "at", "At", "aT", " AT", "A T", "AT "]


def _extended(command: str) -> bool:
    return command[0] in "+^*$%!#"


def _set_form(command: str) -> bool:
    return "=" in command and not command.endswith("?")


def _separator(before: str, after: str, lenient: bool) -> st.SearchStrategy[str]:
    """How two commands may follow each other so that a modem still reads two commands:
    ``;`` always; nothing before an extended command, between basic commands, and after an
    extended read or test form. After a set form V.250 (5.4.1) runs the arguments to ``;``;
    a ``lenient`` modem may still find an extended command right after them. After a bare
    extended name a basic letter would only lengthen the name, for a modem as for the gate."""
    if _set_form(before):
        return st.sampled_from([";", ""]) if lenient and _extended(after) else st.just(";")
    if _extended(after) or (not _extended(before) and not before.startswith("D")) or before.endswith("?"):
        return st.sampled_from([";", ""])
    return st.just(";")


def _vary(text: str, draw: st.DrawFn) -> str:
    """Case flipped and blanks put in at random, outside quoted strings only."""
    out, quoted = [], False
    for char in text:
        if char == '"':
            quoted = not quoted
            out.append(char)
            continue
        if quoted:
            out.append(char)
            continue
        out.append(char.lower() if draw(st.booleans()) else char.upper())
        if draw(st.integers(0, 9)) == 0:
            out.append(" ")
    return "".join(out)


@st.composite
def lines(draw: st.DrawFn, denied: bool) -> str:
    commands = draw(st.lists(st.sampled_from(ALLOWED), min_size=0 if denied else 1, max_size=4))
    if denied:
        commands.insert(draw(st.integers(0, len(commands))), draw(st.sampled_from(DENIED)))
    body = commands[0]
    for before, after in itertools.pairwise(commands):
        body += draw(_separator(before, after, lenient=denied)) + after
    return draw(st.sampled_from(PREFIXES)) + _vary(body, draw)


@settings(max_examples=600, deadline=None)
@given(lines(denied=True))
def test_a_denied_command_hidden_among_allowed_ones_never_passes(line: str) -> None:
    assert KNOWN.refusal(line) is not None, line


@settings(max_examples=300, deadline=None)
@given(lines(denied=False))
def test_lines_of_allowed_commands_pass(line: str) -> None:
    assert KNOWN.refusal(line) is None, (line, KNOWN.refusal(line))


@pytest.mark.parametrize("line", [
    'at +CSQ;+EGMR=1,7,"359000000000099"', "AT E0+QPOWD=1", "at +CSQ;+VSIMSEL=1", "AT+CMEE=1+QPOWD",
    "AT+CMEE=1&F", "ATE0V1", "ATI;Z", "AT+COPS?Z", "AT+CSQ;AT+EGMR=1", 'AT+CLCK="SC",1,"1234"', "a/", "A/",
    "ATA/", "at+cpwroff", "AT^nvwr=1", "AT#reboot",
])
def test_known_ways_around_the_old_prefix_gate_are_refused(line: str) -> None:
    assert not technician_allowed(line)


@pytest.mark.parametrize(("line", "why"), [
    ("AT+CSQ\rAT+EGMR=1", "control or non-ASCII"),  # a second line for the modem, unseen by a prefix check
    ("AT+CSQ\n", "control or non-ASCII"),
    ("AT+COPS=1,2,\"4401\u00e9\"", "control or non-ASCII"),
    ('AT+CUSD=1,"*100#;+EGMR=1', "not closed"),
    ('AT+CUSD=1,"a\\";+EGMR=1;"x"', "backslash"),  # a modem taking \" as a quote would run +EGMR
    ("+CSQ", "does not start with AT"),
    ("AT=1", "where a command should begin"),
    ("AT+X=" + "+A" * 2000, "longer than 256"),  # and cheap to refuse: no quadratic re-reading
])
def test_lines_the_gate_cannot_read_like_a_modem_are_refused(line: str, why: str) -> None:
    refusal = KNOWN.refusal(line)
    assert refusal is not None and why in refusal


def test_a_refusal_names_the_command_and_why() -> None:
    assert KNOWN.refusal('at +CSQ;+EGMR=1,7,"1"') == (
        "AT+EGMR refused: writes the modem's identity (IMEI) or NV items: not undoable from here, "
        "and illegal in many countries")
    assert "use modem-reset" in (KNOWN.refusal("AT+CFUN=1,1") or "")
    assert "use swap" in (KNOWN.refusal("AT+VSIMSEL=2") or "")
    assert (KNOWN.refusal("ATS3=13") or "").startswith("ATS3=13 refused")


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_the_gate_refuses_what_each_dialect_declares_refused(name: str) -> None:
    table = get_dialect(name).commands
    for command, definition in table.items():
        assert command in KNOWN
        assert KNOWN[command].refusal == definition.refusal, (name, command)


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_each_dialects_own_reset_and_profile_commands_are_refused(name: str) -> None:
    dialect = get_dialect(name)
    assert not technician_allowed(dialect.reset_command)
    if dialect.has_vsim:
        profile = SimProfile("8981100000001000019", "440100000100001", bytes(16), bytes(16), "44010", "x.lab")
        assert not technician_allowed(dialect.vsim_load(1, profile))
        assert not technician_allowed(dialect.vsim_select(1))
        assert technician_allowed(dialect.vsim_query())


def test_there_is_one_gate() -> None:
    assert not hasattr(answer, "refusal") and not hasattr(answer, "TECHNICIAN_REFUSED")


def test_pocket_agent_at_asks_the_same_gate(caplog: pytest.LogCaptureFixture) -> None:
    args = type("Args", (), {"command": "+CSQ;+EGMR=1,7,\"1\"", "port": "/nonexistent", "baud": 115200,
                             "board": "virtual", "timeout": None})()
    assert at_cli.main(args) == 2  # refused before the port is opened
    assert "AT+EGMR refused" in caplog.text


def test_the_lexer_lists_every_command_in_order() -> None:
    parts = cmdline.parse('ATE0+CSQ;+CGDCONT=1,"IP","a;b";S7?&FZ')
    assert [(p.name, p.form) for p in parts] == [
        ("E", "exec"), ("+CSQ", "exec"), ("+CGDCONT", "set"), ("S", "read"), ("&F", "exec"), ("Z", "exec")]
    assert parts[2].args == '1,"IP","a;b"'


def test_a_sensitive_command_anywhere_in_a_line_makes_it_sensitive() -> None:
    assert KNOWN.is_sensitive('ATE0+CSQ+VSIMLOAD=1,"00"')  # not the first name of its part
    assert KNOWN.is_sensitive('AT+CSQ;+VSIMLOAD=1,"\u00e9"')  # even a line the gate cannot read
    assert not KNOWN.is_sensitive('AT+CUSD=1,"+VSIMLOAD"')

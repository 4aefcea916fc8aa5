"""The command table (agent/modem/commands.py): timeouts, the technician's deny-list, the
dialects' overrides, and one JSON vocabulary for ``decode`` and ``at``."""

from __future__ import annotations

import pytest

from agent.logs import TRACE
from agent.modem import commands
from agent.modem.answer import decode as at_decode
from agent.modem.answer import describe_error
from agent.modem.at import AtChannel, AtResponse
from agent.modem.commands import KNOWN, CommandDef, split_command_line, technician_allowed
from agent.modem.decode import decode_stream
from agent.modem.dialects import DIALECTS, get_dialect
from agent.modem.driver import Modem
from tests.unit.at_fakes import FakeModem, Faults, async_test

# ---- moved from test_at_framing.py ----------------------------------------------------------


def test_named_timeouts_per_command() -> None:
    assert commands.timeout_for("AT+COPS=?") == commands.COPS_SCAN_TIMEOUT.seconds
    assert commands.timeout_for("AT+CGACT=1,1") == commands.CGACT_TIMEOUT.seconds
    assert commands.timeout_for("AT+CFUN=0") == commands.CFUN_TIMEOUT.seconds
    assert commands.timeout_for("AT+CSQ") == commands.DEFAULT_TIMEOUT


def test_timeouts_depend_on_the_form_and_the_longest_command_of_a_line() -> None:
    assert commands.timeout_for("AT+COPS?") == commands.DEFAULT_TIMEOUT  # a read is local
    assert commands.timeout_for("at+cops=0") == commands.COPS_SET_TIMEOUT.seconds
    assert commands.timeout_for("AT+CSQ;+CGATT=1") == commands.CGATT_TIMEOUT.seconds
    assert all(t.reason for t in (commands.COPS_SCAN_TIMEOUT, commands.VSIM_TIMEOUT))


# ---- command lines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("AT+CSQ", [("+CSQ", "exec")]),
        ("AT+CREG?", [("+CREG", "read")]),
        ("AT+COPS=?", [("+COPS", "test")]),
        ('at+cgdcont=1,"IP","a;b"', [("+CGDCONT", "set")]),
        ("AT+CSQ;+CESQ", [("+CSQ", "exec"), ("+CESQ", "exec")]),
        ('AT+CMGS="+819012345678"', [("+CMGS", "set")]),
        ("AT ^SYSCFG = 2", [("^SYSCFG", "set")]),
        ("ATE0", []),
        ("AT", []),
    ],
)
def test_split_command_line(line: str, expected: list[tuple[str, str]]) -> None:
    assert split_command_line(line) == expected


# ---- the technician's deny-list --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "allowed"),
    [
        ("AT+CSQ", True),
        ("AT+CEREG?", True),
        ("AT+XYZZY=1", True),  # unknown commands: a deny-list, not an allow-list
        ("AT+VSIMSEL?", True),
        ("AT+VSIMSEL=1", False),  # switches the SIM behind the agent's back
        ('AT+VSIMLOAD=1,"8981","4401","00","00","44010","apn"', False),
        ('at+vsimload=1,"x"', False),
        ("AT + VSIM LOAD = 1", False),  # V.250: the modem ignores the blanks
        ('AT+CSQ;+VSIMLOAD=1,"x"', False),  # hidden behind another command
        ("ATE0+VSIMLOAD=1", False),
        ('AT+CUSD=1,"+VSIMLOAD",15', True),  # only inside a quoted argument
        ("AT+CLCK=\"SC\",1,\"1234\"", False),
        ("A/", False),  # repeats the agent's last line, maybe the vSIM load
        ("a/", False),
        ("ATA/", False),  # what `pocket-agent at` makes of a typed "A/"
    ],
)
def test_technician_allowed(line: str, allowed: bool) -> None:
    assert technician_allowed(line) is allowed


def test_refusals_are_derived_from_the_table_and_say_why() -> None:
    refused = {name for name, d in KNOWN.items() if not d.technician}
    assert {"+VSIMLOAD", "+CPWD", "+VSIMDEL", "+QPOWD", "+EGMR"} <= refused
    assert all(KNOWN[name].refusal for name in refused)
    assert "Ki" in (KNOWN.refusal("AT+VSIMLOAD=1") or "")


def test_every_sensitive_command_is_refused_to_technicians() -> None:
    assert all(not d.technician for d in KNOWN.values() if d.sensitive)


# ---- the table and the dialects -----------------------------------------------------------


def test_a_command_is_declared_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        commands.CommandTable([CommandDef("+CSQ", "a"), CommandDef("+CSQ", "b")])


def test_every_command_with_a_parser_names_its_fields() -> None:
    assert [name for name, d in KNOWN.items() if d.parser is not None and d.fields is None] == []


def test_dialect_tables_override_only_what_differs() -> None:
    for name in DIALECTS:
        table = get_dialect(name).commands
        for command, definition in table.items():
            if command in commands.BASE:
                assert definition is commands.BASE[command], (name, command)
    virtual = get_dialect("virtual").commands
    assert virtual.is_sensitive('AT+VSIMLOAD=1,"x"') and virtual.timeout_for("AT+VSIMSEL=2") == 20.0
    assert "+VSIMLOAD" not in get_dialect("generic").commands


def test_changed_overrides_one_field() -> None:
    slow = commands.BASE.changed("+CSQ", timeouts={"exec": commands.Timeout(9.0, "a slow firmware")})
    assert slow.timeout_for("AT+CSQ") == 9.0 and commands.BASE.timeout_for("AT+CSQ") == commands.DEFAULT_TIMEOUT
    assert slow["+CESQ"] is commands.BASE["+CESQ"]


def test_cfun_power_state_is_the_dialects() -> None:
    assert get_dialect("generic").cfun_power_state(0) == "off"
    assert get_dialect("ublox").cfun_power_state(0) == "low"
    assert get_dialect("ublox").cfun_power_state(19) == "low"
    assert [get_dialect("virtual").cfun_power_state(f) for f in (0, 1, 4)] == ["off", "on", "low"]


# ---- one vocabulary ------------------------------------------------------------------------

ANSWERS: dict[str, tuple[str, list[str]]] = {
    "+CREG": ("AT+CREG?", ['+CREG: 2,1,"8BE3","00002B5D",7']),
    "+CGREG": ("AT+CGREG?", ['+CGREG: 2,5,"8BE3","00002B5D",2']),
    "+CEREG": ("AT+CEREG?", ['+CEREG: 2,1,"1F00","79D903",7']),
    "+C5GREG": ("AT+C5GREG?", ["+C5GREG: 2,1,1F00,79D903,11"]),
    "+CSQ": ("AT+CSQ", ["+CSQ: 20,99"]),
    "+CESQ": ("AT+CESQ", ["+CESQ: 99,99,255,255,20,80"]),
    "+COPS": ("AT+COPS?", ['+COPS: 0,0,"NTT DOCOMO",7']),
    "+CPIN": ("AT+CPIN?", ["+CPIN: READY"]),
    "+CIMI": ("AT+CIMI", ["440101234567890"]),
    "+CCID": ("AT+CCID", ["+CCID: 8981100000000000042"]),
    "+ICCID": ("AT+ICCID", ["+ICCID: 8981100000000000042"]),
    "^ICCID": ("AT^ICCID?", ["^ICCID: 8981100000000000042"]),
    "+QCCID": ("AT+QCCID", ["+QCCID: 8981100000000000042"]),
    "+CGSN": ("AT+CGSN", ["356938035643809"]),
    "+GSN": ("AT+GSN", ["356938035643809"]),
    "+CGMI": ("AT+CGMI", ["Quectel"]),
    "+CGMM": ("AT+CGMM", ["EC25"]),
    "+CGMR": ("AT+CGMR", ["EC25EFAR06A06M4G"]),
    "+CGDCONT": ("AT+CGDCONT?", ['+CGDCONT: 1,"IP","internet","0.0.0.0",0,0', '+CGDCONT: 2,"IPV6","","",0,0']),
    "+CGACT": ("AT+CGACT?", ["+CGACT: 1,1", "+CGACT: 2,0"]),
    "+CGPADDR": ("AT+CGPADDR=1", ['+CGPADDR: 1,"198.18.1.2"']),
    "+CGCONTRDP": ("AT+CGCONTRDP=1", ['+CGCONTRDP: 1,5,"internet","198.18.1.2.255.255.255.252","198.18.1.1","8.8.8.8"']),
    "+CFUN": ("AT+CFUN?", ["+CFUN: 4"]),
    "+CGEV": ("AT+CGEREP?", ["+CGEV: NW PDN DEACT 1"]),
    "+CEER": ("AT+CEER", ['+CEER: "No cause"']),
    "+CCLK": ("AT+CCLK?", ['+CCLK: "24/02/29,23:59:59+36"']),
}
"""One real-looking answer per command whose answer we read."""


def test_every_family_has_a_sample_answer() -> None:
    assert set(ANSWERS) == set(commands.FAMILIES)


@pytest.mark.parametrize("family", sorted(ANSWERS))
def test_decode_and_at_print_the_same_vocabulary(family: str) -> None:
    command, lines = ANSWERS[family]
    at_fields = at_decode(AtResponse(command, tuple(lines), "OK"))[family]
    echo = [] if family == "+CGEV" else [command]  # +CGEV is a URC: no command answers it
    objects = [o for o in decode_stream([*echo, *lines, "OK"]) if o["kind"] != "echo"]
    assert len(objects) == 1, objects
    decoded = {k: v for k, v in objects[0].items() if k not in ("family", "kind")}
    assert objects[0]["family"] == family
    assert "error" not in at_fields and decoded == at_fields


def test_cops_is_operator_in_both() -> None:
    at_fields = at_decode(AtResponse("AT+COPS?", ('+COPS: 0,2,"44010",7',), "OK"))["+COPS"]
    assert at_fields == {"mode": 0, "format": 2, "operator": "44010", "act": "lte"}


def test_errors_use_the_same_names_in_both() -> None:
    (decoded,) = list(decode_stream(["+cme error: 10"]))
    assert describe_error("+cme error: 10") == {
        "family": decoded["family"], "code": decoded["code"], "name": decoded["name"]
    } == {"family": "+CME ERROR", "code": 10, "name": "SIM not inserted"}


# ---- the framer and the driver read the table ---------------------------------------------

SECRET = "00112233445566778899AABBCCDDEEFF"


@async_test
async def test_a_command_the_table_marks_sensitive_is_redacted_without_being_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(TRACE)
    channel = AtChannel()
    FakeModem(channel, Faults(echo=True))
    resp = await channel.command(f'AT+VSIMLOAD=1,"8981","4401","{SECRET}","{SECRET}","44010","apn"')
    assert resp.command == "AT+VSIMLOAD=<redacted>" and resp.lines == ()
    assert SECRET not in caplog.text and "<sensitive command" in caplog.text


async def _fake_opener(port: str, baud: int) -> AtChannel:
    channel = AtChannel()
    FakeModem(channel, Faults())
    return channel


@async_test
async def test_the_driver_gives_the_channel_its_dialects_table() -> None:
    for name in DIALECTS:
        modem = Modem("fake", name, opener=_fake_opener)
        await modem.open()
        assert modem.channel is not None and modem.channel.commands is get_dialect(name).commands
        await modem.close()


@async_test
async def test_a_lower_case_registration_urc_reaches_the_driver() -> None:
    modem = Modem("fake", "generic", opener=_fake_opener)
    await modem.open()
    assert modem.channel is not None
    modem.channel.data_received(b'\r\n+cereg: 5,"1f00","79d903",7\r\n')
    assert modem.last_registration is not None
    assert (modem.last_registration.stat, modem.last_registration.tac) == (5, 0x1F00)
    await modem.close()

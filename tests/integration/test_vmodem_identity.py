"""Identity, capabilities and ``=?`` test forms of the virtual modem, as an EC25 answers them.

Driven over the modem's real pty through pyserial. Every command's test form is checked
to list ranges, not the current value (the bug: ``AT+CSQ=?`` gave ``+CSQ: 28,99``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import serial

from agent.modem import parse
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.ident import EC25_IDENTITY, TEST_FORMS, WS46_MODES
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from tests.integration.ec25_port import ask, info, pocket_lab_modem, read_until

EC25 = ModemConfig(time_scale=FAST_SCALE, **EC25_IDENTITY)


@pytest.fixture(scope="module")
def port() -> Iterator[serial.Serial]:
    with VirtualModem(EC25) as vm, serial.serial_for_url(vm.path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        yield p


def test_ati_and_revision_commands_answer_as_the_ec25(port: serial.Serial) -> None:
    assert info(port, "ATI") == ["Quectel", "EC25", "Revision: EC25EFAR06A06M4G"]
    assert info(port, "AT+CGMI") == info(port, "AT+GMI") == ["Quectel"]
    assert info(port, "AT+CGMM") == info(port, "AT+GMM") == ["EC25"]
    assert info(port, "AT+CGMR") == info(port, "AT+GMR") == ["EC25EFAR06A06M4G"]
    assert info(port, "AT+QGMR") == ["EC25EFAR06A06M4G_01.001.01.001"]
    assert parse.parse_imei("\n".join(info(port, "AT+GSN"))) == EC25.imei


def test_gcap_and_ws46_declare_lte(port: serial.Serial) -> None:
    assert info(port, "AT+GCAP") == ["+GCAP: +CGSM"]
    test = info(port, "AT+WS46=?")[0]
    offered = {int(v) for v in re.findall(r"\d+", test.split(":", 1)[1])}
    assert offered == set(WS46_MODES) and 28 in offered  # E-UTRAN only is on the list
    assert info(port, "AT+WS46?") == ["+WS46: 25"]
    assert info(port, "AT+WS46=28") == [] and info(port, "AT+WS46?") == ["+WS46: 28"]
    assert ask(port, "AT+WS46=99")[1] == "+CME ERROR: 50"
    info(port, "AT+WS46=25")


@pytest.mark.parametrize("command", sorted(TEST_FORMS))
def test_every_test_form_lists_ranges(port: serial.Serial, command: str) -> None:
    lines = info(port, f"AT{command}=?")
    assert lines == TEST_FORMS[command]
    for line in lines:  # a range list, never a bare current value
        assert "(" in line and line.startswith(command + ": ")


@pytest.mark.parametrize(
    ("command", "current"),
    [("AT+CSQ", r"\+CSQ: \d+,99"), ("AT+CESQ", r"\+CESQ: 99,99,255,255,\d+,\d+"), ("AT+CGMI", "Quectel")],
)
def test_test_form_differs_from_the_current_value(port: serial.Serial, command: str, current: str) -> None:
    assert re.fullmatch(current, info(port, command)[0])
    assert info(port, command + "=?") != info(port, command)


@pytest.mark.parametrize("command", ["AT+CREG=?", "AT+CGREG=?", "AT+CEREG=?"])
def test_registration_test_forms(port: serial.Serial, command: str) -> None:
    assert info(port, command) == [command[2:-2] + ": (0-3)"]


def test_state_dependent_test_forms(port: serial.Serial) -> None:
    assert info(port, "AT+CGPADDR=?") == ["+CGPADDR: (1)"]
    assert info(port, "AT+CGCONTRDP=?") == ["+CGCONTRDP: ()"]
    assert info(port, "AT+VSIMSEL=?") == ["+VSIMSEL: (0,1,2)"]
    assert info(port, "AT+VSIMDEL=?") == ["+VSIMDEL: (1,2)"]


def test_cscs_query_set_and_reject(port: serial.Serial) -> None:
    assert info(port, "AT+CSCS?") == ['+CSCS: "GSM"']
    info(port, 'AT+CSCS="UCS2"')
    assert info(port, "AT+CSCS?") == ['+CSCS: "UCS2"']
    assert ask(port, 'AT+CSCS="KOI8"')[1] == "+CME ERROR: 50"
    info(port, 'AT+CSCS="GSM"')


def test_cind_reports_signal_service_and_gprs(port: serial.Serial) -> None:
    values = [int(v) for v in info(port, "AT+CIND?")[0].split(": ")[1].split(",")]
    assert len(values) == 8
    assert values[1] == 5 and values[2] == 1 and values[6] == 1  # -85 dBm: 5 bars, in service
    assert ask(port, "AT+CIND=1")[1] == "+CME ERROR: 4"


def test_cmer_cgerep_ctzu_ctzr_cemode_cpls(port: serial.Serial) -> None:
    assert info(port, "AT+CMER?") == ["+CMER: 0,0,0,0,0"]
    info(port, "AT+CMER=3,0,0,1")
    assert info(port, "AT+CMER?") == ["+CMER: 3,0,0,1,0"]
    info(port, "AT+CMER=0,0,0,0")  # this modem is shared by the module's tests: no +CIEV later
    assert info(port, "AT+CGEREP?") == ["+CGEREP: 1,0"]
    info(port, "AT+CGEREP=2,1")
    assert info(port, "AT+CGEREP?") == ["+CGEREP: 2,1"]
    assert ask(port, "AT+CGEREP=5")[1] == "+CME ERROR: 50"
    for name, default, good, bad in (("+CTZU", 0, 1, 2), ("+CTZR", 0, 2, 3), ("+CEMODE", 2, 0, 4), ("+CPLS", 0, 1, 3)):
        assert info(port, f"AT{name}?") == [f"{name}: {default}"]
        info(port, f"AT{name}={good}")
        assert info(port, f"AT{name}?") == [f"{name}: {good}"]
        assert ask(port, f"AT{name}={bad}")[1] == "+CME ERROR: 50"
        info(port, f"AT{name}={default}")


def test_cnum_cpol_cpas(port: serial.Serial) -> None:
    assert info(port, "AT+CNUM") == ['+CNUM: "","+818034500001",145']
    assert info(port, "AT+CPOL?") == ['+CPOL: 1,2,"44010",1,0,1,1']
    info(port, 'AT+CPOL=2,2,"44020"')
    assert info(port, "AT+CPOL?")[1] == '+CPOL: 2,2,"44020",1,0,1,1'
    assert ask(port, 'AT+CPOL=9,2,"44020"')[1] == "+CME ERROR: 21"
    assert ask(port, 'AT+CPOL=3,2,"4x"')[1] == "+CME ERROR: 50"
    assert info(port, "AT+CPAS") == ["+CPAS: 0"]
    assert info(port, "AT+CPOL=,2") == []  # format only, as ModemManager sends it
    assert info(port, "AT+IFC?") == ["+IFC: 0,0"] and info(port, "AT+IFC=2,2") == []
    assert ask(port, "AT+IFC=1,1")[1] == "+CME ERROR: 50"
    assert info(port, "AT+CLCC") == []


def test_atz_restores_echo_and_settings() -> None:
    with VirtualModem(EC25) as vm, serial.serial_for_url(vm.path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        info(p, "AT+CMEE=2")
        info(p, "AT+CSCS=\"UCS2\"")
        p.write(b"ATZ\r")
        assert read_until(p) == b"\r\nOK\r\n"  # ATZ itself was not echoed: E0 until it ran
        p.write(b"AT+CSCS?\r")
        assert read_until(p) == b'AT+CSCS?\r\r\n+CSCS: "GSM"\r\n\r\nOK\r\n'
        assert ask(p, "ATE0&W")[1] == "OK"
        assert ask(p, "AT+WS46=99")[1] == "+CME ERROR: 50"  # numeric again


def test_basic_commands_modem_managers_send(port: serial.Serial) -> None:
    for command in ("ATV1", "ATQ0", "ATX4", "AT&C1", "AT&D2", "ATE0V1", "ATX4&C1"):
        assert info(port, command) == []
    assert ask(port, "ATE0Y7")[1] == "ERROR"


def test_verbose_errors_use_the_agents_table(port: serial.Serial) -> None:
    info(port, "AT+CMEE=2")
    assert ask(port, "AT+WS46=99")[1] == "+CME ERROR: incorrect parameters"
    info(port, "AT+CMEE=1")


def test_cgerep_0_silences_cgev() -> None:
    with VirtualModem(EC25) as vm, serial.serial_for_url(vm.path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        vm.call_wait(lambda: vm.cmds.cgev("ME PDN DEACT 1"))
        assert b"+CGEV: ME PDN DEACT 1" in p.read(200)
        info(p, "AT+CGEREP=0")
        vm.call_wait(lambda: vm.cmds.cgev("ME PDN DEACT 1"))
        assert info(p, "AT") == []  # a +CGEV written before this OK would be in the answer


def test_every_command_in_the_table_has_a_test_form(port: serial.Serial) -> None:
    """27.007 4.1: every extended command answers ``=?``; none answers with a current value."""
    with VirtualModem(EC25) as vm:
        names = sorted(vm.cmds.table)
    assert len(names) > 60
    for name in names:
        lines, final = ask(port, f"AT{name}=?")
        assert final == "OK", (name, lines, final)
        for line in lines:  # ranges in parentheses (after a setting's name for +QCFG)
            assert line.startswith(f"{name}: ") and "(" in line, (name, line)


def test_ciev_reports_signal_and_service_changes_when_cmer_asks() -> None:
    with VirtualModem(EC25) as vm, serial.serial_for_url(vm.path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        vm.set_radio_conditions(-110.0, -12.0, 2.0, True)  # no +CMER yet: nothing reported
        # Registered first (the modelled attach after power-up): the indicators below report
        # service, and a read before the attach finished saw none (failed once).
        info(p, "AT+CREG=1")
        if info(p, "AT+CREG?") != ["+CREG: 1,1"]:
            assert read_until(p, b"+CREG: 1\r\n").endswith(b"+CREG: 1\r\n")
        info(p, "AT+CREG=0")  # no +CREG among the +CIEV lines awaited below
        assert info(p, "AT+CIND?") == ["+CIND: 5,1,1,0,0,0,1,0"]
        info(p, "AT+CMER=3,0,0,1")
        vm.set_radio_conditions(-85.0, -9.0, 12.0, True)
        assert read_until(p, b"+CIEV: 2,5\r\n") == b"\r\n+CIEV: 2,5\r\n"
        vm.set_radio_conditions(-85.0, -9.0, 12.0, False)  # out of service
        assert read_until(p, b"+CIEV: 7,0\r\n").endswith(b"\r\n+CIEV: 3,0\r\n\r\n+CIEV: 7,0\r\n")


def test_pocket_lab_modem_ec25_names_itself_quectel() -> None:
    with pocket_lab_modem("--fast", "--ec25") as path, serial.serial_for_url(path, timeout=0.02) as p:
        p.write(b"ATE0\r")
        read_until(p)
        assert info(p, "ATI") == ["Quectel", "EC25", "Revision: EC25EFAR06A06M4G"]

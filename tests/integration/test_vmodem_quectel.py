"""Quectel status commands of the virtual modem (+QNWINFO, +QCSQ, +QSPN, +QINISTAT,
+QSIMSTAT, +QCFG="nwscanmode"), over the real pty; they agree with the 27.007 answers."""

from __future__ import annotations

import serial

from agent.modem import parse
from board.virtual.modem.device import VirtualModem
from tests.integration.ec25_port import ask, info, wait_registered


def test_network_info_signal_and_names_agree_with_27007(quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CEREG=1")
    wait_registered(quiet_port, True)
    assert info(quiet_port, "AT+QNWINFO") == ['+QNWINFO: "FDD LTE","44010","LTE BAND 1",300']
    assert info(quiet_port, "AT+QCSQ") == ['+QCSQ: "LTE",-57,-85,160,-9']  # SINR 12 dB -> 160
    cesq = parse.parse_cesq("\n".join(info(quiet_port, "AT+CESQ")))
    assert cesq.rsrp_dbm is not None and -86 <= cesq.rsrp_dbm <= -84
    assert info(quiet_port, "AT+QSPN") == ['+QSPN: "LAB MOBILE","LAB","LAB MOBILE",0,"44010"']
    assert info(quiet_port, "AT+QINISTAT") == ["+QINISTAT: 7"]
    assert info(quiet_port, "AT+QSIMSTAT?") == ["+QSIMSTAT: 0,1"]
    info(quiet_port, "AT+QSIMSTAT=1")
    assert info(quiet_port, "AT+QSIMSTAT?") == ["+QSIMSTAT: 1,1"]
    assert info(quiet_port, "AT+QCSQ=?") == ['+QCSQ: ("NOSERVICE","GSM","WCDMA","LTE")']


def test_no_service_forms(fast_vm: VirtualModem, quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CEREG=1")
    wait_registered(quiet_port, True)
    fast_vm.set_radio_conditions(-85.0, -9.0, 12.0, False)
    wait_registered(quiet_port, False)
    assert info(quiet_port, "AT+QNWINFO") == ["+QNWINFO: No Service"]
    assert info(quiet_port, "AT+QCSQ") == ['+QCSQ: "NOSERVICE"']
    assert ask(quiet_port, "AT+QSPN")[1] == "+CME ERROR: 30"


def test_scan_mode_without_lte_loses_the_lte_cell(quiet_port: serial.Serial) -> None:
    info(quiet_port, "AT+CEREG=1")
    wait_registered(quiet_port, True)
    assert info(quiet_port, 'AT+QCFG="nwscanmode"') == ['+QCFG: "nwscanmode",0']
    info(quiet_port, 'AT+QCFG="nwscanmode",1')  # GSM only
    wait_registered(quiet_port, False)
    assert info(quiet_port, 'AT+QCFG="nwscanmode"') == ['+QCFG: "nwscanmode",1']
    info(quiet_port, 'AT+QCFG="nwscanmode",3')  # LTE only
    wait_registered(quiet_port, True)
    info(quiet_port, "AT+WS46=12")  # the 27.007 way to the same end
    wait_registered(quiet_port, False)
    info(quiet_port, "AT+WS46=25")
    wait_registered(quiet_port, True)
    assert ask(quiet_port, 'AT+QCFG="nwscanmode",7')[1] == "+CME ERROR: 50"
    assert ask(quiet_port, 'AT+QCFG="band"')[1] == "+CME ERROR: 50"

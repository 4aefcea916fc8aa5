"""``pocket-lab sms``: the command line spools a message, the board process delivers it to the
virtual modem, the modem announces it with +CMTI. The board side runs here in the test (as
labd's loop does) so no namespaces are needed; the command line runs as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import serial
from gsmmodem.pdu import decodeSmsPdu

from board.virtual.lab import sms as labsms
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from tests.integration.ec25_port import READ_DEADLINE, info, read_until

REPO = Path(__file__).resolve().parents[2]


def test_cap_notice_names_the_plan() -> None:
    assert labsms.cap_notice({"cap_bytes": 3_000_000_000, "throttle_kbps": 128}) == (
        "You have used 3 GB. Your speed is now limited to 128 kbps until the next period."
    )
    assert "your data allowance" in labsms.cap_notice(None)


def test_spooled_messages_reach_the_modem_in_order(tmp_path: Path) -> None:
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as vm, serial.serial_for_url(vm.path, timeout=0.02) as port:
        port.write(b"ATE0\r")
        read_until(port)
        info(port, "AT+CNMI=2,1")
        labsms.queue_sms(tmp_path, "+819000000200", "first")
        labsms.queue_sms(tmp_path, "+819000000200", "second")
        (tmp_path / labsms.SPOOL / "junk.json").write_text("{not json")
        assert labsms.deliver_pending(tmp_path, vm) == 2
        assert list((tmp_path / labsms.SPOOL).iterdir()) == []  # junk dropped, nothing left
        read_until(port, b'+CMTI: "ME",1\r\n')
        texts = [decodeSmsPdu(info(port, f"AT+CMGR={i}")[1])["text"] for i in (0, 1)]
        assert texts == ["first", "second"]


def test_command_line_waits_for_delivery(tmp_path: Path) -> None:
    env = dict(os.environ, POCKET_LAB_DIR=str(tmp_path))
    cli = [sys.executable, "-m", "board.virtual.lab", "sms", "--text", "cap used up", "--timeout", "5"]
    with VirtualModem(ModemConfig(time_scale=FAST_SCALE)) as vm:
        proc = subprocess.Popen(cli, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + READ_DEADLINE * 3
        while labsms.deliver_pending(tmp_path, vm) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # labd's loop, faster: the spool has no event to wait on
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out.strip() == "delivered from +819000000200: cap used up"
        assert vm.call_wait(lambda: [m.text for m in vm.cmds.sms.me.values()]) == ["cap used up"]


def test_command_line_fails_clearly_without_a_lab(tmp_path: Path) -> None:
    env = dict(os.environ, POCKET_LAB_DIR=str(tmp_path))
    cli = [sys.executable, "-m", "board.virtual.lab", "sms", "--timeout", "0.3"]
    proc = subprocess.run(cli, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1 and "not delivered within 0.3 s" in proc.stderr
    assert list((tmp_path / labsms.SPOOL).iterdir()) == []  # no stale message left behind

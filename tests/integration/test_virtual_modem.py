"""The virtual modem on its own pty, and the recovery ladder against it hanging."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from agent.errors import AtTimeout, PortClosed
from agent.modem import at, commands
from agent.modem.at import open_channel
from agent.modem.driver import Modem
from agent.modem.recovery import LadderPolicy, RecoveryLadder
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, CarrierReject, ModemConfig, NullCarrier
from tests.integration.ec25_port import pocket_lab_modem
from tests.unit.at_fakes import async_test

REPO = Path(__file__).resolve().parents[2]
READ_DEADLINE = 2.0
"""Seconds a raw-serial read waits for the modem thread (generous; usually < 10 ms)."""


@pytest.fixture
def vmodem() -> Iterator[VirtualModem]:
    modem = VirtualModem(ModemConfig(time_scale=FAST_SCALE))
    modem.start()
    yield modem
    modem.stop()


def exchange(port: serial.Serial, command: str, until: bytes = b"OK\r\n") -> bytes:
    """Write a command and read until ``until`` (or an error) with a deadline."""
    port.write(command.encode() + b"\r")
    deadline = time.monotonic() + READ_DEADLINE
    buf = b""
    while time.monotonic() < deadline:
        buf += port.read(256)
        lines = buf.split(b"\r\n")[:-1]  # complete lines only: a read may end mid-line
        if any(ln == until.strip() or b"ERROR" in ln for ln in lines):
            break
    return buf


def test_echo_until_ate0_and_crlf_framing(vmodem: VirtualModem) -> None:
    # A real EC25 echoes each character as it arrives, the CR included, then frames the
    # answer in CR LF: "AT\r" + "\r\nOK\r\n".
    with serial.serial_for_url(vmodem.path, timeout=0.05) as port:
        assert exchange(port, "AT") == b"AT\r\r\nOK\r\n"
        assert exchange(port, "ATE0") == b"ATE0\r\r\nOK\r\n"
        assert exchange(port, "AT+CGMI") == b"\r\nPocketLab\r\n\r\nOK\r\n"


def test_cme_errors_follow_cmee(vmodem: VirtualModem) -> None:
    with serial.serial_for_url(vmodem.path, timeout=0.05) as port:
        exchange(port, "ATE0")
        assert b"+CME ERROR: 50" in exchange(port, "AT+CGDCONT=99")
        exchange(port, "AT+CMEE=2")
        assert b"+CME ERROR: incorrect parameters" in exchange(port, "AT+CGDCONT=99")
        exchange(port, "AT+CMEE=0")
        assert exchange(port, "AT+CGDCONT=99").strip() == b"ERROR"


def test_vsim_extension_examples_from_the_doc(vmodem: VirtualModem) -> None:
    ki = "000102030405060708090A0B0C0D0E0F"
    with serial.serial_for_url(vmodem.path, timeout=0.05) as port:
        exchange(port, "ATE0")
        assert b'+VSIMSEL: 0,"8981100000000000001"' in exchange(port, "AT+VSIMSEL?")
        out = exchange(port, f'AT+VSIMLOAD=1,"8981100000000000042","440109876500042","{ki}","{ki}","44010","data.example"')
        assert b'+VSIMSTAT: 1,"LOADED"' in out and out.endswith(b"OK\r\n")
        listing = exchange(port, "AT+VSIMLIST?")
        assert b'+VSIMLIST: 1,"8981100000000000042","440109876500042",0' in listing
        assert ki.encode() not in listing  # keys are write-only
        assert b"+CME ERROR: 50" in exchange(port, 'AT+VSIMLOAD=2,"1","2","3","4","5","6"')
        assert b"+CME ERROR: 3" in exchange(port, "AT+VSIMDEL=0")
        assert b"OK" in exchange(port, "AT+VSIMDEL=1")
    assert all("VSIMLOAD=" not in c for c in vmodem.commands_seen)


def test_urcs_arrive_inside_responses_when_configured() -> None:
    config = ModemConfig(time_scale=FAST_SCALE, urc_probability=1.0, rng_seed=2)
    with VirtualModem(config) as vm, serial.serial_for_url(vm.path, timeout=0.05) as port:
        out = exchange(port, "AT+CGDCONT?")
    lines = [ln for ln in out.split(b"\r\n") if ln]
    assert lines[0] == b"AT+CGDCONT?\r"  # echo, terminator included
    assert lines[1].startswith((b"+CIEV:", b"+QIND:")) and lines[3].startswith((b"+CIEV:", b"+QIND:"))


def test_rejecting_carrier_gives_denied_registration_with_cause() -> None:
    class Rejecting(NullCarrier):
        def attach(self, imsi, plmn, challenge):  # type: ignore[no-untyped-def]
            return 15  # EMM cause 15: no suitable cells in tracking area

        def activate(self, imsi, cid, apn):  # type: ignore[no-untyped-def]
            raise CarrierReject(33)

    @async_test
    async def scenario() -> None:
        with VirtualModem(ModemConfig(time_scale=FAST_SCALE), Rejecting()) as vm:
            modem = Modem(vm.path, "virtual")
            await modem.open()
            await modem.command("AT+CEREG=3")
            deadline = time.monotonic() + READ_DEADLINE
            reg = await modem.registration()
            while reg.stat != 3 and time.monotonic() < deadline:
                reg = await modem.registration()
            assert reg.stat == 3
            await modem.close()

    scenario()


def test_challenge_uses_the_keys_loaded_in_the_slot() -> None:
    from board.virtual.modem import milenage

    seen: list[bytes] = []

    class Checking(NullCarrier):
        def attach(self, imsi, plmn, challenge):  # type: ignore[no-untyped-def]
            rand = bytes(range(16))
            seen.append(challenge(rand))

    cfg = ModemConfig(time_scale=FAST_SCALE)
    with VirtualModem(cfg, Checking()) as vm, serial.serial_for_url(vm.path, timeout=0.05) as port:
        deadline = time.monotonic() + READ_DEADLINE
        while not seen and time.monotonic() < deadline:
            exchange(port, "AT")
    assert seen == [milenage.res(cfg.seed.ki, cfg.seed.opc, bytes(range(16)))]


def test_config_loads_from_json_and_toml(tmp_path: Path) -> None:
    seed = {"iccid": "8981100000000000077", "imsi": "440100000000077", "ki": "00" * 16,
            "opc": "11" * 16, "plmn": "44010", "apn": "seed"}
    (tmp_path / "m.json").write_text(json.dumps({"seed": seed, "time_scale": 0.5, "vsim_slots": [1, 2, 3]}))
    cfg = ModemConfig.from_file(tmp_path / "m.json")
    assert cfg.seed.iccid.endswith("77") and cfg.vsim_slots == (1, 2, 3) and cfg.time_scale == 0.5
    assert cfg.seed.ki == bytes(16) and "ki=<redacted>" in repr(cfg.seed)
    toml = "time_scale = 0.01\n[seed]\n" + "".join(f'{k} = "{v}"\n' for k, v in seed.items())
    (tmp_path / "m.toml").write_text(toml)
    assert ModemConfig.from_file(tmp_path / "m.toml").seed.imsi == "440100000000077"
    with pytest.raises(ValueError, match="unknown"):
        ModemConfig.from_dict({"bogus": 1})


@async_test
async def test_port_loss_is_port_closed_for_the_agent(vmodem: VirtualModem) -> None:
    channel = await open_channel(vmodem.path)
    await channel.command("AT")
    vmodem.lose_port()
    with pytest.raises(PortClosed):
        await channel.command("AT", timeout=2)
    new_path = vmodem.restore_port()
    assert new_path
    modem = Modem(new_path, "virtual")
    await modem.open()
    await modem.ping()
    await modem.close()


@async_test
async def test_dropped_characters_time_out_or_fail_but_never_misanswer(vmodem: VirtualModem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(at, "RESYNC_TIMEOUT", 0.2)
    monkeypatch.setattr(commands, "DEFAULT_TIMEOUT", 0.2)  # a lost final code costs 0.2 s, not 5
    modem = Modem(vmodem.path, "virtual")
    await modem.open()
    vmodem.inject_drop_chars(0.05)
    outcomes = {"right": 0, "failed": 0}
    for i in range(40):
        expected = vmodem.config.seed.imsi if i % 2 else vmodem.config.seed.iccid
        try:
            value = await modem.imsi() if i % 2 else await modem.iccid()
        except Exception as exc:  # noqa: BLE001 - classify: only the project's errors allowed
            from agent.errors import AgentError

            assert isinstance(exc, AgentError), exc
            outcomes["failed"] += 1
            continue
        # a lost digit can shorten this command's own value (no checksum in AT), but a
        # value is never the other command's answer
        assert _is_subsequence(value, expected), (value, expected)
        outcomes["right" if value == expected else "failed"] += 1
    assert outcomes["right"] > 0 and outcomes["failed"] > 0
    await modem.close()


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


@async_test
async def test_hung_modem_is_recovered_by_the_ladder(vmodem: VirtualModem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(at, "RESYNC_TIMEOUT", 0.1)
    modem = Modem(vmodem.path, "virtual", init_timeout=0.2)
    await modem.open()
    vmodem.inject_hang(60)  # hung until something power-cycles it
    with pytest.raises(AtTimeout):
        await modem.ping(timeout=0.1)
    policy = LadderPolicy(retry_attempts=2, retry_backoff=0.01, ping_timeout=0.1, reopen_attempts=1,
                          reopen_backoff=0.0, radio_off_settle=0.0, power_ready_timeout=5.0,
                          power_reopen_interval=0.05)
    ladder = RecoveryLadder(modem, vmodem.reset_hook, policy=policy)
    started = time.monotonic()
    assert await ladder.recover(AtTimeout("AT")) == "power_cycle"
    assert time.monotonic() - started < 10
    c = ladder.counters()
    assert c["steps"]["retry"]["attempts"] == 2 and c["steps"]["reopen"]["attempts"] == 1
    assert c["steps"]["radio"]["attempts"] == 1 and c["steps"]["power_cycle"]["successes"] == 1
    assert vmodem.reboots == 1
    assert await modem.sim_state() == "READY"
    await modem.close()


def test_pocket_lab_modem_prints_its_pty_and_stops_on_sigterm() -> None:
    with pocket_lab_modem("--fast") as path, serial.serial_for_url(path, timeout=0.05) as port:
        assert b"OK" in exchange(port, "AT")


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def test_pocket_agent_at_prints_raw_and_decoded(vmodem: VirtualModem) -> None:
    vmodem.set_radio_conditions(-100.0, -11.0, 5.0, True)
    out = run_cli("at", "--port", vmodem.path, "AT+CESQ")
    assert out.returncode == 0, out.stderr
    raw, final, decoded = out.stdout.splitlines()
    assert raw == "+CESQ: 99,99,255,255,18,41" and final == "OK"
    meaning = json.loads(decoded)["+CESQ"]["converted"]  # decode's vocabulary (issue 11)
    assert meaning["rsrp_dbm"] == pytest.approx(-100, abs=1)
    err = run_cli("at", "--port", vmodem.path, "AT+CGACT=5,1")  # state 5 does not exist
    assert err.returncode == 1 and "+CME ERROR: 50" in err.stdout
    assert json.loads(err.stdout.splitlines()[-1])["error"]["name"] == "incorrect parameters"


def test_pocket_agent_at_refuses_what_the_agent_owns(vmodem: VirtualModem) -> None:
    """The one AT gate (issue 20): the data context is the agent's to set from the profile."""
    out = run_cli("at", "--port", vmodem.path, "AT+CGDCONT=99")
    assert out.returncode == 2 and "AT+CGDCONT refused" in out.stderr
    assert "+CGDCONT" not in vmodem.commands_seen


def test_pocket_agent_at_refuses_vsim_loads(vmodem: VirtualModem) -> None:
    out = run_cli("at", "--port", vmodem.path, 'AT+VSIMLOAD=1,"x"')
    assert out.returncode == 2 and "carries SIM keys" in out.stderr
    assert "+VSIMLOAD" not in vmodem.commands_seen


def test_lab_carrier_refuses_with_the_exception_the_modem_handles() -> None:
    """One CarrierReject: a refusal from the lab's carrier (e.g. an unknown APN) must reach
    the virtual modem as +CME ERROR, not end the modem's thread (it once did)."""
    from board.virtual.modem import model
    from board.virtual.network import carrier

    assert carrier.CarrierReject is model.CarrierReject


def test_pdn_deact_is_reported_after_the_carrier_released_the_bearer() -> None:
    """A detach (the radio off here; a slot switch and an outage take the same path)
    releases the bearer at the carrier first and says ``+CGEV: ME PDN DEACT`` after it,
    as for a network deactivation: a host acting on the URC finds the data path closed
    (the lab carrier's drop order, docs/virtual-board.md)."""
    events: list[str] = []

    class Recording(NullCarrier):
        def detach(self, imsi: str) -> None:
            events.append("carrier detach")
            super().detach(imsi)

    with VirtualModem(ModemConfig(time_scale=FAST_SCALE), Recording()) as vm:
        emit = vm.urc

        def urc(line: str) -> None:
            if line.startswith("+CGEV"):
                events.append(line)
            emit(line)

        vm.urc = urc  # type: ignore[method-assign]
        with serial.serial_for_url(vm.path, timeout=0.05) as port:
            exchange(port, "ATE0")
            deadline = time.monotonic() + READ_DEADLINE
            while b"+CGATT: 1" not in exchange(port, "AT+CGATT?") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert b"OK" in exchange(port, "AT+CGACT=1,1")
            assert b"OK" in exchange(port, "AT+CFUN=0")
            deadline = time.monotonic() + READ_DEADLINE
            while "+CGEV: ME PDN DEACT 1" not in events and time.monotonic() < deadline:
                time.sleep(0.01)
    assert events[:2] == ["carrier detach", "+CGEV: ME PDN DEACT 1"], events

"""The agent as the SIM: the virtual modem's remote-SIM personality over a real pty
(pyserial), the agent's RemoteSimHost answering from its host-side USIM, and the lab
carrier's AuC authenticating with its own MILENAGE (docs/remote-sim.md)."""

from __future__ import annotations

import asyncio

import pytest

from agent.logs import TRACE
from agent.sim import SimProfile
from agent.usim.sqn import SqnState
from board.virtual.modem import milenage
from tests.integration.rsim_rig import KI, OPC, OTHER, PROFILE, REGISTERED, rig, tap
from tests.unit.at_fakes import async_test

POWER_UP_FILES = ["3F00", "2FE2", "2F00", "ADF", "6F07", "6FAD", "6F38", "6F56", "6F31", "6F78", "6F7B",
                  "6F7E", "6F73", "6FE3", "6F09", "6F46"]
"""The files the terminal touches after a card reset, in order (TS 102 221 clause 14,
TS 31.102 5.1.1)."""


def files_in_order(log: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for _, fid in log:
        if not out or out[-1] != fid:
            out.append(fid)
    return out


@async_test
async def test_the_module_reads_the_card_and_attaches_with_the_right_keys() -> None:
    async with rig() as r:
        await r.host.insert(PROFILE)
        stat, _ = await r.cereg.until(set(REGISTERED))
        assert stat in REGISTERED
        log = r.modem.call_wait(lambda: list(r.modem.cmds.rsim.read_log))
        assert files_in_order(log)[:len(POWER_UP_FILES)] == POWER_UP_FILES
        commands = [name for name, _ in log]
        assert commands[:2] == ["SELECT", "GET RESPONSE"] and "TERMINAL PROFILE" in commands
        assert ("AUTHENTICATE", "ADF") in log and ("UPDATE BINARY", "6FE3") in log
        assert (await r.channel.command("AT+CIMI")).lines == (PROFILE.imsi,)
        assert PROFILE.imsi in r.carrier.attached
        assert r.host.card.sqn_state is not None and r.host.card.sqn_state.seq_ms >= 1
        assert r.host.stats["malformed"] == r.host.stats["answer_failures"] == 0


@async_test
async def test_a_wrong_ki_is_refused_by_the_carrier() -> None:
    forged = SimProfile(PROFILE.iccid, PROFILE.imsi, bytes(16), PROFILE.opc, PROFILE.plmn, PROFILE.apn)
    async with rig() as r:
        await r.host.insert(forged)
        stat, cause = await r.cereg.until({3})
        assert (stat, cause) == (3, 20)  # the card found AUTN's MAC wrong: EMM #20, MAC failure
        assert PROFILE.imsi not in r.carrier.attached


@async_test
async def test_a_stale_sqn_is_resynchronised_and_the_attach_goes_on() -> None:
    ahead = SqnState(seq=(5000,) * 32)  # the card has seen far more than this AuC issued
    async with rig() as r:
        await r.host.insert(PROFILE, sqn=ahead)
        stat, _ = await r.cereg.until(set(REGISTERED) | {3})
        assert stat in REGISTERED
        assert r.carrier.auc.sqn_of(PROFILE.imsi) >> 5 > 5000  # AUTS moved the AuC above the card
        assert r.host.card.sqn_state is not None and r.host.card.sqn_state.seq_ms > 5000


@async_test
async def test_a_module_reset_mid_session_is_recovered() -> None:
    """The module reboots in the middle of the power-up reads: the host drops the old
    session at the new +SIMRESET, answers the new ATR, and the module attaches."""
    async with rig() as r:
        seen = asyncio.Event()
        count = 0

        def on_data(line: str) -> None:
            nonlocal count
            count += 1
            if count == 12:
                seen.set()

        r.channel.subscribe("+SIMDATA", on_data)
        await r.host.insert(PROFILE)
        await asyncio.wait_for(seen.wait(), 10)
        mark = len(r.cereg.seen)
        await r.reboot()
        stat, _ = await r.cereg.until(set(REGISTERED), after=mark)
        assert stat in REGISTERED
        assert r.host.stats["resets"] >= 2
        assert r.modem.call_wait(lambda: r.modem.cmds.rsim.sessions) >= 2
        # and once more after registration: a new session, a new attach
        registered_at = len(r.cereg.seen)
        await r.reboot()
        stat, _ = await r.cereg.until(set(REGISTERED), after=registered_at)
        assert stat in REGISTERED


@async_test
async def test_a_swap_is_remove_card_a_insert_card_b() -> None:
    async with rig() as r:
        await r.host.insert(PROFILE)
        await r.cereg.until(set(REGISTERED))
        mark = len(r.cereg.seen)
        await r.host.swap(OTHER)
        await r.cereg.until({0}, after=mark)  # the card went: no service
        await r.cereg.until(set(REGISTERED), after=mark)
        assert (await r.channel.command("AT+CIMI")).lines == (OTHER.imsi,)


@async_test
async def test_a_silent_host_is_a_mute_card_and_then_an_absent_one() -> None:
    """Nobody answers +SIMRESET: the module resets the card MUTE_RESETS times and then
    reports it not inserted (its deadline is the T=0 work waiting time)."""
    async with rig(rsim_deadline_s=0.2) as r:
        await r.host.stop()  # the agent does not answer
        await r.channel.command('AT+GTSET="RSIM",1')
        lines: list[str] = []
        gone = asyncio.Event()
        r.channel.subscribe("+CPIN", lambda line: (lines.append(line), gone.set()))
        await asyncio.wait_for(gone.wait(), 10)
        assert lines == ["+CPIN: NOT INSERTED"]
        assert r.modem.call_wait(lambda: r.modem.cmds.rsim.mute_resets) == 3


@async_test
async def test_garbage_from_the_module_is_answered_and_the_session_goes_on() -> None:
    """A +SIMDATA line the host cannot read is answered 6700 and logged without data;
    the module (which sent nothing wrong) resets the card and still attaches."""
    async with rig() as r:
        await r.host.insert(PROFILE)
        await r.cereg.until(set(REGISTERED))
        r.modem.call_wait(lambda: r.modem.urc('+SIMDATA: "00A4ZZ"'))  # noise on the line
        r.modem.call_wait(lambda: r.modem.urc('+SIMDATA: "00A"'))
        await r.channel.command("AT")  # both URCs have been read by now
        await r.host.idle()
        assert r.host.stats["malformed"] == 2
        assert (await r.channel.command("AT+CIMI")).lines == (PROFILE.imsi,)


@pytest.mark.parametrize("level", [TRACE])
@async_test
async def test_no_key_crosses_the_at_line_or_reaches_a_log(level: int, caplog: pytest.LogCaptureFixture) -> None:
    """Every byte on the pty in both directions and every log line of a whole session
    (power-up, attach, resync, swap, reset) searched: no Ki, no OPc, no AK or AK*; what a
    card may give the module (RES, CK, IK, AUTS) is on the line and in no log."""
    caplog.set_level(level)
    async with rig() as r:
        assert r.carrier is not None
        on_line = tap(r.channel)
        rands: list[bytes] = []
        issue = r.carrier.auc.vector

        def vector(imsi: str):  # type: ignore[no-untyped-def]
            found = issue(imsi)
            if found is not None:
                rands.append(found.rand)
            return found

        r.carrier.auc.vector = vector  # type: ignore[method-assign]
        await r.host.insert(PROFILE, sqn=SqnState(seq=(3000,) * 32))
        await r.cereg.until(set(REGISTERED))
        mark = len(r.cereg.seen)
        await r.host.swap(OTHER)
        await r.cereg.until(set(REGISTERED), after=mark)
        mark = len(r.cereg.seen)
        await r.reboot()
        await r.cereg.until(set(REGISTERED), after=mark)
    text = on_line.decode("ascii", "replace").upper()
    logs = "\n".join(record.getMessage() for record in caplog.records).upper()
    for secret in (KI, OPC, OTHER.ki, OTHER.opc):
        assert secret.hex().upper() not in text and secret not in on_line
        assert secret.hex().upper() not in logs
    assert "AT+SIMDATA=" in text and "+SIMDATA:" in text  # the capture did see the session
    assert "DB08" in text  # an AUTHENTICATE answer (RES, CK, IK) crossed, as it must
    assert "AT+SIMDATA=\"" not in logs  # the host's answers (RES, CK, IK) are never logged
    assert rands, "the session authenticated"
    for rand in rands:
        for key, opc in ((KI, OPC), (OTHER.ki, OTHER.opc)):
            res, ck, ik, ak = milenage.f2345(key, opc, rand)
            ak_star = milenage.f5_star(key, opc, rand)
            for value in (ak, ak_star):  # they conceal SQN: never sent, never logged bare
                assert value.hex().upper() not in text and value.hex().upper() not in logs
            for value in (res, ck, ik):  # on the line to the module, as a card gives them; in no log
                assert value.hex().upper() not in logs

"""The driver against the virtual modem over a real pty opened with pyserial,
parametrised over every dialect (fast mode on)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent.errors import AtCommandError, AtTimeout, ModemError
from agent.modem.dialects import DIALECTS
from agent.modem.driver import Modem
from agent.sim import SimProfile
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from tests.unit.at_fakes import async_test

KI = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
OPC = bytes.fromhex("f0e0d0c0b0a090807060504030201000")
PROFILE = SimProfile("8981100000000000042", "440109876500042", KI, OPC, "44010", "data.example")

ATTACH_WAIT = 2.0
"""Deadline for the fast-mode attach (modelled 2 s x FAST_SCALE, plus thread scheduling)."""


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def vmodem() -> Iterator[VirtualModem]:
    modem = VirtualModem(ModemConfig(time_scale=FAST_SCALE, urc_probability=0.2, rng_seed=5))
    modem.start()
    yield modem
    modem.stop()


async def opened(vmodem: VirtualModem, dialect: str) -> Modem:
    modem = Modem(vmodem.path, dialect)
    await modem.open()
    return modem


async def until(predicate, timeout: float = ATTACH_WAIT, step: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll an async predicate with a deadline (the modem is an external thread); its
    value once truthy. Past the deadline it fails the test: a poll that fell through
    returned None, and a caller that did not assert went on as if registered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert loop.time() <= deadline, f"not reached within {timeout} s: last value {value!r}"
        await asyncio.sleep(step)


@async_test
async def test_identity_sim_and_registration(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    ident = await modem.identity()
    assert (ident.manufacturer, ident.model, ident.imei) == ("PocketLab", "VM-1", "356938035643809")
    assert await modem.sim_state() == "READY"
    assert await modem.iccid() == vmodem.config.seed.iccid
    assert await modem.imsi() == vmodem.config.seed.imsi
    # The attach can complete between the driver's +CEREG? and +CGREG? (the modem is another
    # thread): one pass may then see only +CGREG registered. Once attached, LTE comes first.
    await until(lambda: _registered(modem))
    reg = await modem.registration()
    assert reg.registered and reg.family == "+CEREG" and reg.act is not None
    op = await modem.operator()
    # the driver asks for the numeric format at start-up (+COPS=3,2): the network's MCC-MNC
    assert (op.format, op.oper) == (2, vmodem.config.seed.plmn)
    await modem.close()


async def _registered(modem: Modem):  # type: ignore[no-untyped-def]
    reg = await modem.registration()
    return reg if reg.registered else None


@async_test
async def test_signal_follows_radio_conditions(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    vmodem.set_radio_conditions(-101.0, -12.5, 3.5, True)
    sig = await until(lambda: _rsrp(modem, -101.0))
    assert sig.rsrp_dbm == pytest.approx(-101, abs=1) and sig.rsrq_db == pytest.approx(-12.5, abs=0.5)
    if dialect == "virtual":
        assert sig.sinr_db == pytest.approx(3.5)
    else:
        assert sig.sinr_db is None
    await modem.close()


async def _rsrp(modem: Modem, want: float):  # type: ignore[no-untyped-def]
    sig = await modem.signal()
    return sig if sig.rsrp_dbm is not None and abs(sig.rsrp_dbm - want) <= 1 else None


@async_test
async def test_data_context_up_and_down(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    await until(lambda: _registered(modem))
    await modem.define_context(1, "data.example")
    await modem.activate_context(1)
    params = await modem.context_params(1)
    assert params.address == "198.18.1.2" and params.prefix == 30
    assert params.gateway == "198.18.1.1" and params.dns[0] == "198.18.1.1" and params.mtu == 1500
    assert await modem.addresses(1) == ("198.18.1.2",)
    assert [s.active for s in await modem.context_states() if s.cid == 1] == [True]
    await modem.deactivate_context(1)
    with pytest.raises(ModemError):
        await modem.context_params(1)
    await modem.close()


@async_test
async def test_activate_without_network_is_cme_30(vmodem: VirtualModem, dialect: str) -> None:
    vmodem.set_radio_conditions(-140, -20, -10, registered=False)
    modem = await opened(vmodem, dialect)
    with pytest.raises(AtCommandError) as info:
        await modem.activate_context(1)
    assert info.value.code == 30
    await modem.close()


@async_test
async def test_vsim_load_select_and_query(vmodem: VirtualModem, dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    modem = await opened(vmodem, dialect)
    if modem.dialect.has_remote_sim:  # its slots are the agent's (tests/integration/test_remote_sim_swap.py)
        await modem.load_profile(1, PROFILE)  # a host-side card: nothing goes to the modem
        with pytest.raises(AtCommandError):
            await modem.select_slot(1)  # this modem has a card of its own and no remote reader
        assert KI.hex().upper() not in caplog.text and "tx <sensitive command" not in caplog.text
        await modem.close()
        return
    if not modem.dialect.has_vsim:  # generic, ublox
        with pytest.raises(ModemError, match=f"dialect {dialect} has no vSIM"):
            await modem.load_profile(1, PROFILE)
        with pytest.raises(ModemError, match="no vSIM"):
            await modem.select_slot(1)
        await modem.close()
        return
    assert await modem.active_profile() == (0, vmodem.config.seed.iccid)
    await modem.load_profile(1, PROFILE)
    await modem.select_slot(1)
    assert await modem.active_profile() == (1, PROFILE.iccid)
    assert await modem.imsi() == PROFILE.imsi
    reg = await until(lambda: _registered(modem))
    assert reg.registered
    assert "tx <sensitive command" in caplog.text  # the load was written and traced (redacted) ...
    assert KI.hex().upper() not in caplog.text and KI.hex() not in caplog.text  # ... so its absence is meaningful
    assert OPC.hex().upper() not in caplog.text and OPC.hex() not in caplog.text
    with pytest.raises(AtCommandError) as info:
        await modem.load_profile(0, PROFILE)  # the seed slot is read-only
    assert info.value.code == 3
    with pytest.raises(AtCommandError) as info:
        await modem.select_slot(2)  # nothing loaded there
    assert info.value.code == 10
    await modem.close()


@async_test
async def test_network_time_and_radio_toggle(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    await until(lambda: _registered(modem))
    when = await modem.network_time()
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 9 * 3600
    await modem.set_radio(False)
    assert await modem.radio_function() == 4
    reg = await modem.registration()
    assert not reg.registered
    await modem.set_radio(True)
    assert await until(lambda: _registered(modem))
    await modem.close()


@async_test
async def test_busy_errors_at_start_up_are_retried(vmodem: VirtualModem, dialect: str) -> None:
    vmodem.inject_busy(2, 515)
    modem = await opened(vmodem, dialect)  # open() retries the start-up commands
    assert await modem.sim_state() == "READY"
    vmodem.inject_busy(1, 14)
    with pytest.raises(AtCommandError) as info:
        await modem.imsi()
    assert info.value.code == 14
    await modem.close()


@async_test
async def test_spontaneous_reboot_then_the_driver_sets_itself_up_again(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    await modem.ping()
    seen: list[str] = []
    pin = asyncio.Event()
    modem.subscribe("", seen.append)
    modem.subscribe("+CPIN:", lambda _line: pin.set())
    vmodem.reboot()
    await asyncio.wait_for(pin.wait(), 2)
    assert "RDY" in seen and "+CFUN: 1" in seen and "+CPIN: READY" in seen
    assert modem._needs_init
    assert await modem.sim_state() == "READY"  # re-init (ATE0, CMEE) happened first
    assert not modem._needs_init
    await modem.close()


@async_test
async def test_reset_waits_until_the_modem_answers(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    await modem.reset()
    assert vmodem.reboots == 1
    assert await modem.sim_state() == "READY"
    await modem.close()


@async_test
async def test_garbage_on_the_line_does_not_break_the_next_answer(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    vmodem.inject_garbage(64)  # returns once the noise is in the pty
    try:
        first = await modem.imsi()  # the noise may land inside this answer ...
        assert first == vmodem.config.seed.imsi
    except ModemError as exc:
        assert exc.raw  # ... then it is a ModemError carrying what was received
    assert await modem.imsi() == vmodem.config.seed.imsi  # and the next answer is right
    await modem.close()


HELD_S = 60.0
"""The modem holds its answers this long unless released: far past every timeout below, so
the answer comes after the timeout by the order of events (the test releases it), never by
a race of 0.1 s against 0.3 s that a loaded machine can lose (issue 21)."""


@async_test
async def test_slow_answers_time_out_then_the_next_answer_is_right(vmodem: VirtualModem, dialect: str) -> None:
    """A late answer lands while the next command starts: the IMEI the modem answers late
    (released as the IMSI command is written, in either order) is never taken for it."""
    modem = await opened(vmodem, dialect)
    vmodem.inject_hang(HELD_S)  # posted before the command is written: holds its answer
    with pytest.raises(AtTimeout):
        await modem.command("AT+CGSN", timeout=0.1)
    imsi = asyncio.ensure_future(modem.imsi())
    vmodem.inject_hang(0)  # the modem wakes: the IMEI first, then the resync and the IMSI, in order
    assert await imsi == vmodem.config.seed.imsi  # not the late IMEI
    assert vmodem.commands_seen[-3:] == ["AT+CGSN", "ATS7", "AT+CIMI"]  # the held one was answered, late
    await modem.close()


@async_test
async def test_hang_times_out_then_the_channel_resynchronises(vmodem: VirtualModem, dialect: str) -> None:
    modem = await opened(vmodem, dialect)
    vmodem.inject_hang(HELD_S)
    with pytest.raises(AtTimeout):
        await modem.channel.command("AT+CIMI", timeout=0.1)  # type: ignore[union-attr]
    vmodem.inject_hang(0)  # the modem wakes and answers the timed-out AT+CIMI first
    # the late answer to the timed-out command must not be taken for this one
    assert await modem.iccid() == vmodem.config.seed.iccid
    await modem.close()


# --- board profiles: the driver is configured from them -----------------------------

from agent.boardprofile import KNOWN_DIALECTS, load_profile, profile_from_dict
from agent.errors import ConfigError


def test_shipped_profiles_load_and_name_known_dialects() -> None:
    virtual = load_profile("virtual")
    assert (virtual.dialect, virtual.data_interface, virtual.link_header_bytes) == ("virtual", "wwan0", 14)
    assert virtual.vsim_slots == (1, 2) and virtual.seed_slot == 0
    ec25 = load_profile("quectel-ec25-openwrt")
    assert ec25.dialect == "generic" and ec25.link_header_bytes == 0 and ec25.reset_line["kind"] == "gpio"
    remote = load_profile("remote-sim")
    assert remote.dialect == "fibocom-rsim" and remote.vsim_slots == (1, 2) and DIALECTS[remote.dialect].has_remote_sim
    assert set(KNOWN_DIALECTS) == set(DIALECTS)


@pytest.mark.parametrize(
    "change,key",
    [({"baud": 1234}, "baud"), ({"dialect": "huawei"}, "dialect"), ({"link_header_bytes": 4}, "link_header_bytes"),
     ({"vsim_slots": [0, 1]}, "seed_slot"), ({"vsim_slots": "1,2"}, "vsim_slots"), ({"colour": "red"}, "colour"),
     ({"reset_line": {"kind": "gpio"}}, "reset_line.path"), ({"at_port": 5}, "at_port")],
)
def test_bad_profile_keys_are_config_errors_naming_the_key(change: dict, key: str) -> None:  # type: ignore[type-arg]
    import tomllib

    from agent.boardprofile import PROFILES_DIR

    data = tomllib.loads((PROFILES_DIR / "virtual.toml").read_text())
    data.update(change)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        profile_from_dict(data)


def test_missing_key_is_named() -> None:
    with pytest.raises(ConfigError, match="'at_port'"):
        profile_from_dict({"name": "x", "vsim_slots": []})


@async_test
async def test_modem_opened_from_the_virtual_profile(vmodem: VirtualModem) -> None:
    profile = load_profile("virtual")
    modem = Modem(vmodem.path, profile.dialect, baud=profile.baud)
    await modem.open()
    assert (await modem.active_profile())[0] == profile.seed_slot
    await modem.close()

"""The daemon side of the console: settings, the refusal list, and SupervisorView's guards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.boardprofile import load_profile
from agent.clock import Clock
from agent.core.audit import AuditLog
from agent.core.consoled import settings
from agent.core.view import SupervisorView, signal_rating
from agent.errors import ConfigError, ControlError
from agent.modem.commands import KNOWN
from agent.plans.tracker import Allowance
from agent.recordlog import RecordLog


def fake_sup(tmp: Path, **kw: Any) -> Any:
    base = SimpleNamespace(cfg=SimpleNamespace(device_id="rtr-x", modem_port=None, tz_offset="+09:00"), profile=load_profile("virtual"),
                           status=SimpleNamespace(data={"state": "starting"}), current=None, cloud=None, modem=None,
                           health=None, journal=None, clock=Clock(), state_dir=tmp, wan=None)
    vars(base).update(kw)
    return base


def view(tmp: Path, **kw: Any) -> SupervisorView:
    return SupervisorView(fake_sup(tmp, **kw), audit=AuditLog(tmp / "console", Clock()),
                          technicians_file=tmp / "technicians.json")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_profiles_name_their_console_port() -> None:
    assert load_profile("quectel-ec25-openwrt").console_port == "/dev/ttyGS0"
    assert load_profile("virtual").console_port.endswith("console-device.pty")


def test_console_settings_defaults_and_errors(tmp_path: Path) -> None:
    s = settings({}, tmp_path, "/dev/ttyGS0")
    assert s.ports == ["/dev/ttyGS0"] and s.in_daemon and s.control_socket == tmp_path / "control.sock"
    assert settings({}, tmp_path, "").ports == []
    for bad, word in (({"port": "x"}, "unknown key"), ({"ports": "/dev/ttyGS0"}, "wrong type"),
                      ({"ports": [1]}, "lists of strings"), ({"idle_logout_s": 0}, "positive")):
        with pytest.raises(ConfigError, match=word):
            settings(bad, tmp_path, "")


@pytest.mark.parametrize("command", ["AT+VSIMLOAD=1,\"x\"", "at+vsimload?", "AT+EGMR=1,7,\"1\"", "AT+QFOTADL=\"u\"",
                                     "AT + VSIMSEL=2", "AT^NVWR=1", "AT+QPOWD=1"])
def test_identity_firmware_and_profile_commands_are_refused(command: str) -> None:
    assert KNOWN.refusal(command)


@pytest.mark.parametrize("command", ["AT+CESQ", "AT+COPS?", "AT+CGSN", "ATI", "AT+VSIMLIST"])
def test_reading_commands_pass(command: str) -> None:
    assert KNOWN.refusal(command) is None


def test_signal_rating_words() -> None:
    assert [signal_rating(r, 10) for r in (-70, -85, -95, -105, -115, None)] == \
        ["excellent", "good", "fair", "poor", "no signal", "no signal"]
    assert signal_rating(-70, -3) == "poor"


def test_sim_facts_are_whitelisted_even_if_current_carried_more(tmp_path: Path) -> None:
    modem = SimpleNamespace(sim_state=lambda: _value("READY"))
    v = view(tmp_path, modem=modem, current={"iccid": "898", "imsi": "440", "slot": 1, "ki": "00" * 16,
                                             "opc": "11" * 16})
    answer = run(v.sim())
    assert answer["active"] == {"iccid": "898", "imsi": "440", "slot": 1}
    v.close()


def test_missing_supervisor_abilities_say_not_available(tmp_path: Path) -> None:
    v = view(tmp_path)
    for coro in (v.swaps(), v.swap("x"), v.modem_reset(), v.reboot(), v.modem(), v.trace("start")):
        with pytest.raises(ControlError) as exc:
            run(coro)
        assert exc.value.reason == "not_available"
    v.close()


def test_audit_is_durable_masked_and_sent_upstream(tmp_path: Path) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def emit(kind: str, body: dict[str, Any]) -> int:
        sent.append((kind, body))
        return len(sent)

    v = view(tmp_path, cloud=SimpleNamespace(emit=emit, connected=True))
    run(v.audit({"action": "at", "args": {"command": "AT+VSIMLOAD=1,\"" + "ab" * 16 + "\""}, "technician": "alice"}))
    records = RecordLog(tmp_path / "console" / "console-audit.log").records
    assert len(records) == 1 and b"ab" * 16 not in records[0] and b"hex digits hidden" in records[0]
    assert sent[0][0] == "audit" and sent[0][1]["technician"] == "alice"
    v.close()


async def _value(v: Any) -> Any:
    return v


def test_a_bad_console_table_leaves_the_daemon_serving_without_a_console(tmp_path: Path) -> None:
    import logging

    from agent.core import consoled

    sup = fake_sup(tmp_path)
    sup.cfg = SimpleNamespace(device_id="rtr-x", modem_port=None, state_dir=tmp_path, console={"ports": "oops"},
                              tz_offset="+09:00")
    handlers = list(logging.getLogger().handlers)
    assert run(consoled.start(sup)) is None
    assert logging.getLogger().handlers == handlers  # nothing left behind


def test_throughput_now_is_the_rate_between_the_last_two_readings(tmp_path: Path) -> None:
    readings = iter([SimpleNamespace(rx_bytes=0, tx_bytes=0), SimpleNamespace(rx_bytes=250_000, tx_bytes=25_000)])
    v = view(tmp_path, wan=SimpleNamespace(counters=lambda: next(readings)))

    async def body() -> dict[str, Any]:
        await v.read_throughput()
        assert v._rate == {"rx_kbps": None, "tx_kbps": None}  # one reading is no rate yet
        v._last_counters = (v._last_counters[0] - 2.0, 0, 0)  # as if read two seconds ago
        await v.read_throughput()
        return dict(v._rate)

    rate = run(body())
    assert rate["rx_kbps"] == pytest.approx(1000, rel=0.01) and rate["tx_kbps"] == pytest.approx(100, rel=0.01)
    v.close()


def test_renter_facts_are_public_and_need_no_modem(tmp_path: Path) -> None:
    """The page's op: no AT command (no modem at all here), the ICCID's last digits only,
    no IMSI, the allowance the console's status shows, the planned swap and the last one."""
    from agent.core import policy as pol
    from agent.sim import Plan

    plan = Plan("5GB-month", 5_000_000_000, "month", 128, remaining_bytes=60_000_000).to_dict()
    health = SimpleNamespace(
        summary=lambda: {"state": "ok", "kbps": None, "evidence": {}, "radio": {"rsrp_dbm": -85.0, "sinr_db": 10.0},
                         "network": {"plmn": "44010"}},
        outages=SimpleNamespace(history=lambda: [{"start": 1.0, "end": 2.0}]))
    control = SimpleNamespace(planned=lambda: pol.Planned("allowance", 420.0, at_lull=True),
                              swapping_for_s=lambda: None)
    history = [{"swap_id": "s1", "reason": "boot", "ok": True, "rolled_back": False, "break_ms": 5900.0,
                "started": "2025-12-03T21:40:00+09:00", "from_iccid": "8981000000000000001",
                "to_iccid": "8981100000000000017", "assignment_id": "a1", "phases_ms": {}}]
    current = {"iccid": "8981100000000000017", "imsi": "440100000000017", "plan": plan, "seed": False,
               "assignment_id": "a1"}
    clock = Clock()
    tracker = Allowance(tmp_path, clock, "+09:00")  # the real tracker: the cloud's 60 MB left, 20 MB used since
    tracker.on_sim(current)
    now = clock.wall()
    tracker.ledger.add(current["iccid"], clock.now().date().isoformat(), now - 60, now - 1, 20_000_000, 0)
    v = view(tmp_path, health=health, swap_control=control, swap_history=lambda: history, clock=clock,
             usage=SimpleNamespace(used_on_current=20_000_000, allowance=tracker, traffic_kbps=0.0),
             current=current, status=SimpleNamespace(data={"state": "serving"}))
    r = run(v.renter())
    assert r["sim"] == {"iccid_tail": "0017", "seed": False, "plan": "5GB-month"}
    assert "440100000000017" not in str(r) and "8981100000000000017" not in str(r) and "8981000000000000001" \
        not in str(r)
    assert r["rules"] == v._allowance() and r["rules"][0]["left_bytes"] == 40_000_000
    assert r["rules"][0]["rule"] == "cap" and r["rules"][0]["used_bytes"] == 4_960_000_000
    assert r["swap"]["planned"] == {"reason": "allowance", "in_s": 420.0, "at_lull": True}
    assert r["swap"]["expected_break_s"] == 5.9 and r["swap"]["last"]["reason"] == "boot"
    assert r["no_service_since"] is None and r["signal"]["rating"] == "good" and r["network"] == {"plmn": "44010"}
    v.close()

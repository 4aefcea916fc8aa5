"""The update's phases, the health gate's verdicts and the scrubbing of reported log lines."""

from __future__ import annotations

import base64

import pytest

from agent.update import gate, machine, scrub
from agent.update.machine import UpdateState


def test_the_install_goes_forward_only_in_order():
    state = machine.offered(UpdateState(), {"version": "0.2.0"}, "0.2.0", 3, "a" * 64, "0.1.0")
    for phase in ("fetched", "unpacked"):
        state = machine.advance(state, phase)
    state = machine.switching(state, "/old", "0.1.0")
    assert (state.phase, state.previous) == ("switching", "/old")
    with pytest.raises(ValueError):
        machine.advance(state, "committed")
    assert machine.advance(machine.advance(state, "trial"), "committed").phase == "committed"


def test_a_start_is_counted_once_per_process_and_exhausts_past_the_limit():
    state = machine.advance(machine.switching(machine.advance(machine.advance(
        machine.offered(UpdateState(), {}, "0.2.0", 1, "a" * 64, "0"), "fetched"), "unpacked"), "", ""), "trial")
    for pid in range(1, machine.MAX_ATTEMPTS + 1):
        state = machine.attempt(machine.attempt(state, pid), pid)  # an exec keeps the pid: counted once
        assert not machine.exhausted(state)
    assert machine.exhausted(machine.attempt(state, 99))


def test_a_cut_while_switching_is_resolved_by_the_link():
    state = UpdateState(phase="switching")
    assert machine.resolve_switching(state, "/new", "/new").phase == "trial"
    assert machine.resolve_switching(state, "/old", "/new").phase == "unpacked"


def test_a_journal_of_a_newer_schema_is_read_for_what_this_code_knows():
    newer = {"phase": "committed", "version": "0.3.0", "schema": 2, "wave": {"n": 1}}
    state = UpdateState.from_dict(newer)
    assert (state.phase, state.version, state.schema) == ("committed", "0.3.0", 2)
    assert UpdateState.from_dict({"phase": "exploded"}).phase == "idle"
    assert UpdateState.from_dict(None).phase == "idle"


NOW = 1000.0


def status(**kw):
    return {"pid": 7, "state": "serving", "updated": NOW, "cloud": {"connected": True, "usage_acks": 1}, **kw}


@pytest.mark.parametrize("seen,elapsed,exited,verdict", [
    (status(), 10, None, gate.Verdict("commit")),
    (status(cloud={"connected": True, "usage_acks": 0}), 10, None, gate.WAIT),
    (status(cloud={"connected": True, "usage_acks": 0}), 300, None, gate.Verdict("rollback", "no_usage_ack")),
    (status(cloud={"connected": False}), 300, None, gate.Verdict("rollback", "no_cloud")),
    (status(state="starting"), 300, None, gate.Verdict("rollback", "never_serving")),
    (status(pid=6), 300, None, gate.Verdict("rollback", "never_serving")),  # the old version's file
    (status(updated=NOW - gate.HANG_S - 1), 10, None, gate.Verdict("rollback", "hung")),
    ({}, 5, 1, gate.Verdict("rollback", "crashed (exit 1)")),
    (status(), 5, -9, gate.Verdict("rollback", "killed (signal 9)")),
])
def test_the_gate(seen, elapsed, exited, verdict):
    assert gate.judge(seen, elapsed_s=elapsed, exited=exited, now=NOW, pid=7, bound_s=240) == verdict


def test_reported_log_lines_carry_no_secret():
    lines = ["INFO loading profile ki=000102030405060708090A0B0C0D0E0F opc=abc",
             "DEBUG key 00112233445566778899aabbccddeeff00112233",
             "-----BEGIN PRIVATE KEY----- MC4CAQAwBQYDK2VwBCIEIJ+J -----END PRIVATE KEY-----",
             "sealed " + base64.b64encode(bytes(range(60))).decode(), "", "Traceback (most recent call last):", "x" * 500]
    out = scrub.tail(lines)
    text = "\n".join(out)
    for secret in ("000102030405", "00112233445566", "MC4CAQ", base64.b64encode(bytes(range(60))).decode()[:12]):
        assert secret not in text
    assert "Traceback (most recent call last):" in out and len(out) == 6
    path = '  File "/usr/lib/pocket-agent/agent/faces/cli/run.py", line 96, in main'
    assert scrub.scrub_line(path) == path  # a traceback keeps its file names
    assert max(len(line) for line in out) <= scrub.LINE_CHARS

"""The console through real ptys, as a technician's terminal meets it.

Each test drives the technician's end of a ``PtyCable`` with pyserial (what picocom
does), against the real console server and control socket in a background loop
(tests/console/rig.py); the provider is the real SupervisorView autospecced, answering
canned facts, so these tests are about the console itself. tests/lab/test_lab_console.py repeats the essentials against the real
daemon.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.core.control import ControlClient
from agent.core.logins import STATE_FILE, Authenticator
from agent.faces.console import auth
from agent.faces.console.commands import COMMANDS
from tests.console.rig import KI, ConsoleRig, Terminal, secret_forms, technician_key

PROMPT = r"rtr-test01 serving> $"
ADMIN = r"rtr-test01 serving# $"

READ_ONLY = ["status", "modem", "signal", "sim", "usage", "health", "log 5", "selftest"]


def login(term: Terminal, key: object) -> None:
    out = term.command("login", until=r"signature> $")
    challenge = next(line.strip() for line in out.decode().splitlines() if line.strip().startswith("pwc1 "))
    term.send(auth.sign(key, challenge) + "\r")
    term.expect(ADMIN)


def no_secrets(data: bytes) -> None:
    for form in secret_forms():
        assert form not in data


@pytest.mark.parametrize("line", READ_ONLY)
def test_every_read_only_command_in_text_and_json(term: Terminal, line: str) -> None:
    text = term.command(line).decode()
    assert "error" not in text and len(text.splitlines()) >= 2
    out = term.command(line + " --json").decode().splitlines()
    body = json.loads(out[1])  # line 0 is the echo of what was typed
    assert isinstance(body, dict) and "error" not in body


def test_status_reads_like_a_technician_needs(term: Terminal) -> None:
    text = term.command("status").decode()
    for words in ("8981100000000000017", "PW LAB", "LTE", "fair: RSRP -95 dBm", "198.18.10.2",
                  "throttled at 128 kbit/s", "plateau at the plan rate",
                  "data        2.1 GB of 3.0 GB (day), 900 MB left"):  # the renter's page's figure
        assert words in text


def test_help_for_every_command(term: Terminal) -> None:
    listing = term.command("help").decode()
    for name, cmd in COMMANDS.items():
        assert cmd.usage in listing
        assert cmd.summary in term.command(f"help {name}").decode()
    assert json.loads(term.command("help status --json").decode().splitlines()[1])["help"]


def test_no_escape_sequences_unless_colour_is_asked_for(term: Terminal) -> None:
    plain = term.command("selftest").decode() + term.command("status").decode()
    assert "\x1b" not in plain and "PASS" in plain
    assert term.command("colour on").decode().endswith("colour on\r\n")
    coloured = term.command("selftest").decode() + term.command("status").decode()
    assert "\x1b[32mPASS\x1b[0m" in coloured and "\x1b[31mFAIL\x1b[0m" in coloured
    assert "\x1b[31mthrottled\x1b[0m" in coloured
    term.command("colour off")
    assert "\x1b" not in term.command("selftest").decode()


def test_not_available_and_usage_errors_are_clear(term: Terminal) -> None:
    assert "not available in this build" in term.command("swaps").decode()
    assert json.loads(term.command("swaps --json").decode().splitlines()[1])["error"]["reason"] == "not_available"
    assert "log [N]" in term.command("log lots").decode()
    assert "unknown command" in term.command("rm -rf /").decode()


@pytest.mark.parametrize("enter", ["\r", "\n", "\r\n"])
def test_any_enter_convention(term: Terminal, enter: str) -> None:
    term.send("modem" + enter)
    term.expect(r"VM-1")
    term.expect(PROMPT)


def test_backspace_delete_and_ctrl_c(term: Terminal) -> None:
    term.send("simx\x7f\r")
    term.expect(r"READY")
    term.expect(PROMPT)
    term.send("modzz\x08\x08em\r")
    term.expect(r"VM-1")
    term.expect(PROMPT)
    term.send("reboot\x03")
    term.expect(r"\^C\r\n" + PROMPT)


def test_noise_and_binary_garbage_then_work_as_usual(rig: ConsoleRig, term: Terminal) -> None:
    noise = bytes(range(256)) * 20 + b"\x1b[31m\xff\xfe" * 50
    term.send(noise + b"\x15")  # Ctrl-U: whatever printable noise got into the line goes
    term.expect(r"line noise: \d+ stray bytes, line ignored")
    term.drain()
    assert b"\x1b" not in term.transcript  # nothing the terminal could take as a command
    assert rig.facts.calls == []  # and noise ran no command
    assert "VM-1" in term.command("modem").decode()


def test_a_10000_character_line(term: Terminal) -> None:
    term.send("x" * 10_000 + "\r")
    term.expect(r"line too long \(10000 characters, at most 256\): ignored")
    term.expect(PROMPT)
    assert "VM-1" in term.command("modem").decode()


def test_signal_watch_repeats_until_ctrl_c(rig: ConsoleRig, term: Terminal) -> None:
    term.send("signal watch\r")
    for _ in range(2):
        term.expect(r"fair: RSRP -95 dBm")
    term.send("\x03")
    term.expect(PROMPT)
    calls = rig.facts.calls.count("signal")
    assert "VM-1" in term.command("modem").decode()
    assert rig.facts.calls.count("signal") == calls  # stopped
    assert rig.console.terminals[0].sessions == 1  # and the session goes on


def test_privileged_commands_need_a_login(rig: ConsoleRig, term: Terminal) -> None:
    for line in ("at +CSQ", "swap", "modem-reset", "reboot", "trace start"):
        assert "needs a technician login" in term.command(line).decode()
    assert rig.facts.upstream == []


def test_login_at_passthrough_refusals_audit_and_logout(rig: ConsoleRig, term: Terminal, tmp_path: Path) -> None:
    key, public = technician_key(tmp_path)
    rig.pin("alice", public)
    login(term, key)
    assert "+CESQ: 99,99,255,255,20,45" in term.command("at +CESQ", until=ADMIN).decode()
    refused = term.command("at+egmr=1,7,\"359000000000099\"", until=ADMIN).decode()
    assert "AT+EGMR refused" in refused
    typed = f"at+vsimload=1,\"{KI.hex()}\""  # a key typed by the technician is echoed back, as typed
    assert "refused" in term.command(typed, until=ADMIN).decode()
    leaky = term.command("at +VSIMLIST", until=ADMIN).decode()
    assert "8981100000000000017" in leaky and "hex digits hidden" in leaky
    assert "True" in term.command("swap cell is congested", until=ADMIN).decode()
    assert json.loads(term.command("modem-reset --json", until=ADMIN).decode().splitlines()[1]) == {"reset": True}
    assert "not configured" in term.command("reboot", until=ADMIN).decode()
    term.send("\x04")
    term.expect("logged out\r\n" + PROMPT)
    actions = [(e["action"], e.get("outcome")) for e in rig.facts.audit_log.entries()]
    assert actions[0] == ("login", None)
    assert ("at", "ok") in actions and ("swap", "ok") in actions and ("modem-reset", "ok") in actions
    assert actions[-1] == ("logout", None)
    assert any(a == "at" and o and o.startswith("refused") for a, o in actions)
    assert rig.facts.upstream == rig.facts.audit_log.entries()
    audit_bytes = (rig.facts.audit_log._log.path).read_bytes()
    no_secrets(bytes(term.transcript).replace(typed.encode() + b"\r\n", b"", 1))  # all but that echo
    no_secrets(audit_bytes)
    assert b"hex digits hidden" in audit_bytes  # the typed key was masked before reaching flash


@pytest.mark.parametrize("line", ['at +CSQ;+EGMR=1,7,"359000000000099"', "at E0+QPOWD=1", "at +CSQ;+VSIMSEL=1",
                                  'at+csq;+clck="SC",1,"1234"', "at +cfun=1,1", "at&f", "at a/"])
def test_at_refuses_a_denied_command_hidden_behind_an_allowed_one(rig: ConsoleRig, term: Terminal,
                                                                  tmp_path: Path, line: str) -> None:
    """Finding 1 of issue 20, over the console's pty: one gate, the command table's, judges
    every command of the line; nothing of a refused line reaches the modem."""
    key, public = technician_key(tmp_path)
    rig.pin("alice", public)
    login(term, key)
    assert "refused" in term.command(line, until=ADMIN).decode()
    assert rig.facts.sent == []
    assert "+CESQ" in term.command("at +CSQ;+CESQ", until=ADMIN).decode()
    assert rig.facts.sent == ["AT+CSQ;+CESQ"]


def test_brute_force_is_slowed_and_reported(rig: ConsoleRig, term: Terminal, tmp_path: Path) -> None:
    key, _ = technician_key(tmp_path)
    _, other = technician_key(tmp_path, "mallory")
    rig.pin("alice", other)  # alice's key is not the pinned one
    waits = []
    for _ in range(3):
        rig.facts.logins.auth._next_try = 0.0  # skip the wait itself; its length is what we check
        out = term.command("login", until=r"signature> $").decode()
        challenge = next(line.strip() for line in out.splitlines() if line.strip().startswith("pwc1 "))
        text = term.command(auth.sign(key, challenge)).decode()
        waits.append(int(text.split("next attempt in ")[1].split(" s")[0]))
    assert waits == [1, 2, 4]
    assert "too many failed logins: try again in" in term.command("login").decode()
    failed = [e for e in rig.facts.upstream if e["action"] == "login_failed"]
    assert [e["failures"] for e in failed] == [1, 2, 3]
    # a restarted daemon reads the count back (issue 20, finding 12): no fresh start from a power cut
    rig.facts.logins.auth = Authenticator(rig.tmp / "state" / "console" / STATE_FILE)
    assert rig.facts.logins.auth.failures == 3
    assert "too many failed logins: try again in 4 s" in term.command("login").decode()


def test_idle_technician_is_logged_out(tmp_path: Path) -> None:
    rig = ConsoleRig(tmp_path, idle_logout=1.0)
    try:
        key, public = technician_key(tmp_path)
        rig.pin("alice", public)
        term = Terminal(rig.cables[0].technician_path)
        rig.start()
        term.expect(PROMPT)
        login(term, key)
        term.expect(r"idle for 1 s: logged out\r\n" + PROMPT, timeout=5)
        assert rig.facts.upstream[-1]["action"] == "logout" and rig.facts.upstream[-1]["reason"] == "idle"
        term.close()
    finally:
        rig.close()


def test_unplug_mid_output_and_plug_back(rig: ConsoleRig, term: Terminal, tmp_path: Path) -> None:
    key, public = technician_key(tmp_path)
    rig.pin("alice", public)
    login(term, key)
    term.send("log 500\r")
    cable = rig.cables[0]
    cable.unplug()
    cable.plug()
    term.expect(r"Type help for commands\.\r\n" + PROMPT)  # a new session: the login is gone
    assert rig.console.terminals[0].sessions == 2
    assert any(e["action"] == "logout" and e["reason"] == "port closed" for e in rig.facts.upstream)
    assert "needs a technician login" in term.command("at +CSQ").decode()


def test_two_terminals_at_once(tmp_path: Path) -> None:
    rig = ConsoleRig(tmp_path, cables=2)
    try:
        a, b = (Terminal(c.technician_path) for c in rig.cables)
        rig.start()
        a.expect(PROMPT)
        b.expect(PROMPT)
        a.send("signal watch\r")
        a.expect("fair")
        assert "VM-1" in b.command("modem").decode()
        a.send("\x03")
        a.expect(PROMPT)
        for t in (a, b):
            t.close()
    finally:
        rig.close()


def test_a_terminal_that_stops_reading_never_blocks(rig: ConsoleRig, term: Terminal) -> None:
    """The daemon's loop keeps answering while a terminal reads nothing: every request
    below is answered while the console's output backs up, and one more once it drops
    output. A loop blocked on the stalled terminal answers none of them (the rig's call
    then fails). How fast it answers meanwhile is a figure, not a test: make bench
    (bench_console.py, loop jitter under a flood, p95 beside its 5 ms goal)."""
    for _ in range(4):  # 4 x 62 kB of log into a terminal that reads nothing
        term.send("log 500\r")
    answered = rig.call(_until_dropping(rig, ControlClient(rig.socket)), timeout=30)
    assert answered >= 2  # answered while the output backed up, and once it was dropping
    term.expect(r"\[console: \d+ bytes of output dropped: terminal not reading\]", timeout=30)
    term.drain()
    assert "VM-1" in term.command("modem").decode()


async def _until_dropping(rig: ConsoleRig, client: ControlClient) -> int:
    """Ask the daemon side something every 50 ms until the console starts dropping output
    for the stalled terminal, then once more; returns how many requests were answered."""
    answered = 0
    output = rig.console.terminals[0].output
    assert output is not None
    while True:
        dropping = output.dropped > 0
        assert (await client.request("device"))["state"] == "serving"
        answered += 1
        if dropping:
            break
        await asyncio.sleep(0.05)
    client.close()
    return answered


def test_idle_logout_applies_during_signal_watch(tmp_path: Path) -> None:
    """Finding 11 of issue 20: the idle timer runs whatever the command loop is doing, and
    only what the technician types counts: a watch's output and line noise do not."""
    rig = ConsoleRig(tmp_path, idle_logout=2.0)
    try:
        key, public = technician_key(tmp_path)
        rig.pin("alice", public)
        term = Terminal(rig.cables[0].technician_path)
        rig.start()
        term.expect(PROMPT)
        login(term, key)
        term.send("signal watch\r")
        for _ in range(2):
            term.expect(r"fair: RSRP -95 dBm")
            term.send(b"\xff\xfe\x00")  # noise: no keyboard sends it, and it is no sign of a technician
        term.expect(r"idle for 2 s: logged out\r\n", timeout=5)
        term.expect(r"fair: RSRP -95 dBm")  # the read-only watch goes on
        term.send("\x03")
        term.expect(PROMPT)  # '>': whoever presses Ctrl-C now is not logged in
        assert "needs a technician login" in term.command("at +CSQ").decode()
        logout = [e for e in rig.facts.upstream if e["action"] == "logout"]
        assert [(e["technician"], e["reason"]) for e in logout] == [("alice", "idle")]
        term.close()
    finally:
        rig.close()


HOSTILE = ["2026-11-27 INFO agent.cloud: assignment \x1b]0;owned\x07 from broker",
           "2026-11-27 INFO agent.cloud: policy \x1b[2J\x1b[H\x1b[31mFAKE PROMPT# \x9b1m",
           "plain\r\nrtr-test01 serving# "]
"""Log lines carrying text a hostile broker or modem chose: a title change, a screen clear,
a colour, a C1 CSI, and a CR LF that would draw a fake privileged prompt."""


def test_cloud_and_modem_text_cannot_drive_the_terminal(rig: ConsoleRig, term: Terminal) -> None:
    """Finding 18 of issue 20: any C0 control byte (ESC above all) and DEL in an answer is
    shown in caret notation, anything non-ASCII as '?': no escape sequence reaches the
    technician's terminal, in text, in --json or with colour on."""
    async def hostile_log(n: int) -> dict[str, object]:
        return {"lines": HOSTILE}

    rig.provider.log.side_effect = hostile_log
    for line in ("log 3", "log 3 --json"):
        out = term.command(line)
        assert b"\x1b" not in out and b"\x07" not in out and b"\x9b" not in out
        assert b"\r\nrtr-test01 serving# " not in out  # no forged prompt line
    text = term.command("log 3").decode()
    assert "^[]0;owned^G" in text and "^[[2J" in text and "plain^M^Jrtr-test01" in text
    term.command("colour on")
    assert b"\x1b" not in term.command("log 3")

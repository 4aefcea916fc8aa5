"""Technician login: Ed25519 challenge-response, single use, expiry, exponential slow-down
that survives a restart; the technician's tool: encrypted keys, device-bound signing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core import technicians
from agent.core.logins import BACKOFF_CAP, CHALLENGE_TTL, FAILURES_KEPT, Authenticator, AuthFailed
from agent.core.technicians import Technician
from agent.errors import ConfigError
from agent.faces.console import auth


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[object, list[Technician]]:
    public = auth.generate_key(tmp_path / "alice.key")
    key = auth.load_private_key(tmp_path / "alice.key")
    return key, [Technician("alice", base64.b64decode(public))]


def test_key_file_is_private_from_the_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        auth.generate_key(tmp_path / "k.key")
    finally:
        os.umask(old)
    assert (tmp_path / "k.key").stat().st_mode & 0o777 == 0o600


def test_a_signed_challenge_logs_in_once(keys) -> None:
    key, techs = keys
    a = Authenticator()
    challenge = a.challenge("rtr-000001")
    assert challenge.startswith("pwc1 rtr-000001 ")
    assert a.verify(challenge, auth.sign(key, challenge), techs) == "alice"
    with pytest.raises(AuthFailed, match="expired or unknown"):
        a.verify(challenge, auth.sign(key, challenge), techs)  # replay


def test_a_signature_for_another_device_or_challenge_fails(keys) -> None:
    key, techs = keys
    a = Authenticator()
    mine = a.challenge("rtr-000001")
    other = mine.replace("rtr-000001", "rtr-000002")
    with pytest.raises(AuthFailed, match="does not match"):
        a.verify(mine, auth.sign(key, other), techs)


def test_challenge_expires() -> None:
    clock = FakeTime()
    a = Authenticator(monotonic=clock)
    challenge = a.challenge("d")
    clock.t += CHALLENGE_TTL
    with pytest.raises(AuthFailed, match="expired"):
        a.verify(challenge, "AAAA", [])


def test_failures_slow_down_exponentially_up_to_the_cap(keys) -> None:
    _, techs = keys
    clock = FakeTime()
    a = Authenticator(monotonic=clock)
    waits = []
    for _ in range(12):
        c = a.challenge("d")
        with pytest.raises(AuthFailed) as exc:
            a.verify(c, base64.b64encode(b"\1" * 64).decode(), techs)
        waits.append(exc.value.wait_s)
        with pytest.raises(AuthFailed, match="too many failed logins"):
            a.verify(a.challenge("d"), "x", techs)  # too early: refused without a look
        clock.t += exc.value.wait_s
    assert waits[:5] == [1, 2, 4, 8, 16]
    assert max(waits) == BACKOFF_CAP


def test_success_resets_the_slow_down(keys) -> None:
    key, techs = keys
    clock = FakeTime()
    a = Authenticator(monotonic=clock)
    with pytest.raises(AuthFailed):
        a.verify(a.challenge("d"), "garbage", techs)
    clock.t += 1
    c = a.challenge("d")
    assert a.verify(c, auth.sign(key, c), techs) == "alice"
    assert a.failures == 0 and a.wait_s() == 0


def test_policy_replaces_pinned_keys_only_with_a_newer_valid_version(tmp_path: Path, keys) -> None:
    path = tmp_path / "technicians.json"
    good = {"version": 2, "keys": [{"name": "bob", "ed25519": base64.b64encode(b"\2" * 32).decode()}]}
    assert technicians.apply_policy(path, good)
    assert technicians.load_technicians(path)[1][0].name == "bob"
    assert not technicians.apply_policy(path, dict(good, version=1))
    with pytest.raises(ConfigError, match="not a base64 32-byte"):
        technicians.apply_policy(path, {"version": 3, "keys": [{"name": "eve", "ed25519": "short"}]})
    assert json.loads(path.read_text())["version"] == 2


def test_sign_refuses_text_that_is_not_a_challenge(keys) -> None:
    key, _ = keys
    with pytest.raises(ConfigError):
        auth.sign(key, "rm -rf /")


def test_cloud_policy_rotates_the_pinned_keys(tmp_path: Path) -> None:
    path = tmp_path / "technicians.json"
    doc = {"version": 5, "keys": [{"name": "carol", "ed25519": base64.b64encode(b"\3" * 32).decode()}]}
    technicians.on_policy(path, {"version": 40, "swap_below_bytes": 1})  # no keys in it: nothing pinned
    assert not path.exists()
    technicians.on_policy(path, {"version": 41, "technician_keys": doc})
    assert [t.name for t in technicians.load_technicians(path)[1]] == ["carol"]
    technicians.on_policy(path, {"version": 42, "technician_keys": {"version": 6, "keys": [{"name": "x"}]}})
    assert technicians.load_technicians(path)[0] == 5  # refused whole, the pinned set stays


def test_the_slow_down_survives_a_restart_bounded_and_failing_closed(tmp_path: Path, keys) -> None:
    key, techs = keys
    state = tmp_path / "console" / "logins.json"
    clock = FakeTime()
    a = Authenticator(state, monotonic=clock)
    for _ in range(3):
        with pytest.raises(AuthFailed):
            a.verify(a.challenge("d"), "garbage", techs)
        clock.t += BACKOFF_CAP
    restarted = Authenticator(state, monotonic=clock)  # the power was pulled
    assert restarted.failures == 3 and restarted.wait_s() == 4.0  # the full wait again, from start-up
    assert state.stat().st_mode & 0o777 == 0o600 and len(state.read_bytes()) < 64
    clock.t += 4
    c = restarted.challenge("d")
    assert restarted.verify(c, auth.sign(key, c), techs) == "alice"
    assert Authenticator(state, monotonic=clock).failures == 0  # success resets it on disk too
    state.write_text('{"failures": 10000000000}')
    assert Authenticator(state, monotonic=clock).failures == FAILURES_KEPT  # bounded
    state.write_text("{torn")
    assert Authenticator(state, monotonic=clock).wait_s() == BACKOFF_CAP  # unreadable: fail closed


def test_sign_shows_the_device_and_refuses_a_challenge_without_one(tmp_path: Path, keys) -> None:
    key, _ = keys
    challenge = Authenticator().challenge("rtr-000001")
    assert auth.sign(key, challenge, device="rtr-000001")
    with pytest.raises(ConfigError, match="for device rtr-000001, not rtr-000002"):
        auth.sign(key, challenge, device="rtr-000002")  # relayed from another router
    nonce = challenge.split()[-1]
    for text in (f"pwc1 1795689600 {nonce}", f"pwc1  1795689600 {nonce}", f"pwc1 rtr/1 1795689600 {nonce}",
                 f"pwc1 rtr-1 1795689600 {nonce} extra"):
        with pytest.raises(ConfigError, match="not a console challenge"):
            auth.sign(key, text)
    out = subprocess.run([sys.executable, "-m", "agent", "console", "sign", "--key", str(tmp_path / "alice.key"),
                          "--device", "rtr-000002", challenge], check=False, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert "login challenge for device rtr-000001, issued" in out.stderr and "not signed" in out.stderr


def test_keys_are_encrypted_with_a_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "tech.key"
    public = auth.generate_key(path, b"correct horse battery")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert path.stat().st_mode & 0o777 == 0o600 and auth.is_encrypted(path)
    with pytest.raises(auth.PassphraseNeeded):
        auth.load_private_key(path)
    with pytest.raises(ConfigError, match="wrong passphrase"):
        auth.load_private_key(path, b"wrong horse battery")
    assert auth.public_key_b64(auth.load_private_key(path, b"correct horse battery")) == public
    with pytest.raises(ConfigError, match="at least"):
        auth.generate_key(tmp_path / "short.key", b"1234")


def test_the_tool_asks_for_a_passphrase_and_never_takes_one_on_the_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse battery\n")
    key = tmp_path / "tech.key"
    tool = [sys.executable, "-m", "agent", "console"]
    made = subprocess.run([*tool, "keygen", "--out", str(key), "--passphrase-file", str(secret)], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert made.returncode == 0 and auth.is_encrypted(key)
    refused = subprocess.run([*tool, "keygen", "--out", str(tmp_path / "k2")], check=False, cwd=REPO, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--passphrase-file or --no-passphrase" in refused.stderr
    challenge = Authenticator().challenge("rtr-000001")
    signed = subprocess.run([*tool, "sign", "--key", str(key), "--passphrase-file", str(secret), challenge],
                            check=False, cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert signed.returncode == 0 and len(base64.b64decode(signed.stdout.strip())) == 64

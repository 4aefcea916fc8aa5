"""Every way the device refuses a sealed envelope, what it reports, and the replay guard's
state through restarts and floors (issue 29: sealing.py's survivors).

A refusal goes upstream as an ``error`` event: ``reason`` is the machine code the
platform acts on, ``detail`` the sentence its operator reads (docs/protocol.md 3.9, and
its example "bad platform signature on assignment 'a-dev-a-8'"). Both are asserted for
every refusal, and no detail carries key material.

Envelopes that must get past the signature check are signed again after their header
is changed, and the ones whose *plaintext* is wrong are built here from docs/protocol.md
section 4 (X25519, HKDF-SHA256 salted with both public keys, AES-256-GCM over the
canonical header) rather than through ``sealing.seal``, as a platform with a bug would
build them.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.cloud import sealing
from agent.errors import SealError
from tests.cloud.test_sealing import (
    DEVICE_KEY,
    EPHEMERAL,
    NONCE,
    NOW,
    PLATFORM_KEY,
    PROFILE,
    VECTOR,
    _open,
)
from tests.cloud.test_sealing_checks import sealed

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed(env: dict[str, Any]) -> dict[str, Any]:
    """``env`` with its signature made again over its (possibly edited) header and ct."""
    ct = base64.b64decode(env["ct"])
    return {**env, "sig": b64(PLATFORM_KEY.sign(sealing.SIG_CONTEXT + sealing.canonical(env) + ct))}


def around(plaintext: bytes, *, assignment_id: str = "a-dev-a-7") -> dict[str, Any]:
    """An envelope for dev-a around ``plaintext``, built from docs/protocol.md 4."""
    epk = EPHEMERAL.public_key().public_bytes(*RAW)
    device_pub = DEVICE_KEY.public_key().public_bytes(*RAW)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + device_pub,
               info=b"pw/v1 sealed-profile key").derive(EPHEMERAL.exchange(DEVICE_KEY.public_key()))
    header = {"alg": sealing.ALG, "device": "dev-a", "assignment_id": assignment_id, "seq": 7,
              "issued_at": NOW - 100, "expires_at": NOW + 500, "epk": b64(epk), "nonce": b64(NONCE)}
    ct = AESGCM(key).encrypt(NONCE, plaintext, sealing.canonical(header))
    return signed({**header, "ct": b64(ct), "sig": ""})


def plaintext(**changes: Any) -> bytes:
    body = {**sealing.profile_to_dict(PROFILE), **changes}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def refused(env: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(SealError) as err:
        _open(env, **kwargs)
    return err.value.reason, str(err.value)


LONG = "x" * 60

REFUSALS = [
    ("not an object", lambda: ["a list"], "malformed", "envelope is not an object"),
    ("a field missing", lambda: {k: v for k, v in VECTOR.items() if k != "sig"}, "malformed",
     "envelope lacks ['sig']"),
    ("a field beyond the contract", lambda: {**VECTOR, "kid": "k1", "note": "hi"}, "malformed",
     "envelope has 2 field(s) beyond the contract's"),
    ("an unknown algorithm", lambda: {**VECTOR, "alg": LONG}, "algorithm", f"unsupported algorithm {LONG[:40]!r}"),
    ("a boolean seq", lambda: sealed(seq=True), "malformed", "envelope seq/issued_at/expires_at are not integers"),
    ("a numeric device id", lambda: sealed(device=7), "malformed", "envelope text fields are not strings"),
    ("ct not a string", lambda: {**VECTOR, "ct": None}, "malformed", "envelope text fields are not strings"),
    ("ct not base64", lambda: {**VECTOR, "ct": "not base64!"}, "malformed", "envelope field ct is not base64"),
    ("sig not base64", lambda: {**VECTOR, "sig": "@@"}, "malformed", "envelope field sig is not base64"),
    ("a forged signature", lambda: {**VECTOR, "assignment_id": "a-" + LONG}, "signature",
     f"bad platform signature on assignment {('a-' + LONG)[:40]!r}"),
    ("another device's envelope", lambda: sealed(device="dev-b"), "wrong_device",
     "envelope is for device 'dev-b', not 'dev-a'"),
    ("epk not base64", lambda: sealed(epk="#"), "malformed", "envelope field epk is not base64"),
    ("nonce not base64", lambda: sealed(nonce="#"), "malformed", "envelope field nonce is not base64"),
    ("a short nonce", lambda: sealed(nonce_bytes=bytes(11)), "malformed", "envelope epk/nonce have the wrong length"),
    ("a ciphertext for another key", lambda: sealed(epk=b64(X25519PrivateKey.from_private_bytes(
        bytes.fromhex("77" * 32)).public_key().public_bytes(*RAW))), "decrypt",
     "envelope 'a-dev-a-9' does not decrypt with this device's key"),
    ("a plaintext that is not JSON", lambda: around(b"iccid=898110..."), "malformed", "sealed profile is not JSON"),
    ("a profile with a bad field", lambda: around(plaintext(imsi="44010")), "profile_field",
     "sealed profile field 'imsi' is not 14-15 digits (TS 23.003 2.2)"),
]


@pytest.mark.parametrize("build, reason, detail", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_reports_its_reason_and_a_detail_naming_the_problem(build: Any, reason: str,
                                                                         detail: str) -> None:
    got = refused(build())
    assert got == (reason, detail)
    for secret in (PROFILE.ki.hex(), PROFILE.opc.hex()):
        assert secret not in got[1]


def test_an_expired_envelope_says_when_it_expired_and_what_time_the_device_had() -> None:
    now = 1767226200 + sealing.CLOCK_SKEW_S + 1  # the vector expires at 1767226200
    assert refused(VECTOR, now=now + 0.7) == ("expired", f"envelope 'a-dev-a-7' expired at 1767226200 (now {now})")


def test_the_published_vector_opens_from_an_envelope_built_from_the_protocol_doc() -> None:
    """The doc's construction, done here independently, opens to the same profile: the
    header bytes (canonical JSON) and the key derivation are the ones documented."""
    opened = _open(around(plaintext()))
    assert (opened.assignment_id, opened.seq, opened.expires_at, opened.profile) == ("a-dev-a-7", 7, NOW + 500,
                                                                                    PROFILE)
    assert sealing.canonical(VECTOR) == json.dumps({k: VECTOR[k] for k in sealing.HEADER_FIELDS}, sort_keys=True,
                                                   separators=(",", ":")).encode()


def test_a_profile_without_an_apn_uses_the_networks_default() -> None:
    """27.007: an empty APN asks the network for its default; absent means the same."""
    assert _open(around(plaintext(apn=None))).profile.apn == ""


def test_a_fresh_envelope_has_a_12_byte_nonce_and_a_32_byte_ephemeral_key() -> None:
    env = sealing.seal(PROFILE, device_id="dev-a", device_public=DEVICE_KEY.public_key(), platform_key=PLATFORM_KEY,
                       assignment_id="x", seq=1, issued_at=NOW, expires_at=NOW + 60)
    assert (len(base64.b64decode(env["nonce"])), len(base64.b64decode(env["epk"]))) == (12, 32)


# --- the replay guard ------------------------------------------------------------------


def guard_file(tmp_path: Path, state: Any) -> sealing.ReplayGuard:
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(state))
    return sealing.ReplayGuard(path)


def test_a_fresh_device_has_accepted_nothing_and_has_no_result_to_repeat(tmp_path: Path) -> None:
    guard = sealing.ReplayGuard(tmp_path / "replay.json")
    assert (guard.last_seq, guard.last_assignment_id, guard.last_result, guard.closed) == (0, "", None, False)


def test_a_state_file_from_before_results_were_kept_loads(tmp_path: Path) -> None:
    guard = guard_file(tmp_path, {"last_seq": 5})
    assert (guard.last_seq, guard.last_assignment_id, guard.last_result, guard.closed) == (5, "", None, False)
    assert guard.check("a-6", 6) == "new"


@pytest.mark.parametrize("state", [
    {"last_seq": 0, "last_assignment_id": "", "last_result": None},
    {"last_seq": 3, "last_assignment_id": "a-3", "last_result": {"ok": True}},
])
def test_every_well_formed_state_opens_the_guard(tmp_path: Path, state: dict[str, Any]) -> None:
    guard = guard_file(tmp_path, state)
    assert not guard.closed
    assert (guard.last_seq, guard.last_assignment_id, guard.last_result) == tuple(state.values())


@pytest.mark.parametrize("state, error", [
    ({"last_seq": True}, "TypeError"),
    ({"last_seq": "5"}, "TypeError"),
    ({"last_seq": 5.0}, "TypeError"),
    ({"last_seq": -1}, "TypeError"),
    ({"last_seq": 5, "last_assignment_id": 5}, "TypeError"),
    ({"last_seq": 5, "last_assignment_id": None}, "TypeError"),
    ({"last_seq": 5, "last_result": "ok"}, "TypeError"),
    ({"last_seq": 5, "last_result": [True]}, "TypeError"),
    ({"last_assignment_id": "a-5"}, "KeyError"),
    ([5], "TypeError"),
    ("5", "TypeError"),
])
def test_a_state_file_of_the_wrong_shape_closes_the_guard(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          state: Any, error: str) -> None:
    caplog.set_level(logging.ERROR, logger="agent.cloud.sealing")
    guard = guard_file(tmp_path, state)
    assert guard.closed_because == f"corrupt ({error})"
    with pytest.raises(SealError) as err:
        guard.check("a-9", 9)
    assert err.value.reason == "replay_state"
    assert str(err.value) == (f"replay state corrupt ({error}): envelope 'a-9' refused until the cloud "
                              "re-establishes a floor")
    assert str(tmp_path / "replay.json") in caplog.text and f"corrupt ({error})" in caplog.text


def test_a_state_file_that_is_not_json_closes_the_guard(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    path.write_bytes(b"\x00\x00\x00")
    assert sealing.ReplayGuard(path).closed_because == "corrupt (JSONDecodeError)"


def test_a_replay_names_the_assignment_and_the_mark(tmp_path: Path) -> None:
    guard = sealing.ReplayGuard(tmp_path / "replay.json")
    guard.accept("a-7", 7)
    for accept in (guard.check, guard.accept):
        with pytest.raises(SealError) as err:
            accept("a-4", 4)
        assert (err.value.reason, str(err.value)) == ("replay", "replayed envelope 'a-4': seq 4 <= last accepted 7")


def test_a_late_result_for_an_older_assignment_does_not_replace_the_last(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    guard = sealing.ReplayGuard(path)
    guard.accept("a-7", 7)
    guard.record_result("a-7", {"ok": True})
    guard.record_result("a-6", {"ok": False})
    for g in (guard, sealing.ReplayGuard(path)):
        assert (g.last_seq, g.last_assignment_id, g.last_result) == (7, "a-7", {"ok": True})


def test_a_closed_guard_records_no_result(tmp_path: Path) -> None:
    guard = guard_file(tmp_path, {"last_seq": "x"})
    guard.record_result("", {"ok": True})
    assert guard.last_result is None and json.loads((tmp_path / "replay.json").read_text()) == {"last_seq": "x"}


def test_a_result_that_cannot_be_written_is_lost_alone(tmp_path: Path) -> None:
    """Only the redelivery's answer is lost: the call does not raise, the mark stands."""
    path = tmp_path / "replay.json"
    guard = sealing.ReplayGuard(path)
    guard.accept("a-7", 7)
    path.unlink()
    path.mkdir()  # in the way of the atomic rename, for root too
    guard.record_result("a-7", {"ok": True})
    assert (guard.last_seq, guard.last_assignment_id, guard.last_result) == (7, "a-7", None)
    with pytest.raises(SealError) as err:
        guard.accept("a-8", 8)
    assert err.value.reason == "replay_state" and str(err.value).startswith("cannot record the replay state: ")
    assert "Errno" not in str(err.value)  # the reason in words, not the exception's repr
    assert guard.last_seq == 7


def test_a_floor_above_the_mark_forgets_the_last_assignment(tmp_path: Path) -> None:
    """Everything at or below the floor was issued before: the last assignment is one of
    them, so its redelivery is a replay now, and its result is not repeated."""
    path = tmp_path / "replay.json"
    guard = sealing.ReplayGuard(path)
    guard.accept("a-5", 5)
    guard.record_result("a-5", {"ok": True})
    guard.reestablish(9)
    for g in (guard, sealing.ReplayGuard(path)):
        assert (g.last_seq, g.last_assignment_id, g.last_result) == (9, "", None)
    with pytest.raises(SealError):
        guard.check("a-5", 5)


@pytest.mark.parametrize("floor", [5, 2])
def test_a_floor_at_or_below_the_mark_keeps_the_last_assignment_and_its_result(tmp_path: Path, floor: int) -> None:
    path = tmp_path / "replay.json"
    guard = sealing.ReplayGuard(path)
    guard.accept("a-5", 5)
    guard.record_result("a-5", {"ok": True})
    guard.reestablish(floor)
    for g in (guard, sealing.ReplayGuard(path)):
        assert (g.last_seq, g.last_assignment_id, g.last_result) == (5, "a-5", {"ok": True})
        assert g.check("a-5", 5) == "duplicate"


def test_a_floor_opens_a_closed_guard_at_the_floor_itself(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    guard = guard_file(tmp_path, {"last_seq": "corrupted"})
    guard.reestablish(4)
    for g in (guard, sealing.ReplayGuard(path)):
        assert (g.closed, g.last_seq, g.last_assignment_id, g.last_result) == (False, 4, "", None)
    assert guard.check("a-5", 5) == "new"
    with pytest.raises(SealError):
        guard.check("a-4", 4)


# --- key files ----------------------------------------------------------------------------

PEM, PKCS8, SPKI = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, Path]:
    x, ed = X25519PrivateKey.from_private_bytes(bytes(range(32))), Ed25519PrivateKey.from_private_bytes(bytes(32))
    files = {
        "x25519.key": x.private_bytes(PEM, PKCS8, serialization.NoEncryption()),
        "x25519.pub": x.public_key().public_bytes(PEM, SPKI),
        "ed25519.key": ed.private_bytes(PEM, PKCS8, serialization.NoEncryption()),
        "ed25519.pub": ed.public_key().public_bytes(PEM, SPKI),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def raw(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return bytes(public.public_bytes(*RAW))


def test_each_key_file_loads_as_its_kind(key_files: dict[str, Path]) -> None:
    x, ed = X25519PrivateKey.from_private_bytes(bytes(range(32))), Ed25519PrivateKey.from_private_bytes(bytes(32))
    assert raw(sealing.load_private_x25519(key_files["x25519.key"])) == raw(x)
    assert raw(sealing.load_public_x25519(key_files["x25519.pub"])) == raw(x)
    assert raw(sealing.load_private_ed25519(key_files["ed25519.key"])) == raw(ed)
    assert raw(sealing.load_public_ed25519(key_files["ed25519.pub"])) == raw(ed)


@pytest.mark.parametrize("load, file, kind", [
    (sealing.load_private_x25519, "ed25519.key", "X25519Private"),
    (sealing.load_public_x25519, "ed25519.pub", "X25519Public"),
    (sealing.load_private_ed25519, "x25519.key", "Ed25519Private"),
    (sealing.load_public_ed25519, "x25519.pub", "Ed25519Public"),
])
def test_a_key_file_of_another_kind_is_refused_naming_the_file(key_files: dict[str, Path], load: Any, file: str,
                                                               kind: str) -> None:
    with pytest.raises(SealError) as err:
        load(key_files[file])
    assert (err.value.reason, str(err.value)) == ("key", f"{key_files[file]} is not an {kind} key")


@pytest.mark.parametrize("loader", [sealing.load_private_x25519, sealing.load_public_x25519,
                                    sealing.load_private_ed25519, sealing.load_public_ed25519])
def test_a_file_that_is_no_pem_key_is_a_seal_error_naming_it(tmp_path: Path, loader: Any) -> None:
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n")
    with pytest.raises(SealError) as raised:
        loader(bad)
    assert str(bad) in str(raised.value) and raised.value.reason == "key"


def test_a_public_key_given_as_the_private_one_is_a_seal_error(tmp_path: Path) -> None:
    public = tmp_path / "public.pem"
    public.write_bytes(X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(SealError, match="not a PEM private X25519"):
        sealing.load_private_x25519(public)

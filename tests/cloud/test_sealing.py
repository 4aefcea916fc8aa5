"""Sealed profiles: the fixed test vector (also in docs/protocol.md) and every refusal."""

from __future__ import annotations

import base64
import copy
import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cloud import sealing
from agent.errors import SealError
from agent.sim import Plan, SimProfile

# --- the published vector (docs/protocol.md, "Test vector") ---------------------------
DEVICE_KEY = X25519PrivateKey.from_private_bytes(bytes.fromhex("11" * 32))
PLATFORM_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("22" * 32))
EPHEMERAL = X25519PrivateKey.from_private_bytes(bytes.fromhex("33" * 32))
NONCE = bytes.fromhex("44" * 12)
NOW = 1767225700  # between issued_at and expires_at
PROFILE = SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=bytes(range(16)),
                     opc=bytes(range(16, 32)), plmn="44010", apn="internet.a.lab",
                     plan=Plan("5GB-month", 5_000_000_000, "month", 128, 4_200_000_000))
VECTOR = {
    "alg": "X25519-HKDF-SHA256-A256GCM+Ed25519",
    "device": "dev-a",
    "assignment_id": "a-dev-a-7",
    "seq": 7,
    "issued_at": 1767225600,
    "expires_at": 1767226200,
    "epk": "ew1H2TQn+DERYHgcfHM/2J+IlwrvSQ2KoO4ZpMuKGxQ=",
    "nonce": "RERERERERERERERE",
    "ct": "G6A9Om7w4D81cACWuw41nvFwaTaZXMSviUxNMUlKLMwihfthaSdzRudKHfrFUQg8kwzE4ZlYv3Nmkz2z1al63DM8L9/z5sJ7ADfoXwMw"
          "KRyAvWC2tBEwXQyRK3yfdsxZ+TJ9XtSph1iozaAokxh/vH3cLhSM8tVyQWLQuELaWWnHGiErIOwYS9Utsp5FuC2gFtllGQ59xBBKTIib"
          "6Rme+MXoJO+e7Cj6d1R1/gtcR0v3KlKl2jcJUR4mTMlMSqSQzX9B2K+a5kW/E8stQnwh0HUoCuaIQN/qm/lIm+z4y5vjaZf14pgFSrWz"
          "smHMaxEJH/dTlATCVXk7x7u20396e3yPKad6vv1Q9aHh5JUYA4BTcdOUyzjaSlw+H9882h7gM1rZlzDL916iN0MYW+sx7EPj+5Y=",
    "sig": "qk4uPwO4oul+1CxancKgyD4Kd7gkHn4uf7eIUxtAAJcbVXfnIUHCIvUfM/b5husyuYVHCNhEhTbp6yfKBBG9CQ==",
}
PLAINTEXT = ('{"apn":"internet.a.lab","iccid":"8981100000001000019","imsi":"440100000100001",'
             '"ki":"000102030405060708090a0b0c0d0e0f","opc":"101112131415161718191a1b1c1d1e1f",'
             '"plan":{"cap_bytes":5000000000,"name":"5GB-month","remaining_bytes":4200000000,'
             '"throttle_kbps":128,"window":"month"},"plmn":"44010"}')


def _open(env: dict, device_id: str = "dev-a", now: float | None = NOW) -> sealing.Opened:
    return sealing.open_envelope(env, device_id=device_id, device_key=DEVICE_KEY,
                                 platform_public=PLATFORM_KEY.public_key(), now=now)


def test_seal_reproduces_the_published_vector() -> None:
    env = sealing.seal(PROFILE, device_id="dev-a", device_public=DEVICE_KEY.public_key(), platform_key=PLATFORM_KEY,
                       assignment_id="a-dev-a-7", seq=7, issued_at=1767225600, expires_at=1767226200,
                       ephemeral=EPHEMERAL, nonce=NONCE)
    assert env == VECTOR


def test_vector_opens_to_the_published_plaintext() -> None:
    opened = _open(VECTOR)
    assert (opened.assignment_id, opened.seq, opened.expires_at) == ("a-dev-a-7", 7, 1767226200)
    assert opened.profile == PROFILE
    assert json.dumps(sealing.profile_to_dict(opened.profile), sort_keys=True, separators=(",", ":")) == PLAINTEXT


def test_fresh_envelopes_differ_but_open_the_same() -> None:
    kw = {"device_id": "dev-a", "device_public": DEVICE_KEY.public_key(), "platform_key": PLATFORM_KEY,
          "assignment_id": "x", "seq": 1, "issued_at": NOW, "expires_at": NOW + 60}
    a, b = sealing.seal(PROFILE, **kw), sealing.seal(PROFILE, **kw)
    assert a["ct"] != b["ct"] and a["epk"] != b["epk"]
    assert _open(a).profile == _open(b).profile == PROFILE


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _forged() -> dict:
    other = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("55" * 32))
    return sealing.seal(PROFILE, device_id="dev-a", device_public=DEVICE_KEY.public_key(), platform_key=other,
                        assignment_id="a-dev-a-7", seq=7, issued_at=1767225600, expires_at=1767226200)


@pytest.mark.parametrize("mutate, reason", [
    (lambda e: _forged(), "signature"),
    (lambda e: {**e, "ct": _flip(e["ct"])}, "signature"),
    (lambda e: {**e, "seq": 8}, "signature"),
    (lambda e: {**e, "expires_at": e["expires_at"] + 86400}, "signature"),
    (lambda e: {**e, "device": "dev-b"}, "signature"),
    (lambda e: {**e, "alg": "none"}, "algorithm"),
    (lambda e: {k: v for k, v in e.items() if k != "sig"}, "malformed"),
    (lambda e: {**e, "sig": "!!"}, "malformed"),
    (lambda e: "not an object", "malformed"),
])
def test_tampered_envelopes_are_refused_with_a_reason(mutate, reason) -> None:
    with pytest.raises(SealError) as err:
        _open(mutate(copy.deepcopy(VECTOR)))
    assert err.value.reason == reason


def test_another_devices_envelope_is_refused() -> None:
    with pytest.raises(SealError) as err:
        _open(VECTOR, device_id="dev-b")
    assert err.value.reason == "wrong_device" and "dev-a" in str(err.value)


def test_expired_envelope_is_refused_but_skew_is_tolerated() -> None:
    assert _open(VECTOR, now=VECTOR["expires_at"] + sealing.CLOCK_SKEW_S).seq == 7
    with pytest.raises(SealError) as err:
        _open(VECTOR, now=VECTOR["expires_at"] + sealing.CLOCK_SKEW_S + 1)
    assert err.value.reason == "expired"


def test_untrusted_clock_skips_expiry_only() -> None:
    assert _open(VECTOR, now=None).seq == 7


def test_envelope_for_another_sealing_key_does_not_decrypt() -> None:
    other = X25519PrivateKey.from_private_bytes(bytes.fromhex("66" * 32))
    env = sealing.seal(PROFILE, device_id="dev-a", device_public=other.public_key(), platform_key=PLATFORM_KEY,
                       assignment_id="z", seq=1, issued_at=NOW, expires_at=NOW + 60)
    with pytest.raises(SealError) as err:
        _open(env)
    assert err.value.reason == "decrypt"


def test_replay_guard_is_durable(tmp_path: Path) -> None:
    guard = sealing.ReplayGuard(tmp_path / "replay.json")
    assert guard.check("a-7", 7) == "new"
    guard.accept("a-7", 7)
    guard.record_result("a-7", {"assignment_id": "a-7", "ok": True, "detail": "loaded"})
    again = sealing.ReplayGuard(tmp_path / "replay.json")  # after a restart
    assert again.check("a-7", 7) == "duplicate"
    assert again.last_result == {"assignment_id": "a-7", "ok": True, "detail": "loaded"}
    for aid, seq in (("a-6", 6), ("other", 7), ("a-1", 1)):
        with pytest.raises(SealError) as err:
            again.check(aid, seq)
        assert err.value.reason == "replay"
    assert again.check("a-8", 8) == "new"
    assert (tmp_path / "replay.json").stat().st_mode & 0o777 == 0o600


def test_no_key_material_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [PROFILE.ki.hex(), PROFILE.opc.hex(), PROFILE.ki.hex().upper()]
    texts = [repr(PROFILE), str(_open(VECTOR))]
    bad = dict(VECTOR, ct=_flip(VECTOR["ct"]))
    for env in (bad, {**VECTOR, "device": "x"}):
        with pytest.raises(SealError) as err:
            _open(env)
        texts.append(str(err.value))
    with pytest.raises(SealError) as err:
        sealing.profile_from_dict({"iccid": "1", "imsi": "2", "ki": PROFILE.ki.hex(), "opc": "zz"})
    texts.append(str(err.value))
    texts.append(caplog.text)
    for text in texts:
        for s in secrets:
            assert s not in text

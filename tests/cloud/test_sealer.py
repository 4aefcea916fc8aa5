"""The reference cloud's sealer (board/virtual/cloud/sealer.py) against docs/protocol.md and
against the agent's sealing: the published vector, both directions, tampering refused by both.

The vector and its keys are read from docs/protocol.md itself, so the doc, the independent
sealer and the agent are three witnesses: if any one drifts, a test here fails.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from agent.cloud import sealing
from agent.errors import SealError
from agent.sim import Plan, SimProfile
from board.virtual.cloud import sealer
from board.virtual.cloud.canonical import canonical
from tests.cloud.contract_corpus import DOC, doc_plaintext, doc_vector

TABLE_RE = re.compile(r"^\| (?P<item>[^|]+?) \| (?P<cell>[^|]+?) \|$", re.MULTILINE)
TICKED = re.compile(r"`([^`]+)`")
REPEAT = re.compile(r"^`([0-9a-f]{2})` x ([0-9]+)$")


def vector_table() -> dict[str, list[str]]:
    """The test vector's table in docs/protocol.md: item -> the values in backticks."""
    section = DOC.read_text().split("### Test vector", 1)[1].split("Expected plaintext", 1)[0]
    return {m["item"]: TICKED.findall(m["cell"]) for m in TABLE_RE.finditer(section)}


def table_bytes(item: str) -> bytes:
    """A key or nonce the table writes as ``11`` x 32: one byte, repeated."""
    cell = next(m["cell"] for m in TABLE_RE.finditer(DOC.read_text()) if m["item"] == item)
    found = REPEAT.match(cell)
    assert found, (item, cell)
    return bytes.fromhex(found.group(1)) * int(found.group(2))


def _raw(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


TABLE = vector_table()
DEVICE_KEY = X25519PrivateKey.from_private_bytes(table_bytes("device sealing private key (X25519)"))
PLATFORM_KEY = Ed25519PrivateKey.from_private_bytes(table_bytes("platform signing private key (Ed25519)"))
EPHEMERAL = X25519PrivateKey.from_private_bytes(table_bytes("ephemeral private key (X25519)"))
NONCE = table_bytes("nonce")
PLAINTEXT = doc_plaintext()
VECTOR = doc_vector()
DEVICE_ID, ASSIGNMENT_ID, SEQ = TABLE["device id, assignment id, seq"]
ISSUED_AT, EXPIRES_AT = TABLE["issued_at, expires_at"]
BINDING: dict[str, Any] = {"device_id": DEVICE_ID, "assignment_id": ASSIGNMENT_ID, "seq": int(SEQ), "issued_at": int(ISSUED_AT),
           "expires_at": int(EXPIRES_AT)}
"""The table's device id, assignment id, seq, issued_at and expires_at."""


def test_the_vector_table_reads_whole_and_its_public_keys_match_its_private_ones() -> None:
    assert BINDING == {"device_id": "dev-a", "assignment_id": "a-dev-a-7", "seq": 7, "issued_at": 1767225600,
                       "expires_at": 1767226200}
    assert len(NONCE) == sealer.NONCE_BYTES
    for item, key in {"device sealing public key (PEM)": DEVICE_KEY.public_key(),
                      "platform public key (PEM)": PLATFORM_KEY.public_key()}.items():
        pem = f"-----BEGIN PUBLIC KEY-----\n{TABLE[item][0]}\n-----END PUBLIC KEY-----\n".encode()
        assert _raw(serialization.load_pem_public_key(pem)) == _raw(key), item  # type: ignore[arg-type]


def _seal_vector() -> dict[str, Any]:
    return sealer.seal(json.loads(PLAINTEXT), device_public=DEVICE_KEY.public_key(), platform_key=PLATFORM_KEY,
                       ephemeral=EPHEMERAL, nonce=NONCE, **BINDING)


def test_the_independent_sealer_reproduces_the_published_vector() -> None:
    assert canonical(json.loads(PLAINTEXT)) == PLAINTEXT
    assert _seal_vector() == VECTOR


def test_the_agent_opens_the_vector_the_independent_sealer_made() -> None:
    opened = sealing.open_envelope(_seal_vector(), device_id="dev-a", device_key=DEVICE_KEY,
                                   platform_public=PLATFORM_KEY.public_key(), now=None)
    assert (opened.assignment_id, opened.seq, opened.expires_at) == ("a-dev-a-7", 7, 1767226200)
    assert canonical(sealing.profile_to_dict(opened.profile)) == PLAINTEXT


def test_the_independent_sealer_opens_the_vector() -> None:
    assert canonical(sealer.open_envelope(VECTOR, device_key=DEVICE_KEY, platform_public=PLATFORM_KEY.public_key(),
                                          device_id="dev-a")) == PLAINTEXT


PROFILES = [
    SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=bytes(range(16)), opc=bytes(range(16, 32)),
               plmn="44010", apn="internet.a.lab", plan=Plan("5GB-month", 5_000_000_000, "month", 128, 4_200_000_000)),
    SimProfile(iccid="8981100000001000027", imsi="44010000010000", ki=b"\xff" * 16, opc=b"\x00" * 16, plmn="440101",
               apn="", plan=Plan("200k", None, "none", None, None, "+09:00")),
]
"""The vector's profile, and one with every optional part at its other extreme."""


def _agent_seal(profile: SimProfile, device: X25519PrivateKey, **binding: Any) -> dict[str, Any]:
    return sealing.seal(profile, device_public=device.public_key(), platform_key=PLATFORM_KEY,
                        **{**BINDING, **binding})


def _cloud_seal(profile: SimProfile, device: X25519PrivateKey, **binding: Any) -> dict[str, Any]:
    return sealer.seal(sealing.profile_to_dict(profile), device_public=device.public_key(),
                       platform_key=PLATFORM_KEY, **{**BINDING, **binding})


def _agent_open(env: Any) -> dict[str, Any]:
    opened = sealing.open_envelope(env, device_id="dev-a", device_key=DEVICE_KEY,
                                   platform_public=PLATFORM_KEY.public_key(), now=None)
    return sealing.profile_to_dict(opened.profile)


def _cloud_open(env: Any) -> dict[str, Any]:
    return sealer.open_envelope(env, device_key=DEVICE_KEY, platform_public=PLATFORM_KEY.public_key(),
                                device_id="dev-a")


SEALERS = {"agent": _agent_seal, "cloud": _cloud_seal}
OPENERS = {"agent": _agent_open, "cloud": _cloud_open}


@pytest.mark.parametrize("sealed_by", SEALERS)
@pytest.mark.parametrize("opened_by", OPENERS)
@pytest.mark.parametrize("profile", PROFILES, ids=["vector", "extremes"])
def test_each_side_opens_the_others_fresh_envelopes(sealed_by: str, opened_by: str, profile: SimProfile) -> None:
    env = SEALERS[sealed_by](profile, DEVICE_KEY)
    assert OPENERS[opened_by](env) == sealing.profile_to_dict(profile)


@pytest.mark.parametrize("sealed_by", SEALERS)
def test_fresh_envelopes_draw_fresh_keys_and_nonces(sealed_by: str) -> None:
    a, b = (SEALERS[sealed_by](PROFILES[0], DEVICE_KEY) for _ in range(2))
    assert a["epk"] != b["epk"] and a["nonce"] != b["nonce"] and a["ct"] != b["ct"]


def _flip(text: str, at: float = 0.5) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[int(len(raw) * at)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _forged(env: dict[str, Any]) -> dict[str, Any]:
    """Everything right but the signer: a key the device never pinned."""
    other = Ed25519PrivateKey.from_private_bytes(b"\x55" * 32)
    h = canonical({k: env[k] for k in sealer.HEADER})
    return {**env, "sig": base64.b64encode(other.sign(sealer.SIGNATURE_CONTEXT + h + base64.b64decode(env["ct"])))
            .decode()}


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "a ciphertext bit flipped": (lambda e: {**e, "ct": _flip(e["ct"])}, "signature"),
    "the tag flipped": (lambda e: {**e, "ct": _flip(e["ct"], 0.99)}, "signature"),
    "seq raised": (lambda e: {**e, "seq": e["seq"] + 1}, "signature"),
    "expiry extended": (lambda e: {**e, "expires_at": e["expires_at"] + 86400}, "signature"),
    "another device named": (lambda e: {**e, "device": "dev-b"}, "signature"),
    "another nonce": (lambda e: {**e, "nonce": _flip(e["nonce"])}, "signature"),
    "another ephemeral key": (lambda e: {**e, "epk": _flip(e["epk"])}, "signature"),
    "signed by a stranger": (_forged, "signature"),
    "the signature flipped": (lambda e: {**e, "sig": _flip(e["sig"])}, "signature"),
    "no algorithm worth the name": (lambda e: {**e, "alg": "none"}, "algorithm"),
    "the signature missing": (lambda e: {k: v for k, v in e.items() if k != "sig"}, "malformed"),
    "a field beyond the contract": (lambda e: {**e, "note": "trust me"}, "malformed"),
    "the signature not base64": (lambda e: {**e, "sig": "!!"}, "malformed"),
    "seq a string": (lambda e: {**e, "seq": str(e["seq"])}, "malformed"),
    "not an object": (lambda e: [e], "malformed"),
}
"""What an attacker or a broken broker can do to an envelope, and the reason both refuse it."""


def _reason(opener: str, env: Any) -> str:
    errors = (SealError, sealer.SealingError)
    with pytest.raises(errors) as err:
        OPENERS[opener](env)
    refusal = err.value
    assert isinstance(refusal, errors)
    return str(refusal.reason)


@pytest.mark.parametrize("sealed_by", SEALERS)
@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_a_tampered_envelope_is_refused_by_both_with_the_same_reason(sealed_by: str, tampering: str) -> None:
    mutate, reason = TAMPERINGS[tampering]
    env = mutate(copy.deepcopy(SEALERS[sealed_by](PROFILES[0], DEVICE_KEY)))
    assert {opener: _reason(opener, env) for opener in OPENERS} == {"agent": reason, "cloud": reason}


@pytest.mark.parametrize("sealed_by", SEALERS)
def test_an_envelope_for_another_key_does_not_decrypt_on_either_side(sealed_by: str) -> None:
    other = X25519PrivateKey.from_private_bytes(b"\x66" * 32)
    env = SEALERS[sealed_by](PROFILES[0], other)
    assert {opener: _reason(opener, env) for opener in OPENERS} == {"agent": "decrypt", "cloud": "decrypt"}


@pytest.mark.parametrize("sealed_by", SEALERS)
def test_an_envelope_for_another_device_is_refused_by_both(sealed_by: str) -> None:
    env = SEALERS[sealed_by](PROFILES[0], DEVICE_KEY, device_id="dev-b")
    assert {opener: _reason(opener, env) for opener in OPENERS} == {"agent": "wrong_device", "cloud": "wrong_device"}


AWKWARD: list[Any] = [
    {"b": 1, "a": [True, False, None], "/": "a/b"},
    {"é": "é", "e": "\u00e9\u2028\u2029", "z": "\U0001f600"},
    {"ctl": "\x00\x01\x1f\x7f\b\t\n\f\r", "q": '"\\', "big": 10**15, "neg": -7},
    {"\uffff": 1, "\U00010000": 2, "\ue000": 3},
    {"half": 0.5, "whole": 600.0, "small": 1e-05, "edge": 0.0001, "big": 1.5e16, "tenth": 0.1, "neg": -2.25},
]
"""Strings and keys where JSON encoders differ: slashes, non-ASCII, astral characters,
controls and DEL, quotes, keys whose code-point order differs from UTF-16's, and numbers
on both sides of the switch to exponent form (docs/protocol.md 3.0)."""


@pytest.mark.parametrize("value", AWKWARD)
def test_canonical_json_from_the_doc_text_is_what_the_doc_says_python_writes(value: Any) -> None:
    assert canonical(value) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_canonical_json_writes_the_doc_s_own_number_examples() -> None:
    assert [canonical(x) for x in (0.5, 600.0, 0.0001, 1e-05, 1.5e16, 600)] == [
        b"0.5", b"600.0", b"0.0001", b"1e-05", b"1.5e+16", b"600"]


def test_canonical_json_refuses_what_is_not_json() -> None:
    for value in ({"x": float("nan")}, {"x": float("inf")}):
        with pytest.raises(ValueError, match="NaN or Infinity"):
            canonical(value)
    for value in ({1: "x"}, {"x": b"bytes"}):
        with pytest.raises(TypeError):
            canonical(value)

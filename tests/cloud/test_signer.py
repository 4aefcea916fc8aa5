"""The reference cloud's signer (board/virtual/cloud/signer.py) against docs/protocol.md and
the agent's checks (agent/cloud/platformsig.py): the policy vector, the doc's signed
examples, signatures made by either side accepted by the other, tampering refused by both."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud import platformsig
from agent.errors import ProtocolError
from board.virtual.cloud import signer
from board.virtual.cloud.canonical import canonical
from tests.cloud.contract_corpus import DOC, doc_examples

PLATFORM_KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("22" * 32))
"""Section 4's vector key, which 3.8.2 and 4.1 sign their examples with."""
PUBLIC = PLATFORM_KEY.public_key()
DEVICE = "dev-a"

VECTOR_RE = re.compile(r"the policy\s+`(?P<policy>\{[^`]+\})` has the canonical form\s+`(?P<canonical>\{[^`]+\})`"
                       r" and\s+`sig` = `(?P<sig>[^`]+)`")


def test_the_independent_signer_reproduces_the_policy_vector() -> None:
    found = VECTOR_RE.search(DOC.read_text())
    assert found, "docs/protocol.md 3.8.2 has no policy test vector"
    policy = json.loads(found["policy"])
    signed = signer.sign_policy(policy, device_id=DEVICE, key=PLATFORM_KEY)
    assert canonical({k: v for k, v in signed.items() if k != "sig"}).decode() == found["canonical"]
    assert signed["sig"] == found["sig"]


def _policies() -> list[dict[str, Any]]:
    """Every signed policy on the page: the retained examples and the set_policy command's."""
    examples = doc_examples()
    return [*examples["policy"], *(c["policy"] for c in examples["command"] if c["action"] == "set_policy")]


def test_every_policy_example_is_signed_as_the_independent_signer_signs() -> None:
    policies = _policies()
    assert len(policies) >= 3
    for policy in policies:
        signer.verify_policy(policy, device_id=DEVICE, public=PUBLIC)
        assert signer.sign_policy(policy, device_id=DEVICE, key=PLATFORM_KEY) == policy  # Ed25519 is deterministic


def test_the_floor_example_verifies_on_both_sides_and_is_reproduced() -> None:
    reply = next(a for a in doc_examples()["assignment"] if "floor" in a)
    floor, rid = reply["floor"], reply["request_id"]
    assert signer.verify_floor(floor, device_id=DEVICE, request_id=rid, public=PUBLIC) == floor["seq"]
    assert platformsig.verify_floor(floor, device_id=DEVICE, request_id=rid, public=PUBLIC) == floor["seq"]
    assert signer.sign_floor(device_id=DEVICE, request_id=rid, seq=floor["seq"], key=PLATFORM_KEY) == floor


POLICY = {"v": 1, "version": 7, "max_per_hour": 4, "lull_kbps": 32.5,
          "pacing": {"backoff_base_s": 0.5, "backoff_cap_s": 600.0, "swap_window_s": 1e-05},
          "technician_keys": {"version": 2, "keys": [{"name": "bob@site", "ed25519": "A" * 43 + "="}]},
          "note": "caf\u00e9 / \U0001f600"}
"""Floats on both sides of the exponent switch, a non-ASCII note, a slash: where signers differ."""

SIGNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "agent": lambda p, device=DEVICE: platformsig.sign_policy(p, device_id=device, key=PLATFORM_KEY),
    "cloud": lambda p, device=DEVICE: signer.sign_policy(p, device_id=device, key=PLATFORM_KEY),
}


def _agent_verify(policy: dict[str, Any]) -> None:
    platformsig.verify_policy(policy, device_id=DEVICE, public=PUBLIC)


def _cloud_verify(policy: dict[str, Any]) -> None:
    signer.verify_policy(policy, device_id=DEVICE, public=PUBLIC)


VERIFIERS = {"agent": _agent_verify, "cloud": _cloud_verify}


@pytest.mark.parametrize("signed_by", SIGNERS)
@pytest.mark.parametrize("verified_by", VERIFIERS)
def test_each_side_accepts_the_others_policy_signature(signed_by: str, verified_by: str) -> None:
    VERIFIERS[verified_by](SIGNERS[signed_by](POLICY))


def test_both_sides_sign_the_same_bytes() -> None:
    assert SIGNERS["agent"](POLICY) == SIGNERS["cloud"](POLICY)


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


POLICY_TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "version raised": (lambda p: {**p, "version": p["version"] + 1}, "signature"),
    "a knob changed": (lambda p: {**p, "pacing": {**p["pacing"], "backoff_cap_s": 1}}, "signature"),
    "a technician key added": (lambda p: {**p, "technician_keys": {"version": 3, "keys": []}}, "signature"),
    "another device named": (lambda p: {**p, "device": "dev-b"}, "signature"),
    "the signature flipped": (lambda p: {**p, "sig": _flip(p["sig"])}, "signature"),
    "unsigned": (lambda p: {k: v for k, v in p.items() if k != "sig"}, "signature"),
    "signed for another device": (lambda p: SIGNERS["cloud"](POLICY, device="dev-b"), "wrong_device"),
}


def _reason(verify: Callable[[dict[str, Any]], None], policy: dict[str, Any]) -> str:
    with pytest.raises((ProtocolError, signer.SignatureRefused)) as err:
        verify(policy)
    refusal = err.value
    assert isinstance(refusal, ProtocolError | signer.SignatureRefused)
    return str(refusal.reason)


@pytest.mark.parametrize("signed_by", SIGNERS)
@pytest.mark.parametrize("tampering", POLICY_TAMPERINGS)
def test_a_tampered_policy_is_refused_by_both_with_the_same_reason(signed_by: str, tampering: str) -> None:
    mutate, reason = POLICY_TAMPERINGS[tampering]
    policy = mutate(SIGNERS[signed_by](POLICY))
    assert {name: _reason(v, policy) for name, v in VERIFIERS.items()} == {"agent": reason, "cloud": reason}


FLOOR_SIGNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "agent": lambda rid, seq: platformsig.sign_floor(device_id=DEVICE, request_id=rid, seq=seq, key=PLATFORM_KEY),
    "cloud": lambda rid, seq: signer.sign_floor(device_id=DEVICE, request_id=rid, seq=seq, key=PLATFORM_KEY),
}
FLOOR_VERIFIERS: dict[str, Callable[..., int]] = {
    "agent": lambda floor, rid: platformsig.verify_floor(floor, device_id=DEVICE, request_id=rid, public=PUBLIC),
    "cloud": lambda floor, rid: signer.verify_floor(floor, device_id=DEVICE, request_id=rid, public=PUBLIC),
}


@pytest.mark.parametrize("signed_by", FLOOR_SIGNERS)
@pytest.mark.parametrize("verified_by", FLOOR_VERIFIERS)
def test_each_side_accepts_the_others_floor_and_refuses_it_for_another_request(signed_by: str,
                                                                              verified_by: str) -> None:
    floor = FLOOR_SIGNERS[signed_by]("req-1", 41)
    assert FLOOR_VERIFIERS[verified_by](floor, "req-1") == 41
    for changed, rid in (({**floor, "seq": 40}, "req-1"), (floor, "req-2"), ({**floor, "sig": _flip(floor["sig"])},
                                                                            "req-1")):
        with pytest.raises((ProtocolError, signer.SignatureRefused)):
            FLOOR_VERIFIERS[verified_by](changed, rid)

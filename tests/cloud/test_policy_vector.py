"""docs/protocol.md 3.8.2: the signed-policy test vector, and every policy on that page
verifies with the vector's platform key (so the cloud team's examples are real)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud import platformsig
from agent.errors import ProtocolError
from tests.cloud.test_protocol import doc_examples

PLATFORM = Ed25519PrivateKey.from_private_bytes(b"\x22" * 32)
"""The platform signing key of the sealing test vector (docs/protocol.md section 4)."""
DEVICE = "dev-a"


def test_the_published_vector() -> None:
    signed = platformsig.sign_policy({"version": 12, "swap_below_bytes": 200000000}, device_id=DEVICE, key=PLATFORM)
    assert platformsig.canonical(signed) == b'{"device":"dev-a","swap_below_bytes":200000000,"version":12}'
    assert signed["sig"] == ("+3WspPOJFRe/DTU/wvGWIP3rMts/6YF7/8n6iAbeLvvr86cA6EDlNA03NlPcIT5gWYhHrlJXWFmnyyGOPqlGCw"
                             "==")


def test_every_policy_example_is_signed_for_dev_a() -> None:
    found = doc_examples()
    policies = found["policy"] + [c["policy"] for c in found["command"] if c["action"] == "set_policy"]
    assert len(policies) >= 3
    for policy in policies:
        opened = platformsig.verify_policy(policy, device_id=DEVICE, public=PLATFORM.public_key())
        assert "sig" not in opened and opened["device"] == DEVICE
        with pytest.raises(ProtocolError):
            platformsig.verify_policy(policy, device_id="dev-b", public=PLATFORM.public_key())


def test_canonical_refuses_numbers_that_are_not_json() -> None:
    with pytest.raises(ProtocolError):
        platformsig.canonical({"version": 1, "lull_kbps": float("nan")})

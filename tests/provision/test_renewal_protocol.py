"""The renewal messages as the contract states them: the doc's examples validate, and
malformed bodies are refused with a typed error."""

from __future__ import annotations

import pytest

from agent.cloud import protocol as proto
from agent.errors import ProtocolError
from tests.cloud.test_protocol import doc_examples


def test_doc_examples_of_renewal_validate() -> None:
    found = doc_examples()
    assert len(found["cert_request"]) == 1 and len(found["cert_reply"]) == 2
    for body in found["cert_request"]:
        proto.validate_cert_request(body)
    assert {proto.validate_cert_reply(b)["status"] for b in found["cert_reply"]} == {"ok", "refused"}


@pytest.mark.parametrize("body", [
    {"request_id": "r"},
    {"request_id": "r", "csr": "not a csr"},
    {"request_id": 7, "csr": "-----BEGIN CERTIFICATE REQUEST-----"},
    {"request_id": "r", "csr": "-----BEGIN CERTIFICATE REQUEST-----" + "A" * proto.MAX_PEM_CHARS},
])
def test_bad_requests_are_refused(body: dict) -> None:
    with pytest.raises(ProtocolError):
        proto.validate_cert_request(body)


@pytest.mark.parametrize("body", [
    {"request_id": "r", "status": "ok"},
    {"request_id": "r", "status": "ok", "cert": "nope"},
    {"request_id": "r", "status": "refused"},
    {"request_id": "r", "status": "maybe"},
])
def test_bad_replies_are_refused(body: dict) -> None:
    with pytest.raises(ProtocolError):
        proto.validate_cert_reply(body)

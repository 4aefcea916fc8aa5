"""Two readings of docs/protocol.md held to one corpus: the JSON Schemas and the agent.

The schemas (docs/schemas/, read by the reference cloud's validator) and the agent's own
hand-written validators were written apart; each must accept every good message of
tests/cloud/contract_corpus.py and refuse every bad one. A failure names the case, so it
reads as "this side disagrees with the doc about <rule>".

The agent's verdict on a message is what the device itself does with one: the protocol
validator, then for an assignment its replay floor checked (agent/cloud/platformsig.py) and
the envelope opened (agent/cloud/sealing.py), for a policy (retained or in a command) its
signature first, then its fields, version bounds (platformsig), pacing (agent/cloud/pacing.py)
and technician keys (agent/core/technicians.py). Checks that depend on the device's state
(the version it holds, the replay mark) are left out: the corpus judges messages.
Only the agent's typed refusals count as a refusal; any other exception is a bug and fails
the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jsonschema import Draft202012Validator

from agent.cloud import pacing, platformsig, sealing
from agent.cloud import protocol as proto
from agent.cloud.profilecheck import check_profile
from agent.cloud.schema import EVENT_SCHEMAS
from agent.core import technicians
from agent.errors import ConfigError, ProtocolError
from agent.plans.update import parse_update
from board.virtual.cloud import contract
from board.virtual.cloud.rules import RULES
from tests.cloud.contract_corpus import CASES, Case, doc_examples

DEVICE_KEY = X25519PrivateKey.from_private_bytes(bytes.fromhex("11" * 32))
PLATFORM_PUBLIC = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("22" * 32)).public_key()
"""The test vector's keys (docs/protocol.md 4): the corpus's envelopes are sealed with them."""


def _envelope(env: Any) -> None:
    sealing.open_envelope(env, device_id="dev-a", device_key=DEVICE_KEY, platform_public=PLATFORM_PUBLIC,
                          now=None)


def _assignment(body: dict[str, Any]) -> None:
    reply = proto.validate_assignment(body)
    if reply.floor is not None:
        platformsig.verify_floor(reply.floor, device_id="dev-a", request_id=reply.request_id, public=PLATFORM_PUBLIC)
    if reply.status == "ok":
        _envelope(reply.envelope)


def _policy(body: dict[str, Any]) -> None:
    policy = proto.validate_policy(platformsig.verify_policy(body, device_id="dev-a", public=PLATFORM_PUBLIC))
    platformsig.check_version(policy["version"], platformsig.MAX_POLICY_VERSION)  # the bound, not the step
    pacing.from_policy(policy, pacing.PacingPolicy())
    if technicians.POLICY_FIELD in policy:
        technicians.parse_technicians(policy[technicians.POLICY_FIELD])


def _command(body: dict[str, Any]) -> None:
    command = proto.validate_command(body)
    if command.action == "set_policy" and command.policy is not None:
        _policy(command.policy)
    if command.action == "plan_update":
        parse_update(platformsig.verify_plan_update(command.plan_update, device_id="dev-a", public=PLATFORM_PUBLIC))


AGENT: dict[str, Callable[[Any], Any]] = {
    "state": proto.validate_state, "usage": proto.validate_record, "event": proto.validate_record,
    "request": proto.validate_request, "assignment": _assignment, "ack": proto.validate_ack,
    "command": _command, "policy": _policy, "cert_request": proto.validate_cert_request,
    "cert_reply": proto.validate_cert_reply, "envelope": _envelope, "profile": check_profile,
    "update_get": proto.validate_update_get, "update_chunk": proto.validate_update_chunk,
}
"""Message kind -> what the device does to judge one (raises its typed refusal)."""


NOT_A_MESSAGE = ("envelope", "profile")
"""Parts of a message (section 4), judged as the device judges them once it holds them."""


def agent_refusal(case: Case) -> str | None:
    """Why the device refuses the case (its typed error's reason), or None if it accepts it.
    The device's path: the body's bytes decoded (size, JSON, version), then validated."""
    try:
        body = case.body if case.kind in NOT_A_MESSAGE else proto.decode(json.dumps(case.body).encode())
        AGENT[case.kind](body)
    except ProtocolError as exc:
        return exc.reason or "refused"
    except ConfigError:
        return "technician_keys"
    return None


def agent_accepts(case: Case) -> bool:
    return agent_refusal(case) is None


ABOUT_SIGNATURES = re.compile(r"sign|unsigned")
"""Cases whose violation is the signature itself; every other bad case is signed properly,
so a refusal for "signature" would hide the rule under test."""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_schema_judges_as_the_doc(case: Case) -> None:
    assert (contract.problems(case.kind, case.body) == []) is case.good, contract.problems(case.kind, case.body)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_agent_judges_as_the_doc(case: Case) -> None:
    refusal = agent_refusal(case)
    assert (refusal is None) is case.good, refusal
    if refusal is not None and not ABOUT_SIGNATURES.search(case.name):
        assert refusal != "signature", "refused for its signature, not for the rule under test"


def test_the_corpus_covers_every_message_and_event_kind() -> None:
    """Each schema file is tested both ways: a kind without a bad case could accept anything."""
    for kind in contract.MESSAGE_KINDS:
        assert {c.good for c in CASES if c.kind == kind} == {True, False}, kind
    kinds = {c.body["body"]["kind"] for c in CASES if c.kind == "event" and c.good}
    assert kinds == set(EVENT_SCHEMAS)


def _schema_files() -> dict[str, dict[str, Any]]:
    return contract.load()[1]


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_every_schema_is_draft_2020_12_under_its_own_id() -> None:
    files = _schema_files()
    assert set(contract.MESSAGE_KINDS) | {f"event/{k}" for k in EVENT_SCHEMAS} | set(contract.PART_SCHEMAS) == set(files)
    for name, schema in files.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["$id"] == f"{contract.BASE_URI}{name}.json", name


UNPORTABLE_CLASS = re.compile(r"\\[dDwWsSbB]")
"""Classes that differ between ECMA-262 and Python's str patterns (Unicode digits, word
characters, spaces)."""
BRACKETS = re.compile(r"\[(?:\\.|[^\]\\])*\]")
DOT = re.compile(r"(?<!\\)\.")
"""An unescaped '.' outside brackets: which line terminators it excludes differs."""


def test_every_pattern_means_the_same_in_ecma_262_and_python() -> None:
    found = [p for schema in _schema_files().values() for p in _patterns(schema)]
    assert len(found) > 20
    for pattern in found:
        assert pattern.startswith("^"), pattern
        assert "$" not in pattern[:-1].replace("\\$", ""), pattern
        assert not UNPORTABLE_CLASS.search(pattern), pattern
        assert not DOT.search(BRACKETS.sub("", pattern)), pattern


def test_a_trailing_line_break_is_refused_although_pythons_dollar_would_take_it() -> None:
    assert re.match(r"^89[0-9]{16,18}$", "8981100000001000019\n")  # why contract.py reads $ as ECMA does
    assert contract.problems("envelope", {**_vector(), "device": "dev-a\n"})


def _vector() -> dict[str, Any]:
    return dict(next(c.body for c in CASES if c.name == "envelope: the test vector"))


def test_every_rule_a_schema_names_is_listed_and_checked() -> None:
    files = _schema_files()
    listed = set(files["defs"]["x-rule-names"])
    used = {n for s in files.values() for n in contract._rule_names(s)}
    assert listed == used == set(RULES)


def test_a_schema_naming_an_unknown_rule_does_not_load(tmp_path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"$id": "https://pw.invalid/v1/x.json", "x-rules": ["nobody"]}))
    with pytest.raises(LookupError, match="nobody"):
        contract.load.__wrapped__(tmp_path)


def test_the_agents_event_tables_are_the_schema_files() -> None:
    """agent/cloud/schema.py keeps its own copy of each event kind's fields (the device has
    no jsonschema): the same names, the same required ones."""
    files = _schema_files()
    for kind, table in EVENT_SCHEMAS.items():
        schema = files[f"event/{kind}"]
        assert set(table) == set(schema["properties"]), kind
        assert {n for n, f in table.items() if f.required} == set(schema["required"]), kind
        assert schema["additionalProperties"] is False, kind


RAW: list[tuple[bytes, str]] = [
    (b"{not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"v": 1, "online": true, "session": NaN}', "malformed"),
    (b'{"v": 1, "online": true, "session": 1, "rssi_dbm": -Infinity}', "malformed"),
    (b'{"v": 2, "online": true, "session": 1}', "version"),
    (b'{"v": true, "online": true, "session": 1}', "version"),
    (b'{"v": 1, "online": true}', "schema"),
    (b'{"v": 1, "pad": "' + b"x" * contract.MAX_MESSAGE_BYTES + b'"}', "oversized"),
]
"""Bodies refused before or at their schema, with the reason docs/protocol.md 3 gives."""


@pytest.mark.parametrize("payload, reason", RAW)
def test_both_readings_refuse_raw_bodies_with_the_contracts_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(contract.ContractError) as err:
        contract.decode(payload, "state")
    assert err.value.reason == reason
    with pytest.raises(ProtocolError) as refused:
        proto.validate_state(proto.decode(payload))
    assert refused.value.reason == reason


def test_decode_returns_a_body_that_fits() -> None:
    assert contract.decode(b'{"v": 1, "online": false, "session": 3}', "state") == {"v": 1, "online": False,
                                                                                     "session": 3}


def test_topic_leaves_name_their_kinds() -> None:
    assert contract.kind_of_leaf("event/health") == "event"
    assert contract.kind_of_leaf("assign/request") == "request"
    assert contract.kind_of_leaf("cert") == "cert_reply"
    assert contract.kind_of_leaf("gossip") is None
    assert set(contract.LEAF_KINDS.values()) | {"event"} == set(contract.MESSAGE_KINDS) - {"envelope", "profile"}


def test_every_example_in_the_doc_fits_its_schema_and_the_agent() -> None:
    """Whatever example docs/protocol.md gains later is held to both readings too."""
    examples = doc_examples()
    assert set(examples) == set(contract.MESSAGE_KINDS) - set(NOT_A_MESSAGE)
    for kind, bodies in examples.items():
        for body in bodies:
            assert contract.problems(kind, body) == [], (kind, body)
            assert agent_accepts(Case("doc example", kind, body, True)), (kind, body)


def test_topics_name_their_kinds() -> None:
    assert contract.kind_of_topic("pw/v1/dev-a/event/outage") == "event"
    assert contract.kind_of_topic("pw/v1/dev-a/cert/request") == "cert_request"
    assert contract.kind_of_topic("pw/v2/dev-a/state") is None
    assert contract.kind_of_topic("pw/v1/dev-a") is None


def test_parse_leaves_the_schema_to_later() -> None:
    """A record is parsed first and judged later: a bad body is still acknowledged (3.6)."""
    payload = b'{"v": 1, "stream": "usage", "seq": 1, "base": 1, "body": {"rx_bytes": -1}}'
    assert contract.parse(payload, "usage")["seq"] == 1
    with pytest.raises(contract.ContractError) as err:
        contract.decode(payload, "usage")
    assert err.value.reason == "schema"

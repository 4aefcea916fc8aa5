"""The cloud contract as the reference cloud reads it: docs/schemas/ through ``jsonschema``.

Why a second reading: the agent checks messages with its own hand-written validators
(agent/cloud/protocol.py, schema.py, profilecheck.py); a cloud that used those too would
only show that the agent agrees with itself, and a wrong reading of the contract on the
device would be copied into the cloud. So the reference cloud validates what it receives
and what it sends against the JSON Schema files written from docs/protocol.md (the single
source), and tests/cloud/test_contract.py holds both readings to one corpus of good and
bad messages. Nothing here imports the agent.

Three things the schema language leaves open, settled here as docs/protocol.md 3.0 says:
- **Patterns** mean what ECMA-262 says (the schemas' own regex dialect): ``$`` is the end
  of the string, not "before a final line break" as in Python's ``re``, so a value with a
  trailing newline is refused.
- **Integers** are written without a fraction: JSON Schema's ``integer`` admits ``5.0``,
  which Python's parser keeps as a float; the contract refuses it.
- **Rules** a schema names in ``x-rules`` (two fields compared, a check digit) run by name
  from rules.py at the place the schema names them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from board.virtual.cloud.rules import RULES

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "docs" / "schemas"
"""docs/schemas/ of this source tree: the lab runs from a checkout, never from a package."""

BASE_URI = "https://pw.invalid/v1/"
"""The schemas' ``$id`` prefix (a reserved name, RFC 2606: nothing is ever fetched)."""

MAX_MESSAGE_BYTES = 16 * 1024
"""docs/protocol.md 1: a message body is at most 16 KiB; larger ones are refused (oversized)."""

VERSION = 1
"""docs/protocol.md 3: every body has "v": 1; any other is refused (version)."""

MESSAGE_KINDS = ("state", "usage", "event", "request", "assignment", "ack", "command", "policy",
                 "cert_request", "cert_reply", "envelope", "profile", "update_get", "update_chunk")
"""One schema file per message (docs/protocol.md 3.0), named as the doc's examples are tagged."""

PART_SCHEMAS = ("defs", "plan", "plan_update", "manifest")
"""Schema files that are parts of messages, not messages: shared formats, and the plan that
a sealed profile and a plan update both carry (docs/protocol.md 4.2)."""

LEAF_KINDS = {"state": "state", "usage": "usage", "assign/request": "request", "assignment": "assignment",
              "ack": "ack", "command": "command", "policy": "policy", "cert/request": "cert_request",
              "cert": "cert_reply", "update/get": "update_get", "update/chunk": "update_chunk"}
"""Topic leaf (pw/v1/<device>/<leaf>) -> the message kind it carries; ``event/<kind>`` is "event"."""


class ContractError(ValueError):
    """A message that breaks the contract, with the reason a receiver gives (docs/protocol.md
    3: malformed, oversized, version, schema) and every problem found."""

    def __init__(self, kind: str, reason: str, problems: list[str]):
        super().__init__(f"{kind}: {reason}: {'; '.join(problems)[:400]}")
        self.kind, self.reason, self.problems = kind, reason, problems


def kind_of_leaf(leaf: str) -> str | None:
    """The message kind a topic leaf carries, or None for a leaf outside the contract."""
    if leaf.startswith("event/"):
        return "event"
    return LEAF_KINDS.get(leaf)


def kind_of_topic(topic: str) -> str | None:
    """The message kind of ``pw/v1/<device>/<leaf>``, or None outside the contract."""
    parts = topic.split("/", 3)
    if len(parts) < 4 or parts[:2] != ["pw", "v1"]:
        return None
    return kind_of_leaf(parts[3])


def _ecma(pattern: str) -> re.Pattern[str]:
    """An ECMA-262 pattern as Python runs it: ASCII classes, and a final ``$`` that is the
    end of the string (Python's would also match before a trailing line break)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern, re.ASCII)


_compiled = functools.cache(_ecma)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _rules(validator: Any, names: list[str], instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    for name in names:
        why = RULES[name](instance)
        if why:
            yield ValidationError(f"{why} (rule {name})")


def _integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


ContractValidator = validators.extend(
    Draft202012Validator, validators={"pattern": _pattern, "x-rules": _rules},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _integer))
"""Draft 2020-12 with the contract's three readings (module docstring)."""


def _rule_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        yield from node.get("x-rules", ())
        for value in node.values():
            yield from _rule_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rule_names(value)


@functools.lru_cache(maxsize=1)
def load(directory: Path = SCHEMA_DIR) -> tuple[Registry, dict[str, dict[str, Any]]]:
    """Every schema of ``directory`` in one registry (references resolve among the files,
    never over the network), and the files by path relative to it ("event/health")."""
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*.json")):
        schemas[path.relative_to(directory).with_suffix("").as_posix()] = json.loads(path.read_text())
    unknown = {n for s in schemas.values() for n in _rule_names(s)} - set(RULES)
    if unknown:
        raise LookupError(f"schemas name rules nobody checks: {sorted(unknown)}")
    registry: Registry = Registry().with_resources(
        (s["$id"], DRAFT202012.create_resource(s)) for s in schemas.values())
    return registry.crawl(), schemas


@functools.cache
def validator(kind: str) -> Any:
    """The validator of one schema file: a message kind, or an event kind's data ("event/health")."""
    registry, schemas = load()
    if kind not in schemas:
        raise KeyError(f"no schema {kind!r} in {SCHEMA_DIR}")
    return ContractValidator(schemas[kind], registry=registry)


def problems(kind: str, body: Any) -> list[str]:
    """Every way ``body`` breaks the schema of ``kind`` (empty: it fits), each with its place."""
    out = []
    for error in sorted(validator(kind).iter_errors(body), key=lambda e: list(map(str, e.path))):
        where = "/".join(map(str, error.absolute_path)) or "(body)"
        out.append(f"{where}: {error.message}")
    return out


def check(kind: str, body: Any) -> Any:
    """``body`` if it fits the schema of ``kind``; ContractError (reason "schema") if not."""
    found = problems(kind, body)
    if found:
        raise ContractError(kind, "schema", found)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(payload: bytes | bytearray, kind: str) -> dict[str, Any]:
    """A received body read as the contract says, before its schema: size, JSON (strictly: no
    NaN or Infinity), an object, version 1. ContractError names the first reason that applies.
    (A reliable record is parsed first and checked later: one whose body is bad is still
    acknowledged, docs/protocol.md 3.6.)"""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ContractError(kind, "oversized", [f"{len(payload)} bytes, more than {MAX_MESSAGE_BYTES}"])
    try:
        body = json.loads(bytes(payload).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(kind, "malformed", [f"not JSON: {exc.__class__.__name__}"]) from None
    if not isinstance(body, dict):
        raise ContractError(kind, "malformed", [f"not an object but {type(body).__name__}"])
    if body.get("v") != VERSION or isinstance(body.get("v"), bool):
        raise ContractError(kind, "version", [f"version {body.get('v')!r}"])
    return body


def decode(payload: bytes, kind: str) -> dict[str, Any]:
    """``parse`` then the schema of ``kind``: a received message the contract accepts whole."""
    return check(kind, parse(payload, kind))

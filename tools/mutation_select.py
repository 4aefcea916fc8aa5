"""A pytest plugin for ``make mutation`` (tools/mutation.py): only the fast tests, the same way
every time.

Loaded with ``-p tools.mutation_select`` inside mutmut's copy of the tree. Two jobs:

* **Fast tests only.** A mutant must be caught by a test that decides in milliseconds,
  not by an hour of lab (issue 29). tests/unit and tests/cloud are selected on the command
  line; this drops the tests among them that start a real mosquitto or need root (their own
  processes, other users) and those marked ``slow``: a wrong decision in a pure module should
  already fail a fast test, and a half-minute test run once per mutant that reaches it
  (the journal's bit-flip sweep reaches nearly all of the journal) would make a module's run
  take hours.
* **Reproducible verdicts.** Hypothesis draws from a fixed seed per test and keeps no
  example database, so a mutant's verdict does not depend on which mutants ran before it
  in the same tree (a shared database would replay one mutant's failing example to the next).
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings

SLOW_FIXTURES = frozenset({
    "broker",       # tests/cloud/conftest.py: a real mosquitto on loopback (and make_cloud, cloud on it)
    "big_broker",   # tests/cloud/test_max_packet.py: the same with a larger packet limit
    "needs_root",   # tests/conftest.py: namespaces, tc, nftables
    "_root_and_system_python",  # tests/unit/test_control_peers.py: clients as another uid
})
"""Fixtures (direct or through another fixture) that make a test slow or root-only."""

SLOW_NAME_PARTS = ("mosquitto",)
"""Tests that start a broker themselves, without a fixture (tests/cloud/test_cli.py)."""

settings.register_profile("mutation", database=None, derandomize=True)
settings.load_profile("mutation")


def is_fast(item: Any) -> bool:
    """Whether a collected test is one of the fast ones (no broker, no root, not marked slow)."""
    slow_fixture = SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
    marked_slow = item.get_closest_marker("slow") is not None
    return not slow_fixture and not marked_slow and not any(part in item.name for part in SLOW_NAME_PARTS)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    keep = [item for item in items if is_fast(item)]
    dropped = [item for item in items if not is_fast(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep

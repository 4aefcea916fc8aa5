"""Shared test helpers.

Root-only and tool-dependent tests use ``needs_root`` / ``needs_tool``: locally they
skip with the reason; under CI (``CI=true``) they *fail* instead, because CI runs as
root with every tool installed by ``make test`` and nothing may be skipped there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "at-corpus" / "modemmanager-vectors.jsonl"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must not skip: {reason}")
    pytest.skip(reason)


def need_root() -> None:
    """Fail in CI, skip locally, when not root (namespaces, tc and nft need it)."""
    if os.geteuid() != 0:
        _unavailable("needs root for network namespaces, tc and nftables")


def need_tool(name: str) -> str:
    """Path of a command; fail in CI, skip locally, when it is not installed."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        _unavailable(f"{name} is not installed (make test installs it)")
    return str(path)


@pytest.fixture
def needs_root() -> None:
    need_root()


CORPUS_MISSING = f"AT corpus not found at {CORPUS} (../shared beside the checkout)"
"""Issue 21, bad input: a missing corpus fails the suite with this reason, in CI and
locally alike (a skip there hid 293 vectors' worth of parser checks)."""


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    if not CORPUS.exists():
        pytest.fail(CORPUS_MISSING)
    return CORPUS

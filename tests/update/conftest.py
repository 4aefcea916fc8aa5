"""Releases cut from this tree for the update tests (packaging/release.py, the real cutter)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[2]


def _release_module() -> Any:
    spec = importlib.util.spec_from_file_location("pocket_release", REPO / "packaging" / "release.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pocket_release", module)
    spec.loader.exec_module(module)
    return module


release = _release_module()


@pytest.fixture(scope="session")
def release_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture()
def cut(tmp_path: Path, release_key: Ed25519PrivateKey) -> Callable[..., tuple[Path, Path]]:
    """cut(version=..., rollout=..., edit=...) -> (artifact, manifest) in tmp_path/releases."""
    def make(version: str = "0.2.0", rollout: int = 1, **kw: Any) -> tuple[Path, Path]:
        return release.cut(kw.pop("key", release_key), tmp_path / "releases", version=version, rollout=rollout,
                           build="test", **kw)
    return make

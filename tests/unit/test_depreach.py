"""The oldest run's choice of unit tests (tests/depreach.py): reach through imports."""

from __future__ import annotations

from pathlib import Path

from tests.depreach import reaches_pinned


def _test_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "test_probe.py"
    path.write_text(body)
    return path


def test_a_direct_import_reaches(tmp_path: Path) -> None:
    assert reaches_pinned(_test_file(tmp_path, "import serial\n"))
    assert reaches_pinned(_test_file(tmp_path, "from cryptography.hazmat.primitives import hashes\n"))


def test_an_import_through_the_project_reaches(tmp_path: Path) -> None:
    # agent.cloud.sealing imports cryptography itself; a lazy import inside a function counts.
    assert reaches_pinned(_test_file(tmp_path, "def f():\n    from agent.cloud import sealing\n"))


def test_pure_logic_does_not_reach(tmp_path: Path) -> None:
    assert not reaches_pinned(_test_file(tmp_path, "import json\nfrom agent.modem import lex\n"))


def test_a_library_named_in_text_is_kept(tmp_path: Path) -> None:
    # Code run in a subprocess is invisible to the import graph; naming the library keeps it.
    assert reaches_pinned(_test_file(tmp_path, "CODE = 'import pyroute2'\n"))

"""Fixtures for the console tests: a console on real ptys (tests/console/rig.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.rig import ConsoleRig, Terminal


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ConsoleRig]:
    r = ConsoleRig(tmp_path)
    yield r
    r.close()


@pytest.fixture
def term(rig: ConsoleRig) -> Iterator[Terminal]:
    t = Terminal(rig.cables[0].technician_path)
    rig.start()
    t.expect(r"Type help for commands\.\r\nrtr-test01 serving> $")
    yield t
    t.close()

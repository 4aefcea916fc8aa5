"""The system test's one rig: one image (cached), one lab, one boot, for the whole module.

Root only (namespaces, nspawn, the lab). Locally a missing tool or root skips with the
reason; under CI (``CI=true``) that is a failure: ``make test`` installs every tool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import need_root, need_tool
from tests.system import rig

TOOLS = ("mmdebstrap", "systemd-nspawn", "nsenter", "openssl", "dpkg-deb", "mosquitto", "nft", "tc", "ip")
TIMINGS = rig.REPO / "build" / "system" / "last-run.json"
"""Where the last run's wall times are kept (image, lab, boot, start to READY, total)."""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.System]:
    need_root()
    for tool in TOOLS:
        need_tool(tool)
    work = tmp_path_factory.mktemp("system")
    timings: dict[str, float] = {}
    try:
        with rig.open_system(work) as system:
            timings = system.facts["timings"]
            yield system
    finally:
        if timings:
            TIMINGS.parent.mkdir(parents=True, exist_ok=True)
            TIMINGS.write_text(json.dumps(timings, indent=1) + "\n")
            print(f"\nsystem test wall times (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
                  f"container journal in {work / 'journal.txt'}")

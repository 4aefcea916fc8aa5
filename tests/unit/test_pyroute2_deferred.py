"""agent/net/pyroute2_deferred.py: the agent's netlink modules import without pyroute2's
package ``__init__``, and any other user of pyroute2 in the same process still gets the
whole library, on the installed pyroute2 and on the distributions' 0.7 when it is cached
(tests/packaging/test_pyroute2_versions.py caches 0.7.9 under build/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OLD_PYROUTE2 = REPO / "build" / "test-cache" / "pyroute2-0.7.9"

PYROUTE2_VERSIONS = [
    pytest.param(None, id="installed"),
    pytest.param(OLD_PYROUTE2, id="0.7.9", marks=pytest.mark.skipif(
        not (OLD_PYROUTE2 / "pyroute2" / "__init__.py").exists(),
        reason="pyroute2 0.7.9 not cached yet (tests/packaging/test_pyroute2_versions.py caches it)")),
]


def run(code: str, pyroute2_dir: Path | None) -> dict[str, object]:
    path = [str(pyroute2_dir)] if pyroute2_dir else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


AGENT_FIRST = """
import json, sys
import agent.net.link as link, agent.net.conntrack
from agent.net import pyroute2_deferred as d
before = {"deferred": d.is_deferred(), "ndb": "pyroute2.ndb" in sys.modules, "async": link.AsyncIPRoute is not None}
import pyroute2
version = pyroute2.__version__          # a package-level name: the real __init__ runs now
from pyroute2 import IPRoute, NetlinkError
print(json.dumps({**before, "version": version, "after": d.is_deferred(), "same_class": IPRoute is link.IPRoute,
                  "same_error": NetlinkError is link.NetlinkError, "file": pyroute2.__file__}))
"""


@pytest.mark.parametrize("pyroute2_dir", PYROUTE2_VERSIONS)
def test_agent_modules_leave_the_package_init_unrun_until_someone_asks(pyroute2_dir: Path | None) -> None:
    seen = run(AGENT_FIRST, pyroute2_dir)
    assert seen["deferred"] is True and seen["ndb"] is False
    if pyroute2_dir is not None:
        assert str(seen["file"]).startswith(str(pyroute2_dir)) and seen["async"] is False  # really 0.7
    assert seen["after"] is False and seen["version"]  # the whole library, as if imported first
    assert seen["same_class"] is True and seen["same_error"] is True


def test_a_missing_name_is_an_attribute_error_after_the_real_init() -> None:
    seen = run("""
import json
import agent.net.link
import pyroute2
try:
    pyroute2.NoSuchThing
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({"missing": missing, "all": len(pyroute2.__all__) > 10, "ndb": hasattr(pyroute2, "NDB")}))
""", None)
    assert "NoSuchThing" in str(seen["missing"]) and seen["all"] is True and seen["ndb"] is True


def test_pyroute2_imported_first_is_left_alone() -> None:
    seen = run("""
import json, pyroute2, agent.net.link as link
from agent.net import pyroute2_deferred as d
print(json.dumps({"deferred": d.is_deferred(), "same": pyroute2.IPRoute is link.IPRoute}))
""", None)
    assert seen == {"deferred": False, "same": True}


@pytest.mark.parametrize("pyroute2_dir", PYROUTE2_VERSIONS)
def test_netlink_requests_work_with_the_package_deferred(pyroute2_dir: Path | None) -> None:
    """The router's addresses over rtnetlink (conntrack's own-traffic filter; no root
    needed) through ``pyroute2.iproute`` alone: the ``__init__`` stays unrun."""
    seen = run("""
import json
from agent.net import conntrack
from agent.net import pyroute2_deferred as d
addresses = conntrack._local_addresses()
print(json.dumps({"deferred": d.is_deferred(), "loopback": "127.0.0.1" in addresses}))
""", pyroute2_dir)
    assert seen == {"deferred": True, "loopback": True}

"""The oldest supported dependencies are declared and tested, not assumed (issue 28).

packaging/oldest-deps.txt holds, once, the oldest version of each runtime dependency that
a target distribution ships. Every declaration of a minimum must equal it (pyproject.toml,
the Debian control file, the OpenWrt feed Makefile and the .ipk's control file), and
``make test-oldest`` runs the agent's tests with exactly those versions installed: this
file is in that run too, where ``OLDEST_DEPS`` names the pins and the installed versions
must equal them; in the main environment they must merely meet them.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

PINS_FILE = REPO / "packaging" / "oldest-deps.txt"

DISTRO_NAMES = {
    "cryptography": ("python3-cryptography", "python3-cryptography"),
    "paho-mqtt": ("python3-paho-mqtt", "python3-paho-mqtt"),
    "pyserial": ("python3-serial", "python3-pyserial"),
    "pyroute2": ("python3-pyroute2", "python3-pyroute2"),
}
"""PyPI name -> (Debian package, OpenWrt package) of each runtime dependency."""


def pins(path: Path = PINS_FILE) -> dict[str, str]:
    """``name==version`` lines of a pins file (comments and blank lines skipped)."""
    found = {}
    for line in path.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            assert version, f"{path.name}: {line!r} is not name==version"
            found[name.strip()] = version.strip()
    return found


PINS = pins()


def test_every_runtime_dependency_is_pinned_once() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(Requirement(d).name for d in project["dependencies"]) == sorted(PINS) == sorted(DISTRO_NAMES)


def test_pyproject_minimums_are_the_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in map(Requirement, project["dependencies"]):
        minimums = [s.version for s in dep.specifier if s.operator == ">="]
        assert minimums == [PINS[dep.name]], str(dep)
        assert dep.specifier.contains(PINS[dep.name]), str(dep)  # no upper bound excludes it


def _versioned(text: str, package: str, spaced: bool) -> list[str]:
    """The versions a Depends text requires of ``package`` with ``>=``."""
    pattern = rf"(?<![\w-]){re.escape(package)} \(>={' ' if spaced else ''}([^)\s]+)\)"
    return re.findall(pattern, text)


def test_debian_control_minimums_are_the_pins() -> None:
    depends = next(line for line in (REPO / "packaging/debian/control").read_text().splitlines()
                   if line.startswith("Depends:"))
    for name, (debian, _) in DISTRO_NAMES.items():
        assert _versioned(depends, debian, spaced=True) == [PINS[name]], (debian, depends)


@pytest.mark.parametrize("path", ["packaging/openwrt/Makefile", "packaging/openwrt/control/control"])
def test_openwrt_minimums_are_the_pins(path: str) -> None:
    """The feed Makefile's EXTRA_DEPENDS (the buildroot's DEPENDS cannot carry a version)
    and the control file the SDK-less build ships, as the buildroot would write it."""
    text = (REPO / path).read_text()
    for name, (_, openwrt) in DISTRO_NAMES.items():
        assert _versioned(text, openwrt, spaced=False) == [PINS[name]], (openwrt, path)


def test_this_environment_has_the_pins_or_newer() -> None:
    """In ``make test-oldest`` (OLDEST_DEPS set) exactly the pinned versions are installed,
    so that run really is on the oldest; anywhere else, at least them."""
    exact = os.environ.get("OLDEST_DEPS")
    wanted = pins(REPO / exact) if exact else PINS
    installed = {name: metadata.version(name) for name in wanted}
    if exact:
        assert installed == wanted
    else:
        assert {n: v for n, v in installed.items() if Version(v) < Version(wanted[n])} == {}

"""``pocket-agent --version``: the release and the exact build it came from.

A package build writes ``_build.txt`` beside this file (``packaging/build.py``: the git
description of the tree it was built from and the build date), so an installed agent
names its build without git. A source checkout asks ``git describe`` instead; anything
else says ``unknown build``. Computed only when ``--version`` is asked for, so the
daemon's start pays nothing for it.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent import __version__

BUILD_STAMP = Path(__file__).with_name("_build.txt")
"""Written into the staged tree at package build time, never into the source tree."""
GIT_TIMEOUT_S = 5.0
"""``git describe`` on a small repository takes milliseconds; a hung git must not hang --version."""


def build() -> str:
    """The build: the package's stamp, else ``git describe`` of a checkout, else unknown."""
    try:
        return BUILD_STAMP.read_text().strip()
    except OSError:
        pass
    tree = Path(__file__).resolve().parent.parent
    if (tree / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(tree), "describe", "--always", "--dirty", "--tags"],
                                 capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
            return f"git {out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    return "unknown build"


def describe() -> str:
    """``0.1.0 (build git 646ba44-dirty)``."""
    return f"{__version__} (build {build()})"


def describe_short() -> str:
    """The version and build for the status file: the stamp only (no git call while serving)."""
    try:
        return f"{__version__} ({BUILD_STAMP.read_text().strip()})"
    except OSError:
        return __version__


class VersionAction(argparse.Action):
    """argparse's ``version`` action, with the text computed only when asked for."""

    def __init__(self, option_strings: Sequence[str], text: str | Callable[[], str] = describe,
                 dest: str = argparse.SUPPRESS, default: Any = argparse.SUPPRESS,
                 help: str = "print the version and build, then exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)
        self.text = text

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        text = self.text() if callable(self.text) else self.text
        print(f"{parser.prog} {text}")  # stdout, as argparse's own version action
        parser.exit()


STATE_VERSION = 1
"""The schema of the state directory this code writes (docs/update.md, "State versions").
A release's manifest says the oldest schema it reads (``min_state_version``): a device
whose state is older is refused that release. Bumped only with a change an older agent
cannot read; every change so far added keys, which older readers ignore."""

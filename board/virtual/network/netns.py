"""Small helpers to run ip/tc/nft/sysctl inside a lab network namespace.

The lab uses the real command-line tools (not pyroute2) on purpose: they are what a
router maintainer types, so a failing step in the lab's log can be pasted into a shell.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

LOGGER = logging.getLogger(__name__)

SBIN = "/usr/sbin:/sbin:/usr/bin:/bin"


class LabCommandError(RuntimeError):
    """A lab set-up command failed; carries the command and its stderr."""


def tool(name: str) -> str:
    """Absolute path of a system tool; a clear error when it is not installed."""
    path = shutil.which(name) or shutil.which(name, path=SBIN)
    if path is None:
        raise LabCommandError(f"{name} is not installed (make test / make run install it)")
    return path


def run(argv: Sequence[str], *, netns: str | None = None, check: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, inside ``netns`` when given; raise LabCommandError on failure."""
    cmd = list(argv)
    cmd[0] = tool(cmd[0])
    if netns is not None:
        cmd = [tool("ip"), "netns", "exec", netns, *cmd]
    LOGGER.debug("lab: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input_text, check=False)
    if check and proc.returncode != 0:
        raise LabCommandError(f"{' '.join(argv)} (netns {netns}): {proc.stderr.strip() or proc.returncode}")
    return proc


def json_out(argv: Sequence[str], *, netns: str | None = None) -> Any:
    """Run a command that prints JSON (``ip -j``, ``nft -j``) and parse it."""
    out = run(argv, netns=netns).stdout
    return json.loads(out) if out.strip() else []


def exists(name: str) -> bool:
    """Whether a named network namespace exists."""
    return name in namespaces()


def namespaces() -> list[str]:
    try:
        data = json_out(["ip", "-j", "netns", "list"])
    except LabCommandError:
        return []
    return [entry["name"] for entry in data or []]


def add(name: str) -> None:
    """Create a namespace with loopback up (idempotent)."""
    if not exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "link", "set", "lo", "up"], netns=name)


def delete(name: str) -> None:
    """Delete a namespace; harmless when it does not exist."""
    if exists(name):
        run(["ip", "netns", "del", name], check=False)


def sysctl(netns: str, key: str, value: str) -> None:
    run(["sysctl", "-q", "-w", f"{key}={value}"], netns=netns)

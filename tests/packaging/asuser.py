"""Run a function as another user, for the tests that play the service user.

The interpreter lives where other users cannot exec it (a root-only home), so instead of a
new process the child of a ``fork`` drops to the user (groups, gid, uid) and runs the
function; its stderr goes to a file and its return value is the exit code. The caller
needs root, and the paths involved must be reachable by that user (pytest's ``tmp_path``
is not: see ``reachable_dir``)."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.layout import Owner

needs_root = pytest.mark.usefixtures("needs_root")
"""Switching users needs root: tests/conftest.py's fixture, which fails under CI instead of
skipping, and skips locally with the reason."""


def nobody() -> Owner:
    """The unprivileged account every Debian system has: stands in for the service user."""
    entry = pwd.getpwnam("nobody")
    return Owner("nobody", entry.pw_uid, entry.pw_gid)


def run_as(owner: Owner, fn: Callable[[], int], workdir: Path) -> tuple[int, str]:
    """``fn()`` in a forked child running as ``owner``; returns (its exit code, its stderr)."""
    err = workdir / f"stderr-{os.getpid()}"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)  # not pytest's capture
            logging.root.handlers.clear()  # so the command's own logging set-up applies
            os.setgroups([])
            os.setgid(owner.gid)
            os.setuid(owner.uid)
            os.chdir("/")
            code = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent through stderr
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err.read_text()


def cli_as(owner: Owner, argv: list[str], workdir: Path) -> tuple[int, str]:
    """``pocket-agent <argv>`` through the real entry point (agent.cli.main), as ``owner``."""
    def call() -> int:
        from agent.cli import main
        return main(argv)
    return run_as(owner, call, workdir)


@contextmanager
def reachable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is under a root-only 0700 tree)."""
    path = Path(tempfile.mkdtemp(prefix="pocket-agent-layout-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

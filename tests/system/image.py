"""The system test's Debian 12 root: built once with ``mmdebstrap`` from Debian's archive,
cached under ``build/system/``, booted read-only (``systemd-nspawn --volatile=overlay``).

What goes in is what a router running the ``.deb`` has: ``minbase`` (dpkg, apt, the
essential set), systemd as PID 1 (``systemd``, ``systemd-sysv``), ``dbus`` (systemd's
own services expect the system bus), and every package ``packaging/debian/control``
names in ``Depends:``, read from that file, so the image follows the package. Nothing
comes from pip or from outside Debian's archive: the dependencies are Debian 12's own
(python3-cryptography 38.0.4, python3-paho-mqtt 1.6.1, python3-pyroute2 0.7.2,
python3-serial 3.5).

The cache is a directory ``build/system/root-<key>``, where the key is a hash of
everything that decides its contents (suite, variant, archive lines, package list), so
a changed dependency builds a new root and the old one is removed. It is made under a
temporary name and renamed when complete, so an interrupted build is never booted.
Booting it with ``--volatile=overlay`` writes nothing into it: every run starts from the
same pristine root and no copy is made (docs/system-test.md).

Run ``python -m tests.system.image`` to build it (or see it is cached) and print the time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / "build" / "system"
CONTROL = REPO / "packaging" / "debian" / "control"

SUITE = "bookworm"
"""Debian 12, the oldest distribution the package targets (packaging/README.md)."""
VARIANT = "minbase"
"""Essential packages and apt, nothing else: the router's packages are named below."""
ARCHIVE = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
"""Debian's archive only (the point release, its updates and security fixes), as a
router's /etc/apt/sources.list would name it."""
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus")
"""systemd as PID 1 (``systemd-sysv`` provides /sbin/init) and the system bus its own
services (logind) expect: without dbus the boot ends ``degraded``."""
BUILD_TIMEOUT_S = 900
"""A cold build downloads about 60 MB and unpacks 250 MB: 47 s measured on this machine's
proxy; fifteen minutes before calling the archive unreachable."""
FORMAT = 1
"""Bump when the way the root is made changes in a way the key does not show."""


def package_depends(control: Path = CONTROL) -> tuple[str, ...]:
    """The package names of the .deb's ``Depends:`` (versions and alternatives' extra
    choices dropped: apt in the root checks the versions when the .deb is installed)."""
    text = control.read_text()
    match = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    if not match:
        raise ValueError(f"{control}: no Depends: field")
    names = []
    for item in match.group(1).replace("\n", " ").split(","):
        first = item.split("|")[0].strip()
        if first:
            names.append(re.split(r"[\s(:]", first, maxsplit=1)[0])
    return tuple(names)


def packages() -> tuple[str, ...]:
    return tuple(sorted(set(BASE_PACKAGES) | set(package_depends())))


def key() -> str:
    """What decides the root's contents, hashed: a change to any of it builds a new root."""
    spec = {"format": FORMAT, "suite": SUITE, "variant": VARIANT, "archive": ARCHIVE, "packages": packages()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    root: Path
    """The pristine root directory (boot it with --volatile=overlay only)."""
    built: bool
    """True when this call built it (a cold build), False when it came from the cache."""
    seconds: float
    """Wall time of this call: the build, or the cache lookup."""


def mmdebstrap_argv(target: Path) -> list[str]:
    return ["mmdebstrap", f"--variant={VARIANT}", f"--include={','.join(packages())}",
            "--aptopt=Acquire::Retries \"3\"", SUITE, str(target), *ARCHIVE]


def build(target: Path) -> None:
    """Build a root into ``target`` (which must not exist) with mmdebstrap."""
    done = subprocess.run(mmdebstrap_argv(target), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-25:])
        raise RuntimeError(f"mmdebstrap failed (exit {done.returncode}):\n{tail}")
    (target / ".pocket-image.json").write_text(json.dumps({"key": key(), "packages": packages()}, indent=1))


def ensure(cache_dir: Path = CACHE_DIR) -> Image:
    """The cached root for today's package list, built when missing or out of date.
    Serialised by a lock, so a bench and a test starting together build it once."""
    start = time.monotonic()
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = cache_dir / f"root-{key()}"
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = False
        if not (root / ".pocket-image.json").is_file():
            for stale in cache_dir.glob("root-*"):  # other keys, and interrupted builds
                shutil.rmtree(stale, ignore_errors=True)
            partial = cache_dir / f"root-{key()}.partial"
            build(partial)
            partial.rename(root)
            built = True
    return Image(root, built, time.monotonic() - start)


def main() -> int:
    image = ensure()
    how = "built (cold)" if image.built else "cached"
    print(f"{image.root}: {how} in {image.seconds:.1f} s; packages: {' '.join(packages())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

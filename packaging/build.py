"""``make package``: the Debian package and the OpenWrt .ipk, built from this tree.

Both packages install the same things in the same places, so one staging function
serves both and the differences (systemd unit and maintainer scripts on Debian; procd
init, UCI config, capabilities file and hotplug rule on OpenWrt) are listed once each:

- ``/usr/lib/pocket-agent/agent/``: the code (sources only: Debian's postinst
  byte-compiles it; OpenWrt compiles on first import where the flash allows);
- ``/usr/bin/pocket-agent``: the launcher (packaging/pocket-agent.launcher);
- ``/usr/share/pocket-agent/profiles/``: the board profiles;
- ``/etc/pocket-agent/``: empty; provisioning fills it (docs/layout.md).

Every installed path comes from agent/layout.py.

The .deb is built by ``dpkg-deb --root-owner-group``. The .ipk needs no OpenWrt SDK: it
is what ``ipkg-build`` makes, an ar archive of ``debian-binary``, ``control.tar.gz`` and
``data.tar.gz``, written here with tarfile (owner root, fixed modes) so it can be
inspected and tested on any machine. Timestamps come from the last commit
(``SOURCE_DATE_EPOCH``), so two builds of one commit are byte-identical.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from agent import layout

PACKAGE = "pocket-agent"
RELEASE = "1"
"""Packaging revision: bump when only the packaging changes."""
EXEC, DATA, DIR = 0o755, 0o644, 0o755


def upstream_version() -> str:
    text = (REPO / "agent" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise SystemExit("agent/__init__.py has no __version__")
    return match.group(1)


def git_describe() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_date_epoch() -> int:
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True, timeout=10)
        return int(out.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def under(root: Path, path: Path) -> Path:
    """An installed absolute path inside the staging root."""
    return root / path.relative_to("/")


def stage_common(root: Path, stamp: str) -> None:
    """The code, launcher and profiles every package carries, where agent/layout.py says;
    the configuration directory, empty: provisioning writes what goes in it."""
    code = under(root, layout.CODE_DIR)
    for src in sorted((REPO / "agent").rglob("*.py")):
        if "__pycache__" not in src.parts:
            install(src, code / src.relative_to(REPO), DATA)
    (code / "agent/_build.txt").write_text(stamp + "\n")
    (code / "agent/_build.txt").chmod(DATA)
    install(HERE / "pocket-agent.launcher", root / "usr/bin/pocket-agent", EXEC)
    for profile in sorted(layout.SOURCE_PROFILE_DIR.glob("*.toml")):
        install(profile, under(root, layout.PROFILE_DIR) / profile.name, DATA)
    under(root, layout.CONFIG_DIR).mkdir(parents=True, exist_ok=True)


def stage_debian(root: Path) -> None:
    deb = HERE / "debian"
    install(HERE / "systemd/pocket-agent.service", root / "lib/systemd/system/pocket-agent.service", DATA)
    # An example only: /etc/pocket-agent/agent.toml is provisioning's (a link into the key store).
    install(deb / "agent.toml", root / "usr/share/doc/pocket-agent/examples/agent.toml", DATA)
    install(REPO / "docs/layout.md", root / "usr/share/doc/pocket-agent/layout.md", DATA)
    install(deb / "copyright", root / "usr/share/doc/pocket-agent/copyright", DATA)
    install(HERE / "README.md", root / "usr/share/doc/pocket-agent/README.md", DATA)


def stage_openwrt(root: Path) -> None:
    files = HERE / "openwrt/files"
    install(files / "pocket-agent.init", root / "etc/init.d/pocket-agent", EXEC)
    install(files / "pocket-agent.config", root / "etc/config/pocket-agent", 0o600)
    install(files / "pocket-agent.json", root / "etc/capabilities/pocket-agent.json", DATA)
    install(files / "pocket-agent.hotplug", root / "etc/hotplug.d/tty/30-pocket-agent", DATA)
    install(files / "pocket-agent.upgrade", root / "lib/upgrade/pocket-agent.sh", DATA)


def installed_size_kib(root: Path) -> int:
    """dpkg's Installed-Size: KiB, each file rounded up, the control area left out."""
    return sum(-(-p.stat().st_size // 1024) for p in root.rglob("*")
               if p.is_file() and "DEBIAN" not in p.relative_to(root).parts)


def fill(template: Path, version: str, size: int) -> str:
    return template.read_text().replace("@VERSION@", version).replace("@INSTALLED_SIZE@", str(size))


def normalise_dirs(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(DIR)


def build_deb(out: Path, stamp_base: str, epoch: int) -> Path:
    version = f"{upstream_version()}-{RELEASE}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        stage_common(root, f"deb {version} {stamp_base}")
        stage_debian(root)
        normalise_dirs(root)
        control = root / "DEBIAN"
        control.mkdir(mode=DIR)
        sums = [f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}"
                for p in sorted(root.rglob("*")) if p.is_file() and "DEBIAN" not in p.relative_to(root).parts]
        (control / "control").write_text(fill(HERE / "debian/control", version, installed_size_kib(root)))
        (control / "md5sums").write_text("\n".join(sums) + "\n")
        for script in ("postinst", "prerm", "postrm"):
            install(HERE / "debian" / script, control / script, EXEC)
        for path in root.rglob("*"):
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        target = out / f"{PACKAGE}_{version}_all.deb"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    return target


def _tar_gz(root: Path, epoch: int) -> bytes:
    """A gzipped tar of ``root`` as ipkg-build makes it: ./-relative, owned by root."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=epoch) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in [root, *sorted(root.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname="./" + str(path.relative_to(root)).lstrip("."))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _ar(members: list[tuple[str, bytes]], epoch: int) -> bytes:
    """A System V ar archive (what opkg and dpkg read)."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name + '/':<16}{epoch:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def build_ipk(out: Path, stamp_base: str, epoch: int) -> Path:
    version = f"{upstream_version()}-{RELEASE}"
    with tempfile.TemporaryDirectory() as tmp:
        data, control = Path(tmp) / "data", Path(tmp) / "control"
        stage_common(data, f"ipk {version} {stamp_base}")
        stage_openwrt(data)
        normalise_dirs(data)
        control.mkdir()
        (control / "control").write_text(fill(HERE / "openwrt/control/control", version, installed_size_kib(data) * 1024))
        install(HERE / "openwrt/control/conffiles", control / "conffiles", DATA)
        for script in ("postinst", "prerm"):
            install(HERE / "openwrt/control" / script, control / script, EXEC)
        normalise_dirs(control)
        target = out / f"{PACKAGE}_{version}_all.ipk"
        target.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.gz", _tar_gz(control, epoch)),
                                ("data.tar.gz", _tar_gz(data, epoch))], epoch))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build/packages")
    parser.add_argument("kinds", nargs="*", metavar="deb|ipk", help="what to build (default: both)")
    args = parser.parse_args(argv)
    args.kinds = args.kinds or ["deb", "ipk"]
    if set(args.kinds) - {"deb", "ipk"}:
        parser.error(f"unknown package kind in {args.kinds}")
    args.out.mkdir(parents=True, exist_ok=True)
    epoch = source_date_epoch()
    stamp = f"git {git_describe()}"
    built = []
    if "deb" in args.kinds:
        built.append(build_deb(args.out, stamp, epoch))
    if "ipk" in args.kinds:
        built.append(build_ipk(args.out, stamp, epoch))
    for path in built:
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

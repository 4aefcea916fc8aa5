"""``make release``: cut a signed release of the agent for over-the-air update (docs/update.md).

A release is two files:

- ``pocket-agent-<version>.tar.gz``, the artifact: the agent's code tree (``agent/**.py``
  and the build stamp ``agent/_build.txt``), the same files the packages install under
  /usr/lib/pocket-agent, as a gzipped tar with fixed owners, modes and times (two cuts of
  one commit are byte-identical: SOURCE_DATE_EPOCH, as packaging/build.py);
- ``pocket-agent-<version>.manifest.json``: version, build, size, SHA-256, the state
  versions, the boards, the rollout number and the floor, signed by the release key
  (agent/update/manifest.py says what is checked on the device).

``keygen`` makes a release key pair: the private key (PKCS#8 PEM, 0600 from its creation)
stays with whoever cuts releases, offline; the public key is what provisioning pins on each
device (``[update] release_key``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import layout, store
from agent.cloud import sealing
from agent.update import manifest as mf
from agent.version import STATE_VERSION

FILE_MODE = 0o644
VERSION_LINE = re.compile(r'^__version__ = "[^"]+"', re.MULTILINE)


def tree_files(source: Path) -> dict[str, bytes]:
    """The code tree's files by archive name: every ``agent/**.py`` of ``source``."""
    return {str(p.relative_to(source)): p.read_bytes() for p in sorted((source / "agent").rglob("*.py"))
            if "__pycache__" not in p.parts}


def with_version(files: dict[str, bytes], version: str, stamp: str) -> dict[str, bytes]:
    """The tree as released: ``__version__`` set to ``version`` and the build stamp added
    (which also turns the test hooks off, agent/testhooks.py)."""
    init = files["agent/__init__.py"].decode()
    out = dict(files)
    out["agent/__init__.py"] = VERSION_LINE.sub(f'__version__ = "{version}"', init).encode()
    out["agent/_build.txt"] = f"{stamp}\n".encode()
    return out


def artifact_bytes(files: dict[str, bytes], epoch: int) -> bytes:
    """A deterministic gzipped tar of ``files`` (regular files only, owner root)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=epoch) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), FILE_MODE, epoch
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def boards() -> list[str]:
    """Every board profile of this tree (board/profiles/*.toml) by name."""
    return sorted(p.stem for p in layout.SOURCE_PROFILE_DIR.glob("*.toml"))


def cut(key: Ed25519PrivateKey, out: Path, *, version: str, rollout: int, source: Path = REPO,
        board_names: list[str] | None = None, floor: str = "0", min_state_version: int = STATE_VERSION,
        state_version: int = STATE_VERSION, urgent: bool = False, build: str = "",
        epoch: int = 0, edit: Callable[[dict[str, bytes]], dict[str, bytes]] | None = None) -> tuple[Path, Path]:
    """Cut and sign one release into ``out``; returns (artifact, manifest). ``edit`` changes
    the tree before it is packed (tests cut releases that crash or never serve with it)."""
    build = build or f"git {_git_describe(source)}"
    files = with_version(tree_files(source), version, f"release {version} {build}")
    if edit is not None:
        files = edit(files)
    data = artifact_bytes(files, epoch)
    manifest = mf.Manifest(version=version, build=build[:mf.MAX_TEXT], size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), min_state_version=min_state_version,
                           state_version=state_version, boards=tuple(board_names or boards()), rollout=rollout,
                           floor=floor, urgent=urgent)
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / f"pocket-agent-{version}.tar.gz"
    artifact.write_bytes(data)
    signed = out / f"pocket-agent-{version}.manifest.json"
    signed.write_text(json.dumps(mf.sign(manifest, key), indent=1, sort_keys=True) + "\n")
    return artifact, signed


def _git_describe(source: Path) -> str:
    import subprocess  # only a cut asks git
    try:
        return subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty", "--tags"],
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def keygen(private: Path) -> Path:
    """A new release key: ``private`` (0600 from creation) and ``private``.pub beside it."""
    key = Ed25519PrivateKey.generate()
    store.atomic_write(private, sealing.private_pem(key))
    public = private.with_suffix(".pub")
    store.atomic_write(public, sealing.public_pem(key.public_key()), mode=store.PUBLIC_MODE)
    return public


def load_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{path} is not an Ed25519 private key")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("keygen", help="make a release key pair")
    gen.add_argument("private", type=Path)
    rel = sub.add_parser("cut", help="build and sign a release")
    rel.add_argument("--key", type=Path, required=True, help="the release private key (PEM)")
    rel.add_argument("--version", required=True)
    rel.add_argument("--rollout", type=int, required=True, help="higher than every rollout offered before")
    rel.add_argument("--floor", default="0", help="the lowest version devices may run from now on")
    rel.add_argument("--board", action="append", help="a board profile it supports (default: all)")
    rel.add_argument("--min-state-version", type=int, default=STATE_VERSION)
    rel.add_argument("--urgent", action="store_true", help="fetched even on the seed SIM (security fixes)")
    rel.add_argument("--out", type=Path, default=REPO / "build/releases")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        print(f"release key {args.private} (public: {keygen(args.private)})")
        return 0
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    artifact, signed = cut(load_key(args.key), args.out, version=args.version, rollout=args.rollout,
                           floor=args.floor, board_names=args.board, min_state_version=args.min_state_version,
                           urgent=args.urgent, epoch=epoch)
    print(f"{artifact}  {artifact.stat().st_size / 1024:.0f} KiB\n{signed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

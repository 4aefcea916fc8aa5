"""The artifact being fetched: a partial file that survives a dropped link and a reboot.

Each accepted chunk is appended and fsync'd before the next is asked for, so after a cut
the file holds a prefix of the artifact and the download asks for the rest from its end
(``have``): nothing fetched twice but the chunk in flight, on a link where every byte is
the renter's money. The hash is computed as the bytes arrive and over the prefix once on
open, so the whole artifact is never read again just to check it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from agent import store
from agent.errors import WrongHash
from agent.update import chunks
from agent.update.journal import update_dir
from agent.update.manifest import Manifest

READ_BLOCK = 64 * 1024


class Download:
    """The partial artifact of one manifest under ``<state_dir>/update/``."""

    def __init__(self, state_dir: Path, manifest: Manifest):
        self.manifest = manifest
        base = store.ensure_private_dir(update_dir(state_dir))
        self.part = base / f"artifact-{manifest.sha256[:16]}.part"
        self.done = base / f"artifact-{manifest.sha256[:16]}.tar.gz"
        self._hash = hashlib.sha256()
        self.have = 0
        if self.part.exists():
            if self.part.stat().st_size > manifest.size:  # not ours, or a bug: start over
                self.part.unlink()
            else:
                with self.part.open("rb") as f:
                    for block in iter(lambda: f.read(READ_BLOCK), b""):
                        self._hash.update(block)
                        self.have += len(block)

    @property
    def complete(self) -> bool:
        return self.done.exists() or self.have >= self.manifest.size

    def next_request(self) -> tuple[int, int] | None:
        """(offset, length) of the chunk to ask for, or None when every byte is here."""
        return None if self.done.exists() else chunks.next_request(self.have, self.manifest.size)

    def add(self, chunk: chunks.Chunk) -> bool:
        """Append ``chunk`` if it is the next one (True); False if it is not for this place.
        Raises BadChunk / OversizedArtifact from chunks.accept, the file unchanged."""
        if not chunks.accept(chunk, have=self.have, size=self.manifest.size, sha256=self.manifest.sha256,
                             version=self.manifest.version):
            return False
        fd = store.open_private_append(self.part)
        try:
            os.ftruncate(fd, self.have)  # a torn append of an earlier run is cut off first
            store.write_all(fd, chunk.data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._hash.update(chunk.data)
        self.have += len(chunk.data)
        return True

    def finish(self) -> Path:
        """The complete artifact, its hash checked, under its final name. WrongHash (and the
        partial file removed, so the next offer starts clean) when the bytes are not the
        manifest's."""
        if self.done.exists():
            return self.done
        digest = self._hash.hexdigest()
        if digest != self.manifest.sha256:
            self.discard()
            raise WrongHash(f"artifact hashes to {digest[:16]}..., manifest says {self.manifest.sha256[:16]}...",
                            version=self.manifest.version)
        os.rename(self.part, self.done)
        store.fsync_dir(self.done.parent)
        return self.done

    def discard(self) -> None:
        for path in (self.part, self.done):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._hash, self.have = hashlib.sha256(), 0

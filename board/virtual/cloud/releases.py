"""The reference cloud's release shelf: artifacts by hash, served chunk by chunk (issue 26).

A release is cut and signed by packaging/release.py; ``pocket-lab update`` puts its
artifact on this shelf and sends the device the ``update`` command with its manifest
(docs/protocol.md 8). Each ``update/get`` is answered with exactly the bytes asked for.
A shelf entry can be told to misbehave once per chunk (``fault``), so the lab can show the
device refusing a truncated chunk, an oversized one, or an artifact longer than its
manifest says: ``truncate`` (``length`` says more than ``data`` holds) and ``extend`` (the
last chunk carries extra bytes). An oversized chunk cannot pass the broker's 16 KiB limit;
the device's own bound for it is tested in tests/update/test_download.py.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.cloud import protocol as proto
from agent.update import chunks

LOGGER = logging.getLogger(__name__)

FAULTS = ("truncate", "extend")


@dataclass
class Shelf:
    """Artifacts by SHA-256 (or by the name a test gives a wrong one), and their counters."""

    artifacts: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    """Bytes of chunk data sent per artifact (the cloud side of "bytes per update")."""

    def add(self, path: Path, *, sha256: str | None = None, fault: str | None = None) -> str:
        """Shelve the artifact at ``path`` under its hash (or ``sha256``: a wrong hash on
        purpose); returns the name it is served by."""
        data = Path(path).read_bytes()
        name = sha256 or hashlib.sha256(data).hexdigest()
        self.artifacts[name] = data
        if fault in FAULTS:
            self.faults[name] = fault
        LOGGER.info("release shelved: %s (%d bytes%s)", name[:16], len(data), f", fault {fault}" if fault else "")
        return name

    def answer(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The ``update/chunk`` for an ``update/get``, or None for an artifact not on the shelf."""
        proto.validate_update_get(body)
        name, offset, length = body["sha256"], body["offset"], body["length"]
        data = self.artifacts.get(name)
        if data is None:
            return None
        piece = data[offset:offset + length]
        chunk = chunks.encode(name, offset, piece, len(data))
        fault = self.faults.get(name)
        if fault == "truncate" and piece:
            chunk["length"] = len(piece) + 1
        elif fault == "extend" and chunk["last"]:
            chunk = chunks.encode(name, offset, piece + b"more than the manifest says", len(data))
        self.served[name] = self.served.get(name, 0) + len(piece)
        return {"v": 1, **chunk}

"""Whether a chunk of the artifact may be appended to what the device already holds (pure).

The artifact arrives in chunks the device asks for by offset, so the only chunk it can
use is the one that starts where its partial file ends: anything else (a duplicate
redelivered by MQTT, an answer to a request from before a reboot) is ignored, not
written. A chunk that is larger than asked, whose declared length is not its length
(truncated on the way), or that would make the artifact larger than its manifest says is
refused with a typed error and the download goes on from the same offset.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from agent.errors import BadChunk, OversizedArtifact

CHUNK_BYTES = 8 * 1024
"""What the device asks for per request: 8 KiB is 10.9 KiB of base64 in one message, inside
the contract's 16 KiB body limit (docs/protocol.md 1, which the broker enforces too) with
room for the fields; a chunk lost to a dropped session costs 0.3 s of a throttled 256 kbps
link to fetch again."""
MAX_CHUNK_BYTES = 11 * 1024
"""The largest chunk either side may name: 11 KiB is 15,020 base64 characters, the most that
fits a 16 KiB message with the chunk's other fields. A bigger one is refused before it is
decoded (it could not have come through the broker honestly anyway)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk as the cloud sent it: the artifact's ``sha256``, ``offset`` and bytes."""

    sha256: str
    offset: int
    data: bytes
    last: bool


def decode(body: Any, *, version: str | None = None) -> Chunk:
    """A chunk message's fields (docs/protocol.md ``update/chunk``); BadChunk when one is
    missing, mistyped, not base64, or its declared ``length`` is not its length."""
    if not isinstance(body, dict):
        raise BadChunk("chunk is not an object", version=version)
    sha, offset, length, text = body.get("sha256"), body.get("offset"), body.get("length"), body.get("data")
    if not isinstance(sha, str) or not isinstance(text, str):
        raise BadChunk("chunk without sha256 or data", version=version)
    for name, value in (("offset", offset), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadChunk(f"chunk {name} is not a non-negative integer", version=version)
    if len(text) > (MAX_CHUNK_BYTES * 4) // 3 + 4:
        raise OversizedArtifact(f"chunk of {len(text)} base64 characters above {MAX_CHUNK_BYTES} bytes",
                                version=version)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadChunk("chunk data is not base64", version=version) from None
    if len(data) > MAX_CHUNK_BYTES:
        raise OversizedArtifact(f"chunk of {len(data)} bytes above {MAX_CHUNK_BYTES}", version=version)
    if len(data) != length:
        raise BadChunk(f"chunk at {offset} holds {len(data)} bytes, declares {length} (truncated)", version=version)
    return Chunk(sha, int(offset), data, bool(body.get("last", False)))


def encode(sha256: str, offset: int, data: bytes, size: int) -> dict[str, Any]:
    """The cloud's side: one chunk message (board/virtual/cloud serves these)."""
    return {"sha256": sha256, "offset": offset, "length": len(data), "data": base64.b64encode(data).decode(),
            "last": offset + len(data) >= size}


def accept(chunk: Chunk, *, have: int, size: int, sha256: str, version: str | None = None) -> bool:
    """True if ``chunk`` is the next one to append to ``have`` bytes of an artifact of
    ``size``; False if it is for another artifact or another offset (ignored). Raises when
    it is the right place but the wrong thing: larger than allowed, empty before the end,
    or past the size the manifest says."""
    if chunk.sha256 != sha256 or chunk.offset != have:
        return False
    if len(chunk.data) > MAX_CHUNK_BYTES:
        raise OversizedArtifact(f"chunk of {len(chunk.data)} bytes above {MAX_CHUNK_BYTES}", version=version)
    if have + len(chunk.data) > size:
        raise OversizedArtifact(f"artifact passes its manifest's {size} bytes at offset {have + len(chunk.data)}",
                                version=version)
    if not chunk.data and have < size:
        raise BadChunk(f"empty chunk at {have} of {size}", version=version)
    return True


def next_request(have: int, size: int) -> tuple[int, int] | None:
    """The (offset, length) to ask for next, or None when the artifact is complete."""
    if have >= size:
        return None
    return have, min(CHUNK_BYTES, size - have)

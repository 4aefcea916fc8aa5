"""Chunks and the partial artifact: only the next chunk is written, bad ones are typed
errors with the file unchanged, a restart resumes from the file's end, the hash decides."""

from __future__ import annotations

import base64
import json

import pytest

from agent.errors import BadChunk, OversizedArtifact, WrongHash
from agent.update import chunks
from agent.update.download import Download
from agent.update.manifest import parse


def manifest_of(cut, **kw):
    artifact, signed = cut(**kw)
    return parse(json.loads(signed.read_text())), artifact.read_bytes()


def feed(dl: Download, data: bytes, limit: int | None = None) -> int:
    """Ask and answer like the cloud, ``limit`` chunks at most; returns chunks taken."""
    taken = 0
    while (req := dl.next_request()) is not None and (limit is None or taken < limit):
        offset, length = req
        msg = chunks.encode(dl.manifest.sha256, offset, data[offset:offset + length], len(data))
        assert dl.add(chunks.decode(msg))
        taken += 1
    return taken


def test_a_whole_artifact_arrives_in_chunks_and_verifies(tmp_path, cut):
    m, data = manifest_of(cut)
    dl = Download(tmp_path / "state", m)
    assert feed(dl, data) == -(-len(data) // chunks.CHUNK_BYTES)
    assert dl.finish().read_bytes() == data


def test_a_restart_resumes_from_the_end_of_the_partial_file(tmp_path, cut):
    m, data = manifest_of(cut)
    feed(Download(tmp_path / "state", m), data, limit=3)
    again = Download(tmp_path / "state", m)  # a new process after a reboot
    assert again.have == 3 * chunks.CHUNK_BYTES
    assert again.next_request() == (3 * chunks.CHUNK_BYTES, chunks.CHUNK_BYTES)
    feed(again, data)
    assert again.finish().read_bytes() == data


def test_a_chunk_for_another_offset_or_artifact_is_ignored_not_written(tmp_path, cut):
    m, data = manifest_of(cut)
    dl = Download(tmp_path / "state", m)
    assert not dl.add(chunks.decode(chunks.encode(m.sha256, 100, data[100:200], len(data))))
    assert not dl.add(chunks.decode(chunks.encode("b" * 64, 0, data[:100], len(data))))
    assert dl.have == 0 and not dl.part.exists()


def test_truncated_oversized_and_overlong_chunks_are_refused_and_the_file_kept(tmp_path, cut):
    m, data = manifest_of(cut)
    dl = Download(tmp_path / "state", m)
    feed(dl, data, limit=1)
    have = dl.have
    truncated = chunks.encode(m.sha256, have, data[have:have + 100], len(data))
    truncated["length"] = 200
    with pytest.raises(BadChunk):
        chunks.decode(truncated)
    big = chunks.encode(m.sha256, have, b"x" * (chunks.MAX_CHUNK_BYTES + 1), len(data))
    with pytest.raises(OversizedArtifact):
        chunks.decode(big)
    with pytest.raises(BadChunk):
        chunks.decode({**truncated, "data": "%%%"})
    assert dl.have == have and dl.part.stat().st_size == have


def test_an_artifact_larger_than_its_manifest_is_refused(tmp_path, cut):
    m, data = manifest_of(cut)
    dl = Download(tmp_path / "state", m)
    last = (len(data) - 1) // chunks.CHUNK_BYTES * chunks.CHUNK_BYTES
    feed(dl, data[:last] + b"", limit=last // chunks.CHUNK_BYTES)
    longer = data[last:] + b"extra bytes past the manifest's size"
    with pytest.raises(OversizedArtifact):
        dl.add(chunks.Chunk(m.sha256, last, longer, True))
    assert dl.have == last


def test_bytes_that_do_not_hash_to_the_manifest_are_a_wrong_hash_and_discarded(tmp_path, cut):
    m, data = manifest_of(cut)
    dl = Download(tmp_path / "state", m)
    bad = bytearray(data)
    bad[1000] ^= 0xFF
    feed(dl, bytes(bad))
    with pytest.raises(WrongHash):
        dl.finish()
    assert not dl.part.exists() and dl.next_request() == (0, chunks.CHUNK_BYTES)


def test_the_largest_chunk_fits_the_contracts_message_limit():
    from agent.cloud import protocol as proto
    body = {"v": 1, **chunks.encode("a" * 64, 8_000_000, b"x" * chunks.MAX_CHUNK_BYTES, 8_400_000)}
    assert len(proto.encode(body)) <= proto.MAX_MESSAGE_BYTES
    assert proto.MAX_UPDATE_CHUNK == chunks.MAX_CHUNK_BYTES


def test_a_chunk_message_with_missing_fields_is_a_bad_chunk():
    for body in (None, {}, {"sha256": "a", "offset": -1, "length": 0, "data": ""},
                 {"sha256": "a", "offset": True, "length": 0, "data": ""}):
        with pytest.raises(BadChunk):
            chunks.decode(body)
    assert base64.b64decode(chunks.encode("a", 0, b"hi", 2)["data"]) == b"hi"

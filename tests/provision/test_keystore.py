"""The key store's rules on their own (agent.cloud.keystore): what recovery removes, what a
commit keeps, and that carried-over keys are the same file, not copies."""

from __future__ import annotations

from pathlib import Path

from agent.cloud import keystore as ks


def _gen(store: ks.KeyStore, key: bytes = b"k") -> ks.Generation:
    staging = store.stage()
    staging.write_private(ks.TLS_KEY, key)
    return store.seal(staging, {"device_id": "d"})


def test_recovery_removes_staging_and_unreferenced_generations_only(tmp_path: Path) -> None:
    store = ks.KeyStore(tmp_path / "keys")
    store.ensure_dir()
    cur = _gen(store)
    store.commit(cur, keep_previous=False)
    orphan = _gen(store)  # sealed, then the power went before it was pointed at
    half = store.stage()  # a staging directory with half a key in it
    half.write_private(ks.TLS_KEY, b"half")
    removed = store.recover()
    assert sorted(removed) == sorted([orphan.path.name, half.path.name])
    assert store.current() == cur and cur.path.exists()


def test_provisioning_commit_voids_previous_and_pending(tmp_path: Path) -> None:
    store = ks.KeyStore(tmp_path / "keys")
    store.ensure_dir()
    first = _gen(store)
    store.commit(first, keep_previous=False)
    renewed = _gen(store, b"r")
    store.commit(renewed, keep_previous=True)
    assert store.pointer(ks.PREVIOUS) == first
    pending = _gen(store, b"p")
    store.point(ks.PENDING, pending)
    rekeyed = _gen(store, b"n")
    store.commit(rekeyed, keep_previous=False)
    assert store.current() == rekeyed
    assert store.pointer(ks.PREVIOUS) is None and store.pointer(ks.PENDING) is None
    assert [p.name for p in store.generations()] == [rekeyed.path.name]


def test_carried_over_files_are_hard_links_with_the_same_mode(tmp_path: Path) -> None:
    store = ks.KeyStore(tmp_path / "keys")
    store.ensure_dir()
    first = _gen(store)
    staging = store.stage()
    staging.link_from(first, ks.TLS_KEY)
    second = store.seal(staging, {"device_id": "d"})
    a, b = first.file(ks.TLS_KEY).stat(), second.file(ks.TLS_KEY).stat()
    assert (a.st_ino, a.st_mode & 0o777) == (b.st_ino, 0o600)
    assert second.record["files"][ks.TLS_KEY] == first.record["files"][ks.TLS_KEY]

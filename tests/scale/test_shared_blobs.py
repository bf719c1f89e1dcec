"""The shared blob stores of scale-out: the database's ``blobs`` table (SQLite and PostgreSQL) and S3 (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sleeptrack.store import (
    BlobNotFoundError,
    BlobStore,
    Database,
    DatabaseBlobStore,
    S3BlobStore,
    Settings,
    open_blob_store,
    open_stores,
)
from tests.db_fixtures import postgres_schema_url


def _database_store(url: str) -> Iterator[BlobStore]:
    db = Database(url)
    db.migrate()
    yield DatabaseBlobStore(db)
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "sqlite":
        yield from _database_store(f"sqlite:///{tmp_path / 'blobs.db'}")
        return
    if request.param == "postgresql":
        for url in postgres_schema_url(request.getfixturevalue("postgres_url")):
            yield from _database_store(url)
        return
    moto = pytest.importorskip("moto")
    import boto3

    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="sleeptrack-test")
        yield S3BlobStore("sleeptrack-test", prefix="chunks", client=client)


def test_put_get_replace_delete(store: BlobStore) -> None:
    key = "12/G-1/20250115025029_fvivn/00042-ab12.mel"
    assert not store.exists(key)
    with pytest.raises(BlobNotFoundError):
        store.get(key)
    store.put(key, b"\x00\x01first")
    assert store.exists(key) and store.get(key) == b"\x00\x01first"
    store.put(key, b"second" * 100_000)  # replaces, 600 kB
    assert store.get(key) == b"second" * 100_000
    store.delete(key)
    store.delete(key)  # absent: no error
    assert not store.exists(key)


def test_add_keeps_one_object_per_blob(store: BlobStore) -> None:
    prefix = "12/G-1/20250115025029_fvivn"
    first = store.add(prefix, "00000-aa.mel", b"first")
    second = store.add(prefix + "/", "00001-bb.mel", b"second")
    assert (first, second) == (f"{prefix}/00000-aa.mel", f"{prefix}/00001-bb.mel")
    assert store.get(first) == b"first" and store.get(second) == b"second"
    store.delete_prefix(prefix)
    assert not store.exists(first) and not store.exists(second)


def test_delete_prefix_takes_only_that_folder(store: BlobStore) -> None:
    keys = ["1/G-a/s1/00000.mel", "1/G-a/s1/00001.mel", "1/G-a/s10/00000.mel", "1/G-a/s2/00000.mel", "1/G-b/s1/0.mel"]
    for k in keys:
        store.put(k, k.encode())
    store.delete_prefix("1/G-a/s1")
    assert [store.exists(k) for k in keys] == [False, False, True, True, True]
    store.delete_prefix("1/G-a/")
    assert [store.exists(k) for k in keys] == [False, False, False, False, True]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_settings_choose_the_store(tmp_path: Path, database_url: str) -> None:
    assert Settings(data_dir=tmp_path).resolved_blob_store == "local"
    assert Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0").resolved_blob_store == "database"
    assert Settings(data_dir=tmp_path, s3_bucket="b").resolved_blob_store == "s3"
    stores = open_stores(Settings(data_dir=tmp_path, database_url=database_url, blob_store="database"))
    try:
        assert isinstance(stores.blobs, DatabaseBlobStore)
        stores.blobs.put("a/b", b"shared")
        other = open_blob_store(
            Settings(data_dir=tmp_path / "elsewhere", database_url=database_url, blob_store="database")
        )
        assert other.get("a/b") == b"shared"  # another process with the same settings sees it
    finally:
        stores.close()

"""The Session / Data API on both databases (SQLite and the machine's PostgreSQL) with shared blobs in the
database and, on PostgreSQL, the shared Redis counters: uploads exactly once, duplicates, COMPLETE."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from sleeptrack.server import create_app
from sleeptrack.store import Blob, Chunk, DatabaseBlobStore
from tests.server.conftest import Api, make_keys, make_settings, mel_chunk


@pytest.fixture
def backend_api(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Api]:
    extra: dict[str, str] = {}
    if database_url.startswith("postgresql"):
        url = re.sub(r"/\d+$", "", request.getfixturevalue("redis_url")) + "/8"
        redis.Redis.from_url(url).flushdb()
        extra["redis_url"] = url
    settings = make_settings(tmp_path / "data", database_url=database_url, blob_store="database", **extra)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield Api(client, keys, settings.data_dir)


def test_uploads_stored_exactly_once_and_analysed(backend_api: Api) -> None:
    api = backend_api
    assert isinstance(api.ctx.stores.blobs, DatabaseBlobStore)
    user = api.new_user()
    sid = api.new_session(user)
    order = [3, 0, 1, 1, 2, 3, 5, 4, 0, 9, 8, 7, 6]
    answers = []
    for seq in order:
        r = api.upload(sid, user, seq, mel_chunk(seq))
        assert r.status_code == 200, r.text
        answers.append(r.json()["result"]["duplicate"])
    assert answers == [False, False, False, True, False, True, False, False, True, False, False, False, False]
    assert api.upload(sid, user, -1).status_code == 422
    assert api.upload(sid, user, 11, b"garbage").status_code == 400
    assert api.close(sid, user).status_code == 200
    api.wait()
    with api.ctx.stores.db.read() as db:
        seqs = sorted(db.scalars(select(Chunk.seq_num).where(Chunk.session_id == sid)))
        blobs = db.scalars(select(Blob.key).where(Blob.key.contains(sid))).all()
    assert seqs == list(range(10)) and len(blobs) == 10  # no orphan blob for duplicates or refusals
    report = api.report(sid, user)
    assert report["session"]["state"] == "COMPLETE" and len(report["session"]["sleep_stages"]) == 10
    assert api.client.delete(f"/ai/v1/sessions/{sid}", headers=api.h(user=user)).status_code == 204
    with api.ctx.stores.db.read() as db:
        assert db.scalars(select(Blob.key).where(Blob.key.contains(sid))).all() == []


def test_rate_limit_counted_for_every_process(backend_api: Api) -> None:
    """Plan ``ratelimited``: 3 calls a minute per key, whichever process (here: two apps) answers."""
    api = backend_api
    statuses = [api.client.post("/ai/v1/users", headers=api.h("ratelimited")).status_code for _ in range(3)]
    assert statuses == [201, 201, 201]
    if "redis_url" not in api.ctx.settings.model_fields_set:
        return
    # a second app on the same database and Redis sees the same counter
    with TestClient(create_app(api.ctx.settings)) as other:
        r = other.post("/ai/v1/users", headers=api.h("ratelimited"))
        assert (r.status_code, r.json()["detail"]) == (403, "Rate limit exceeded")

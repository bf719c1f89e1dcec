"""The schema, its migrations and the database rules, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from sleeptrack.store import (
    DEFAULT_PLANS,
    MIGRATIONS_DIR,
    ApiKey,
    Base,
    Chunk,
    ChunkFeatures,
    Database,
    Environment,
    Job,
    SleepSession,
    User,
    create_api_key,
    find_keys,
    hash_api_key,
    list_keys,
    new_session_id,
    new_user_id,
    revoke_keys,
    utcnow,
)
from sleeptrack.store import _db as _db_module


def _db(url: str) -> Database:
    db = Database(url)
    db.migrate()
    return db


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    db = _db(database_url)
    db.migrate()  # a second start changes nothing
    assert db.current_revision() == _head()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    db.dispose()


def _user_session(db: Database, state: str = "OPEN") -> tuple[str, str]:
    with db.write() as s:
        key = create_api_key(s, environment="test", plan=DEFAULT_PLANS["advanced"])
        env_id = s.get_one(ApiKey, key.id).environment_id
        user = User(id=new_user_id(), environment_id=env_id, created_at=utcnow())
        s.add(user)
        s.flush()
        sid = new_session_id()
        s.add(_session(sid, env_id, user.id, state))
    return user.id, sid


def _session(sid: str, env_id: int, user_id: str, state: str = "OPEN") -> SleepSession:
    return SleepSession(
        id=sid,
        environment_id=env_id,
        user_id=user_id,
        state=state,
        inference_type="MELSPECTROGRAM",
        service="NOSERVICE",
        created_timezone="UTC",
        start_time=utcnow(),
        plan="advanced",
        scheme="4-stage",
        snoring=True,
        realtime=True,
    )


def test_one_open_session_per_user_is_enforced_by_the_database(database_url: str) -> None:
    db = _db(database_url)
    user_id, _ = _user_session(db)
    with db.read() as s:
        env_id = s.get_one(User, user_id).environment_id
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(_session(new_session_id(), env_id, user_id, "OPEN"))
    with db.write() as s:  # closed ones are fine
        s.add(_session(new_session_id(), env_id, user_id, "CLOSED"))
        s.add(_session(new_session_id(), env_id, user_id, "COMPLETE"))
    db.dispose()


def test_deleting_a_user_deletes_everything_of_theirs(database_url: str) -> None:
    db = _db(database_url)
    user_id, sid = _user_session(db)
    with db.write() as s:
        s.add(Chunk(session_id=sid, seq_num=0, blob_key="a/b", size=3, inference_type="MELSPECTROGRAM"))
        s.flush()
        s.add(ChunkFeatures(session_id=sid, seq_num=0, engine_version="v", n_features=1, data=b"\0\0\0\0"))
        s.add(Job(kind="features", session_id=sid, seq_num=0))
    with db.write() as s:
        s.delete(s.get_one(User, user_id))
    with db.read() as s:
        for model in (SleepSession, Chunk, ChunkFeatures, Job):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model.__name__
    db.dispose()


def test_jobs_are_unique_per_kind_session_and_seq_num(database_url: str) -> None:
    db = _db(database_url)
    _, sid = _user_session(db)
    with db.write() as s:
        s.add(Job(kind="final", session_id=sid, seq_num=-1))
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(Job(kind="final", session_id=sid, seq_num=-1))
    db.dispose()


def test_times_come_back_aware_and_in_utc(database_url: str) -> None:
    db = _db(database_url)
    _, sid = _user_session(db)
    seoul = timezone(timedelta(hours=9))
    when = datetime(2025, 1, 15, 11, 50, 29, tzinfo=seoul)
    with db.write() as s:
        s.get_one(SleepSession, sid).end_time = when
    with db.read() as s:
        end = s.get_one(SleepSession, sid).end_time
    assert end == when and end is not None and end.tzinfo == UTC
    with pytest.raises(Exception, match="naive"), db.write() as s:
        s.get_one(SleepSession, sid).end_time = datetime(2025, 1, 1)
    db.dispose()


def test_keys_are_stored_hashed_and_can_be_found_and_revoked(database_url: str) -> None:
    db = _db(database_url)
    with db.write() as s:
        new = create_api_key(s, environment="live", plan=DEFAULT_PLANS["basic"], account_email="a@example.com")
    assert new.key.startswith("st_live_") and len(new.key) > 40
    with db.read() as s:
        row = s.get_one(ApiKey, new.id)
        assert row.key_hash == hash_api_key(new.key) and new.key not in (row.prefix, row.key_hash, row.name)
        assert row.prefix == new.key[:12]
        envs = sorted(s.scalars(select(Environment.name).where(Environment.account_id == row.account_id)))
        assert envs == ["live", "test"]
        assert [k.id for k in find_keys(s, new.prefix)] == [new.id]
        assert [k.id for k in find_keys(s, new.key)] == [new.id]
        assert [k.id for k in find_keys(s, str(new.id))] == [new.id]
        assert find_keys(s, new.key[:-1] + ("x" if new.key[-1] != "x" else "y")) == []
    with db.write() as s:
        revoke_keys(s, find_keys(s, new.prefix))
    with db.read() as s:
        (info,) = list_keys(s, "a@example.com")
        assert info.revoked_at is not None and info.plan == "basic" and info.environment == "live"
    db.dispose()


def test_concurrent_writers_wait_for_each_other(database_url: str) -> None:
    db = _db(database_url)
    _, sid = _user_session(db)
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            for i in range(start, start + 20):
                with db.write() as s:
                    session = s.get_one(SleepSession, sid)
                    s.add(Chunk(session_id=sid, seq_num=i, blob_key=f"k{i}", size=1, inference_type="AUDIO"))
                    session.received_count += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 100,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Chunk)) == 80
    db.dispose()


def test_a_sqlite_writer_waits_for_the_lock_then_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the write lock: a write waits for it (in short naps), and fails with
    "database is locked" only once the lock wait is over."""
    db = _db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _, sid = _user_session(db)
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, holder.commit).start()
    started = time.monotonic()
    with db.write() as s:
        s.get_one(SleepSession, sid).received_count += 1
    assert 0.25 < time.monotonic() - started < 5
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(_db_module, "_LOCK_WAIT", 0.2)
    with pytest.raises(OperationalError, match="database is locked"), db.write() as s:
        s.get_one(SleepSession, sid).received_count += 1
    holder.rollback()
    holder.close()
    db.dispose()

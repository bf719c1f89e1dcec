"""Group commit of uploads: a batch of chunks recorded in one transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from sleeptrack.server._ingest import ChunkRecord, ChunkWriter, apply_chunks
from sleeptrack.store import (
    SEGMENTS,
    ApiKey,
    Chunk,
    Job,
    SleepSession,
    Stores,
    User,
    create_api_key,
    new_session_id,
    new_user_id,
    utcnow,
)
from tests.server.conftest import make_settings


def _stores(tmp_path: Path, url: str) -> Stores:
    from sleeptrack.store import open_stores

    return open_stores(make_settings(tmp_path, database_url=url))


def _session(stores: Stores, state: str = "OPEN", realtime: bool = True) -> str:
    with stores.db.write() as db:
        key = create_api_key(db, environment="test", plan=stores.plans["advanced"])
        env = db.get_one(ApiKey, key.id).environment_id
        user = User(id=new_user_id(), environment_id=env, created_at=utcnow())
        db.add(user)
        db.flush()
        sid = new_session_id()
        while db.get(SleepSession, sid) is not None:
            sid = new_session_id()
        db.add(
            SleepSession(
                id=sid, environment_id=env, user_id=user.id, state=state, inference_type="MELSPECTROGRAM",
                service="x", created_timezone="UTC", start_time=utcnow(), plan="advanced", scheme="4-stage",
                snoring=True, realtime=realtime, last_seq_num=-1, received_count=0,
            )
        )  # fmt: skip
    return sid


def _rec(sid: str, seq: int, callback: tuple[str, int, bytes] | None = None) -> ChunkRecord:
    return ChunkRecord(sid, seq, f"blob/{sid}/{seq}", 10, "MELSPECTROGRAM", utcnow(), callback)


def test_a_batch_of_chunks(tmp_path: Path, database_url: str) -> None:
    stores = _stores(tmp_path, database_url)
    a, b = _session(stores), _session(stores, realtime=False)
    closed = _session(stores, state="CLOSED")
    with stores.db.write() as db:
        apply_chunks(db, [_rec(a, 0)])
    batch = [
        _rec(a, 9, ("https://example.com/h", 1, b"enc")),
        _rec(a, 0),  # already there
        _rec(b, 9),
        _rec(a, 9),  # twice in the same batch
        _rec(closed, 1),
        _rec("20250101000000_zzzzz", 1),
        _rec(a, 4),
    ]
    with stores.db.write() as db:
        outcomes = apply_chunks(db, batch)
    assert [o.status for o in outcomes] == [
        "accepted",
        "duplicate",
        "accepted",
        "duplicate",
        "closed",
        "missing",
        "accepted",
    ]
    assert len(outcomes[0].jobs) == 2 and len(outcomes[2].jobs) == 1 and len(outcomes[6].jobs) == 1
    with stores.db.read() as db:
        sa = db.get_one(SleepSession, a)
        assert (sa.last_seq_num, sa.received_count, sa.callback_url) == (9, 3, "https://example.com/h")
        sb = db.get_one(SleepSession, b)
        assert (sb.last_seq_num, sb.received_count, sb.callback_url) == (9, 1, None)
        jobs = {j.id: (j.kind, j.session_id, j.seq_num) for j in db.scalars(select(Job))}
        assert {jobs[q.job_id] for q in outcomes[0].jobs} == {("features", a, 9), ("realtime", a, 9)}
        assert jobs[outcomes[2].jobs[0].job_id] == ("features", b, 9)
        assert sorted(c.seq_num for c in db.scalars(select(Chunk).where(Chunk.session_id == a))) == [0, 4, 9]
    stores.close()


def test_the_writer_under_concurrent_uploads(tmp_path: Path, database_url: str) -> None:
    stores = _stores(tmp_path, database_url)
    sessions = [_session(stores) for _ in range(4)]
    writer = ChunkWriter(stores.db, stores.blobs)
    results: list[str] = []
    duplicates: list[ChunkRecord] = []
    lock = threading.Lock()

    def upload(sid: str) -> None:
        for seq in [*range(30), 3, 7]:  # two retried uploads each
            rec = _rec(sid, seq)
            rec.blob = (f"1/u/{sid}", f"{seq:05d}-{threading.get_ident()}", f"{sid}:{seq}".encode())
            outcome = writer.write(rec)
            with lock:
                results.append(outcome.status)
                if outcome.status == "duplicate":
                    duplicates.append(rec)

    threads = [threading.Thread(target=upload, args=(sid,)) for sid in sessions for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    assert results.count("accepted") == 4 * 30 and results.count("duplicate") == len(results) - 120
    with stores.db.read() as db:
        for sid in sessions:
            s = db.get_one(SleepSession, sid)
            assert (s.received_count, s.last_seq_num) == (30, 29)
        assert len(db.scalars(select(Job).where(Job.kind == "realtime")).all()) == 4 * 3
        # Each recorded chunk's bytes were stored with its group; a duplicate's were deleted.
        for c in db.scalars(select(Chunk)):
            assert stores.blobs.get(c.blob_key) == f"{c.session_id}:{c.seq_num}".encode()
    assert duplicates and all(rec.blob_key and not stores.blobs.exists(rec.blob_key) for rec in duplicates)
    assert writer.batches < writer.chunks  # some uploads shared a transaction
    stores.close()


def test_a_submitted_chunk_cannot_be_withdrawn(tmp_path: Path, database_url: str) -> None:
    # The upload route awaits the commit on the event loop; a cancelled request must not cancel the
    # commit (the writer would then fail to set the outcome of every chunk of its batch).
    stores = _stores(tmp_path, database_url)
    sid = _session(stores)
    writer = ChunkWriter(stores.db, stores.blobs)
    future = writer.submit(_rec(sid, 0))
    assert not future.cancel()
    assert future.result(timeout=30).status == "accepted"
    assert writer.write(_rec(sid, 1)).status == "accepted"  # the writer goes on
    writer.stop()
    stores.close()


def test_a_batch_looks_up_its_own_rows_on_sqlite(tmp_path: Path) -> None:
    """No statement of the group commit scans a table: its cost must not grow with the chunks stored.

    SQLite answers ``(session_id, seq_num) IN (...)`` by scanning the whole chunk index, so a server's
    uploads slowed down with every night it held.
    """
    stores = _stores(tmp_path, f"sqlite:///{tmp_path / 'ingest.db'}")
    sessions = [_session(stores) for _ in range(3)]
    with stores.db.write() as db:
        apply_chunks(db, [_rec(sid, seq) for sid in sessions for seq in range(40)])
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            statements.append((statement, parameters))

    engine = stores.db.write_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with stores.db.write() as db:
            outcomes = apply_chunks(db, [_rec(sid, seq) for sid in sessions for seq in (39, 40, 41)])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [o.status for o in outcomes] == ["duplicate", "accepted", "accepted"] * 3
    assert len(statements) >= 2  # the sessions, and the chunks already recorded
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            scans = [step for step in plan if step.startswith("SCAN") and "CONSTANT ROWS" not in step]
            assert all(step.startswith("SCAN wanted") for step in scans), (statement, plan)
    stores.close()


_KILLED_SERVER = """
import os, sys
from sleeptrack.server._ingest import ChunkRecord, ChunkWriter
from sleeptrack.store import open_stores, utcnow
from tests.server.conftest import make_settings

stores = open_stores(make_settings(__import__("pathlib").Path(sys.argv[1]), database_url=sys.argv[2]))
writer = ChunkWriter(stores.db, stores.blobs)
for seq in (0, 1):  # recorded and answered
    rec = ChunkRecord(sys.argv[3], seq, "", 5, "MELSPECTROGRAM", utcnow(), blob=("1/u/s", f"{seq}", b"chunk" * 1000))
    assert writer.write(rec).status == "accepted"
stores.blobs.add_many([("1/u/s", "2", b"never recorded" * 1000)])  # a group stored, then the process dies
os._exit(1)
"""


def test_a_segment_left_by_a_killed_server_is_cut_back_to_what_was_recorded(tmp_path: Path, database_url: str) -> None:
    stores = _stores(tmp_path, database_url)
    sid = _session(stores)
    out = subprocess.run(
        [sys.executable, "-c", _KILLED_SERVER, str(tmp_path), database_url, sid],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 1 and "Error" not in out.stderr, out.stderr
    (segment,) = (tmp_path / "blobs" / SEGMENTS).glob("*.seg")
    assert segment.stat().st_size == 2 * 8192 + 16384  # two recorded chunks of 5 000 bytes, one of 14 000 not
    assert stores.seal_abandoned_segments() == 1
    assert segment.stat().st_size == 8192 + 5000  # the end of the last recorded chunk
    with stores.db.read() as db:
        assert [stores.blobs.get(c.blob_key) for c in db.scalars(select(Chunk))] == [b"chunk" * 1000] * 2
    assert stores.seal_abandoned_segments() == 0  # sealed once
    stores.close()

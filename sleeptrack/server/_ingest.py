"""The write side of uploads: one blob write and one transaction for many chunks (group commit).

Every accepted chunk must be on disk and committed before its answer. On SQLite a commit with
``synchronous=FULL`` is an fsync, and writers take turns on one lock: committing each upload alone caps
ingest at a few hundred per second on a good disk. The :class:`ChunkWriter` thread takes every upload
waiting at that moment, stores their chunks with one :meth:`BlobStore.add_many` (the local store appends
them to one file and fdatasyncs once) and commits their rows together, so both fsyncs are shared while
each request still waits for its own chunk to be durable. Each chunk is checked inside the transaction
(session still OPEN, seq_num new); the bytes of one that is not recorded are deleted.
"""

from __future__ import annotations

import errno
import functools
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from sleeptrack.analysis import EPOCHS_PER_INFERENCE, SessionState
from sleeptrack.jobs import PRIORITY, QueuedJob
from sleeptrack.store import BlobStore, Chunk, Database, Job, SleepSession

__all__ = [
    "ChunkRecord",
    "ChunkWriter",
    "Outcome",
    "StorageFullError",
    "UploadTarget",
    "UploadTargets",
    "is_storage_full",
]

log = logging.getLogger("sleeptrack.server")

_SESSIONS = cast(Table, SleepSession.__table__)
_CHUNKS = cast(Table, Chunk.__table__)
_JOBS = cast(Table, Job.__table__)


class StorageFullError(RuntimeError):
    """The chunk could not be stored because the disk (or the database's) is full."""


def is_storage_full(exc: BaseException) -> bool:
    """True for a full disk or quota: ENOSPC / EDQUOT, or SQLite's "database or disk is full"."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class ChunkRecord:
    session_id: str
    seq_num: int
    #: The stored chunk's key: set by the writer when it stores :attr:`blob`.
    blob_key: str
    size: int
    inference_type: str
    received_at: datetime
    #: (url, key id, encrypted key) to set as the session's callback, if the upload gave one.
    callback: tuple[str, int, bytes] | None = None
    #: The chunk to store, ``(prefix, name, bytes)`` as :meth:`BlobStore.add_many` takes it, until stored.
    blob: tuple[str, str, bytes] | None = None


@dataclass
class Outcome:
    status: Literal["accepted", "duplicate", "closed", "missing"]
    jobs: list[QueuedJob] = field(default_factory=list)


# The statements of the write side, built once: an upload batch executes each with its parameters, so
# SQLAlchemy neither rebuilds them nor recomputes their cache keys per chunk and per session.
def _sessions_of(dialect: str) -> Any:
    query = (
        select(_SESSIONS.c.id, _SESSIONS.c.state, _SESSIONS.c.realtime)
        .where(_SESSIONS.c.id.in_(bindparam("b_ids", expanding=True)))
        .order_by(_SESSIONS.c.id)  # every writer locks sessions in the same order: no deadlock between them
    )
    if dialect == "postgresql":
        # FOR NO KEY UPDATE (key_share=True): workers inserting rows that reference the session
        # (FOR KEY SHARE) are not blocked by it. Writers of one session's chunks take turns here, so the
        # chunks each one then finds already recorded are all there are.
        query = query.with_for_update(key_share=True)
    return query


_SESSIONS_OF = {d: _sessions_of(d) for d in ("sqlite", "postgresql")}


@functools.lru_cache(maxsize=512)  # per driver and batch size: a batch has at most ChunkWriter.max_batch chunks
def _known_chunks_sql(paramstyle: str, n: int) -> str:
    """Which of ``n`` (session_id, seq_num) keys are recorded: the keys as a VALUES table joined to the chunks.

    Both databases look each key up in the primary key (a nested loop of index searches). A row-value
    ``IN`` list is not that on SQLite: it scans the whole primary-key index, every chunk the database
    holds, so each group commit got slower as nights accumulated (6 ms for a batch of 50 among 60 000
    chunks, against 0.03 ms). Written for the driver (``?`` for sqlite3, ``%s`` for psycopg) and executed
    as is: SQLAlchemy's handling of a text statement with 100 parameters would double its cost.
    """
    mark = "?" if paramstyle == "qmark" else "%s"
    keys = ", ".join([f"({mark}, {mark})"] * n)
    return (
        f"SELECT chunks.session_id, chunks.seq_num FROM (VALUES {keys}) AS wanted "  # placeholders only
        # column1, column2: what both databases call a VALUES list's columns (SQLite cannot rename them)
        "JOIN chunks ON chunks.session_id = wanted.column1 AND chunks.seq_num = wanted.column2"
    )


def _known_chunks(conn: Connection, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (session_id, seq_num) are recorded already."""
    sql = _known_chunks_sql(conn.dialect.paramstyle, len(keys))
    return {(session_id, seq_num) for session_id, seq_num in conn.exec_driver_sql(sql, tuple(chain(*keys)))}


_ADD_CHUNKS = insert(_CHUNKS)
#: A session's counters after some of its chunks: the highest seq_num, how many, the last arrival.
_BUMP_SESSION = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("b_id"))
    .values(
        last_seq_num=case(
            (_SESSIONS.c.last_seq_num < bindparam("b_max_seq"), bindparam("b_max_seq")),
            else_=_SESSIONS.c.last_seq_num,
        ),
        received_count=_SESSIONS.c.received_count + bindparam("b_count"),
        last_upload_at=bindparam("b_at", type_=_SESSIONS.c.last_upload_at.type),
    )
)
_SET_CALLBACK = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("b_id"))
    .values(
        callback_url=bindparam("b_url"),
        callback_key_id=bindparam("b_key_id"),
        callback_key_enc=bindparam("b_key_enc"),
    )
)
_ADD_JOBS = insert(_JOBS).returning(_JOBS.c.id, sort_by_parameter_order=True)


def _job_rows(rec: ChunkRecord, realtime: bool) -> list[dict[str, Any]]:
    """The jobs an accepted chunk starts: its features, and the real-time result after every 10th epoch."""
    kinds = ["features"]
    if realtime and (rec.seq_num + 1) % EPOCHS_PER_INFERENCE == 0:
        kinds.append("realtime")
    return [
        {
            "kind": kind,
            "session_id": rec.session_id,
            "seq_num": rec.seq_num,
            "priority": PRIORITY[kind],
            "status": "pending",
            "attempts": 0,
            "created_at": rec.received_at,
            "updated_at": rec.received_at,
        }
        for kind in kinds
    ]


def _chunk_row(rec: ChunkRecord) -> dict[str, Any]:
    return {
        "session_id": rec.session_id,
        "seq_num": rec.seq_num,
        "blob_key": rec.blob_key,
        "size": rec.size,
        "inference_type": rec.inference_type,
        "received_at": rec.received_at,
        "error": None,
    }


def _add_jobs(conn: Connection, rows: list[dict[str, Any]]) -> list[QueuedJob]:
    if not rows:
        return []
    ids = conn.execute(_ADD_JOBS, rows).scalars().all()
    return [QueuedJob(int(row["priority"]), int(job_id)) for row, job_id in zip(rows, ids, strict=True)]


def apply_chunks(db: Session, recs: Sequence[ChunkRecord]) -> list[Outcome]:
    """Record chunks in ``db``'s transaction with a handful of statements (the caller commits)."""
    conn = db.connection()
    sessions = {
        row.id: row
        for row in conn.execute(_SESSIONS_OF[conn.dialect.name], {"b_ids": list({r.session_id for r in recs})})
    }
    open_keys = [
        (r.session_id, r.seq_num)
        for r in recs
        if r.session_id in sessions and sessions[r.session_id].state == SessionState.OPEN.value
    ]
    existing: set[tuple[str, int]] = set()
    if open_keys:
        existing = _known_chunks(conn, open_keys)
    outcomes: list[Outcome] = []
    rows: list[dict[str, Any]] = []
    jobs: list[tuple[int, dict[str, Any]]] = []
    bumps: dict[str, dict[str, Any]] = {}
    callbacks: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(recs):
        row = sessions.get(r.session_id)
        if row is None:
            outcomes.append(Outcome("missing"))
            continue
        if row.state != SessionState.OPEN.value:
            outcomes.append(Outcome("closed"))
            continue
        if (r.session_id, r.seq_num) in existing:
            outcomes.append(Outcome("duplicate"))
            continue
        existing.add((r.session_id, r.seq_num))
        outcomes.append(Outcome("accepted"))
        rows.append(_chunk_row(r))
        bump = bumps.setdefault(
            r.session_id, {"b_id": r.session_id, "b_max_seq": r.seq_num, "b_count": 0, "b_at": r.received_at}
        )
        bump["b_max_seq"] = max(bump["b_max_seq"], r.seq_num)
        bump["b_count"] += 1
        bump["b_at"] = max(bump["b_at"], r.received_at)
        if r.callback is not None:
            url, key_id, enc = r.callback
            callbacks[r.session_id] = {"b_id": r.session_id, "b_url": url, "b_key_id": key_id, "b_key_enc": enc}
        jobs.extend((i, job) for job in _job_rows(r, row.realtime))
    if rows:
        conn.execute(_ADD_CHUNKS, rows)
    if bumps:
        conn.execute(_BUMP_SESSION, list(bumps.values()))
    if callbacks:
        conn.execute(_SET_CALLBACK, list(callbacks.values()))
    for (i, _), job in zip(jobs, _add_jobs(conn, [params for _, params in jobs]), strict=True):
        outcomes[i].jobs.append(job)
    return outcomes


class ChunkWriter:
    """Stores and commits uploaded chunks in batches from one thread; :meth:`write` waits for its chunk's
    commit."""

    def __init__(self, db: Database, blobs: BlobStore, max_batch: int = 256) -> None:
        self.db = db
        self.blobs = blobs
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[ChunkRecord, Future[Outcome]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="chunk-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.chunks = 0

    def submit(self, rec: ChunkRecord) -> Future[Outcome]:
        """Queue ``rec`` for the next group commit; the future holds its outcome once committed."""
        future: Future[Outcome] = Future()
        future.set_running_or_notify_cancel()  # queued for commit: it can no longer be withdrawn
        self._queue.put((rec, future))
        return future

    def write(self, rec: ChunkRecord, timeout: float = 120.0) -> Outcome:
        """Record ``rec`` and wait for its commit."""
        return self.submit(rec).result(timeout=timeout)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._store(batch)
            if stop:
                return

    def _store(self, batch: Sequence[tuple[ChunkRecord, Future[Outcome]]]) -> None:
        """Store the batch's chunks (one :meth:`BlobStore.add_many`), then commit their rows."""
        pending = [rec for rec, _ in batch if rec.blob is not None]
        try:
            keys = self.blobs.add_many([cast(tuple[str, str, bytes], rec.blob) for rec in pending])
        except Exception as exc:
            _fail(batch, exc, "the blob store's disk", "cannot store uploaded chunks")
            return
        for rec, key in zip(pending, keys, strict=True):
            rec.blob_key, rec.blob = key, None
        self._commit(batch)

    def _commit(self, batch: Sequence[tuple[ChunkRecord, Future[Outcome]]]) -> None:
        try:
            with self.db.write() as db:
                outcomes = apply_chunks(db, [rec for rec, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._discard([batch[0][0]])
                _fail(batch, exc, "the database's disk", "cannot record an uploaded chunk")
                return
            # One bad chunk must not fail the others: record them one by one.
            for item in batch:
                self._commit([item])
            return
        self.batches += 1
        self.chunks += len(batch)
        self._discard([rec for (rec, _), outcome in zip(batch, outcomes, strict=True) if outcome.status != "accepted"])
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)

    def _discard(self, recs: Sequence[ChunkRecord]) -> None:
        """Delete the stored chunks of records that were not recorded (a duplicate, a closed or deleted
        session, an error)."""
        keys = [rec.blob_key for rec in recs if rec.blob_key]
        if keys:
            try:
                self.blobs.delete_many(keys)
            except Exception:
                log.exception("cannot delete %d chunk(s) that were not recorded", len(keys))


def _fail(batch: Sequence[tuple[ChunkRecord, Future[Outcome]]], exc: Exception, disk: str, what: str) -> None:
    """Fail the batch's uploads: :class:`StorageFullError` (a 507) if ``disk`` is full, else a server error."""
    full = is_storage_full(exc)
    if full:
        log.error("%s: %s is full", what, disk)
    else:
        log.exception(what)
    for _, future in batch:
        future.set_exception(StorageFullError(f"{disk} is full") if full else RuntimeError(what))


@dataclass(frozen=True)
class UploadTarget:
    """What an upload needs to know of its session before writing the chunk."""

    environment_id: int
    user_id: str
    inference_type: str
    closed: bool


class UploadTargets:
    """Sessions recently uploaded to (bounded). Only a hint: the transaction checks the session again."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: dict[str, UploadTarget] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> UploadTarget | None:
        with self._lock:
            return self._items.get(session_id)

    def put(self, session_id: str, target: UploadTarget) -> None:
        with self._lock:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[session_id] = target

    def closed(self, session_id: str) -> None:
        with self._lock:
            target = self._items.get(session_id)
            if target is not None:
                self._items[session_id] = UploadTarget(
                    target.environment_id, target.user_id, target.inference_type, True
                )

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._items.pop(session_id, None)

    def forget_user(self, user_id: str) -> None:
        with self._lock:
            for sid in [k for k, v in self._items.items() if v.user_id == user_id]:
                del self._items[sid]

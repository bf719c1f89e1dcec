"""Running one analysis job: per-chunk features, the real-time result, the final report.

Every job reads what it needs, computes outside any transaction, then writes its result, the outbox
webhook it announces and its own ``done`` status in one transaction: a job either happened completely
or runs again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sleeptrack.analysis import (
    EPOCH_SECONDS,
    AudioFormatError,
    Engine,
    MelFormatError,
    RealtimeState,
    RealtimeStateError,
    SessionState,
    StageScheme,
    StagingResult,
    decode_chunk,
    decode_mel_chunk,
    load_engine,
    parse_timezone,
)
from sleeptrack.analysis._threads import one_blas_thread
from sleeptrack.store import (
    BlobNotFoundError,
    Chunk,
    ChunkFeatures,
    FinalResult,
    Job,
    RealtimeResult,
    SleepSession,
    Stores,
    utcnow,
)
from sleeptrack.webhooks import enqueue_webhook, inference_complete_payload, session_complete_payload

from ._queue import JobReport
from ._reports import session_document

__all__ = ["MAX_ATTEMPTS", "JobRunner", "final_epoch_count"]

log = logging.getLogger("sleeptrack.jobs")

#: A job that raised this many times is marked failed (its error is kept on the row).
MAX_ATTEMPTS = 3
#: A running job whose worker has not finished it after this long is run again elsewhere.
LEASE = timedelta(minutes=15)

_F32 = npt.NDArray[np.float32]


def final_epoch_count(s: SleepSession) -> int:
    """Epochs of a closed session: those covering ``[start_time, end_time)``."""
    if s.end_time is None:
        return s.last_seq_num + 1
    seconds = (s.end_time - s.start_time).total_seconds()
    return max(0, math.ceil(seconds / EPOCH_SECONDS - 1e-9))


@dataclass
class _Claimed:
    job_id: int
    kind: str
    session_id: str
    seq_num: int
    attempts: int


@dataclass
class _ChunkRow:
    seq_num: int
    blob_key: str
    inference_type: str
    error: str | None


@dataclass
class _Inputs:
    """Features and valid flags of epochs ``since .. n - 1``; features computed here; chunks found unusable."""

    features: _F32
    valid: npt.NDArray[np.bool_]
    new_rows: list[dict[str, Any]]
    errors: dict[int, str]


@dataclass
class _Earlier:
    """The session's latest real-time result that the next one can continue."""

    state: RealtimeState
    stages: list[int]
    snoring: list[int] | None


def _upsert(db: Session, model: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT DO UPDATE on SQLite and PostgreSQL."""
    if not rows:
        return
    dialect = db.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(model).values(list(rows))
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    db.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))


class JobRunner:
    """Runs jobs against the stores; one per worker process (or shared by worker threads)."""

    def __init__(
        self, stores: Stores, engine: Engine | None = None, max_attempts: int = MAX_ATTEMPTS, lease: timedelta = LEASE
    ) -> None:
        self.stores = stores
        self._engine = engine
        one_blas_thread()  # the server's request threads and workers already use every core
        self.max_attempts = max_attempts
        #: How long a taken job is reserved for this runner (scale-out sets it short: jobs are idempotent).
        self.lease = lease

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = load_engine()
        return self._engine

    # ------------------------------------------------------------------------------------------ run
    def run(self, job_id: int) -> JobReport:
        return self.run_many([job_id])[0]

    def run_many(self, job_ids: Sequence[int]) -> list[JobReport]:
        """Run jobs: features jobs together (one claim, one write for all), the others one by one."""
        started = time.perf_counter()
        reports = {job_id: JobReport(job_id) for job_id in job_ids}
        claimed = self._claim(job_ids)
        for c in claimed:
            reports[c.job_id].kind, reports[c.job_id].session_id = c.kind, c.session_id
        features = [c for c in claimed if c.kind == "features"]
        if features:
            self._features_batch(features, reports)
        for c in claimed:
            if c.kind != "features":
                self._execute(c, reports[c.job_id])
        for report in reports.values():
            if not report.seconds:
                report.seconds = time.perf_counter() - started
        return [reports[job_id] for job_id in job_ids]

    def _claim(self, job_ids: Sequence[int]) -> list[_Claimed]:
        claimed = []
        with self.stores.db.write() as s:
            now = utcnow()
            for job in s.scalars(select(Job).where(Job.id.in_(list(job_ids))).order_by(Job.id)):
                if job.status in ("done", "failed"):
                    continue
                if job.status == "running" and job.locked_until is not None and job.locked_until > now:
                    continue  # another worker holds it
                job.status = "running"
                job.attempts += 1
                job.locked_until = now + self.lease
                job.updated_at = now
                claimed.append(_Claimed(job.id, job.kind, job.session_id, job.seq_num, job.attempts))
        return claimed

    def _failed(self, s: Session, c: _Claimed, report: JobReport, exc: BaseException) -> None:
        """Record a failure in ``s``: retried later, or failed after the last attempt."""
        log.error("job %s (%s of session %s) failed", c.job_id, c.kind, c.session_id, exc_info=exc)
        report.error = f"{type(exc).__name__}: {exc}"
        job = s.get(Job, c.job_id)
        if job is None:
            return
        job.error = report.error[:2000]
        job.locked_until = None
        job.updated_at = utcnow()
        if c.attempts >= self.max_attempts:
            job.status = "failed"
            report.outcome = "failed"
        else:
            job.status = "pending"
            report.outcome = "retry"
            report.retry_after = float(2**c.attempts)

    def _execute(self, c: _Claimed, report: JobReport) -> None:
        started = time.perf_counter()
        try:
            if c.kind == "realtime":
                report.webhooks = self._realtime_job(c.job_id, c.session_id, c.seq_num)
            elif c.kind == "final":
                report.webhooks = self._final_job(c.job_id, c.session_id)
            else:
                raise ValueError(f"unknown job kind {c.kind!r}")
            report.outcome = "done"
        except Exception as exc:
            with self.stores.db.write() as s:
                self._failed(s, c, report, exc)
        report.seconds = time.perf_counter() - started

    @staticmethod
    def _finish(s: Session, job_id: int) -> None:
        job = s.get(Job, job_id)
        if job is not None:
            job.status = "done"
            job.locked_until = None
            job.error = None
            job.updated_at = utcnow()

    # ------------------------------------------------------------------------------------- features
    def compute_features(self, blob_key: str, inference_type: str) -> _F32 | str:
        """The features of one stored chunk, or why it cannot be analysed."""
        try:
            data = self.stores.blobs.get(blob_key)
        except BlobNotFoundError:
            return "the chunk's data is missing from the blob store"
        try:
            if inference_type == "MELSPECTROGRAM":
                return self.engine.chunk_features(decode_mel_chunk(data))
            return self.engine.chunk_features_from_audio(decode_chunk(data))
        except (MelFormatError, AudioFormatError) as exc:
            return str(exc)

    def _features_row(self, session_id: str, seq_num: int, feats: _F32) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "seq_num": seq_num,
            "engine_version": self.engine.version,
            "n_features": int(feats.size),
            "data": np.asarray(feats, dtype="<f4").tobytes(),
            "computed_at": utcnow(),
        }

    def _current(self, row: ChunkFeatures | None) -> bool:
        return (
            row is not None and row.engine_version == self.engine.version and row.n_features == self.engine.n_features
        )

    def _features_batch(self, jobs: list[_Claimed], reports: dict[int, JobReport]) -> None:
        """Features of several chunks: read together, computed one by one, written in one transaction."""
        db = self.stores.db
        todo: dict[int, tuple[str, str]] = {}
        with db.read() as s:
            for c in jobs:
                chunk = s.get(Chunk, (c.session_id, c.seq_num))
                if (
                    chunk is not None
                    and chunk.error is None
                    and not self._current(s.get(ChunkFeatures, (c.session_id, c.seq_num)))
                ):
                    todo[c.job_id] = (chunk.blob_key, chunk.inference_type)
        results: dict[int, _F32 | str | Exception] = {}
        for c in jobs:
            if c.job_id in todo:
                started = time.perf_counter()
                try:
                    results[c.job_id] = self.compute_features(*todo[c.job_id])
                except Exception as exc:
                    results[c.job_id] = exc
                reports[c.job_id].seconds = time.perf_counter() - started
        with db.write() as s:
            sessions = {c.session_id for c in jobs}
            alive = set(s.scalars(select(SleepSession.id).where(SleepSession.id.in_(sessions))))
            rows = []
            for c in jobs:
                result = results.get(c.job_id)
                report = reports[c.job_id]
                if isinstance(result, Exception):
                    self._failed(s, c, report, result)
                    continue
                if isinstance(result, str):
                    chunk = s.get(Chunk, (c.session_id, c.seq_num))
                    if chunk is not None:
                        chunk.error = result[:2000]
                elif result is not None and c.session_id in alive:
                    rows.append(self._features_row(c.session_id, c.seq_num, result))
                self._finish(s, c.job_id)
                report.outcome = "done"
            _upsert(s, ChunkFeatures, rows, ["session_id", "seq_num"])

    def _inputs(
        self, s: Session, session_id: str, n: int, since: int = 0
    ) -> tuple[list[_ChunkRow], dict[int, ChunkFeatures]]:
        """The chunks of epochs ``since .. n - 1`` and their stored features."""
        chunks = [
            _ChunkRow(c.seq_num, c.blob_key, c.inference_type, c.error)
            for c in s.scalars(
                select(Chunk).where(Chunk.session_id == session_id, Chunk.seq_num >= since, Chunk.seq_num < n)
            )
        ]
        feats = {
            f.seq_num: f
            for f in s.scalars(
                select(ChunkFeatures).where(
                    ChunkFeatures.session_id == session_id, ChunkFeatures.seq_num >= since, ChunkFeatures.seq_num < n
                )
            )
        }
        return chunks, feats

    def _assemble(
        self, session_id: str, n: int, chunks: Iterable[_ChunkRow], stored: dict[int, ChunkFeatures], since: int = 0
    ) -> _Inputs:
        """The feature matrix of epochs ``since .. n - 1``, computing what is missing or stale."""
        width = self.engine.n_features
        features = np.zeros((n - since, width), dtype=np.float32)
        valid = np.zeros(n - since, dtype=bool)
        new_rows: list[dict[str, Any]] = []
        errors: dict[int, str] = {}
        for c in chunks:
            if not since <= c.seq_num < n or c.error is not None:
                continue
            row = stored.get(c.seq_num)
            if row is not None and self._current(row):
                features[c.seq_num - since] = np.frombuffer(row.data, dtype="<f4")
                valid[c.seq_num - since] = True
                continue
            result = self.compute_features(c.blob_key, c.inference_type)
            if isinstance(result, str):
                errors[c.seq_num] = result
                continue
            features[c.seq_num - since] = result
            valid[c.seq_num - since] = True
            new_rows.append(self._features_row(session_id, c.seq_num, result))
        return _Inputs(features, valid, new_rows, errors)

    def _write_inputs(self, s: Session, session_id: str, inputs: _Inputs) -> None:
        _upsert(s, ChunkFeatures, inputs.new_rows, ["session_id", "seq_num"])
        for seq, error in inputs.errors.items():
            chunk = s.get(Chunk, (session_id, seq))
            if chunk is not None:
                chunk.error = error[:2000]

    @staticmethod
    def _locked_session(s: Session, session_id: str) -> SleepSession | None:
        query = select(SleepSession).where(SleepSession.id == session_id)
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(key_share=True)
        return s.scalars(query).first()

    # ------------------------------------------------------------------------------------- realtime
    def _earlier_realtime(self, s: Session, session_id: str, n: int, snoring: bool) -> _Earlier | None:
        """The latest real-time result before epoch ``n`` whose state this job can continue, if any.

        Its decided epochs must have the chunks they were decided with: a chunk that arrived late for one of
        them (out of order across a 5-minute mark) means starting the night again.
        """
        row = s.execute(
            select(RealtimeResult.sleep_stages, RealtimeResult.snoring_stages, RealtimeResult.causal_state)
            .where(
                RealtimeResult.session_id == session_id,
                RealtimeResult.seq_num < n - 1,
                RealtimeResult.causal_state.is_not(None),
            )
            .order_by(RealtimeResult.inference_seq_num.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        try:
            state = RealtimeState.from_json(row.causal_state)
        except RealtimeStateError as exc:
            log.warning("session %s: unusable real-time state (%s); staging the night again", session_id, exc)
            return None
        stages, snores = list(row.sleep_stages), row.snoring_stages
        if (
            state.model_version != self.engine.version
            or state.epochs > n
            or len(stages) != state.epochs
            or (snoring and (snores is None or len(snores) != state.epochs))
        ):
            return None
        usable = np.zeros(state.epochs, dtype=bool)
        usable[
            list(
                s.scalars(
                    select(Chunk.seq_num).where(
                        Chunk.session_id == session_id, Chunk.seq_num < state.epochs, Chunk.error.is_(None)
                    )
                )
            )
        ] = True
        if not np.array_equal(usable, state.valid):
            return None
        return _Earlier(state, stages, list(snores) if snoring and snores is not None else None)

    def _stage_realtime(
        self, session_id: str, n: int, scheme: StageScheme, earlier: _Earlier | None
    ) -> tuple[_Inputs, StagingResult, RealtimeState]:
        """Causal staging of epochs ``earlier.state.epochs .. n - 1`` (all of them without ``earlier``)."""
        state = None if earlier is None else earlier.state
        since = 0 if state is None else state.input_start
        with self.stores.db.read() as s:
            chunks, stored = self._inputs(s, session_id, n, since)
        inputs = self._assemble(session_id, n, chunks, stored, since)
        result, after = self.engine.realtime_continue(state, inputs.features, inputs.valid, scheme)
        return inputs, result, after

    def _realtime_job(self, job_id: int, session_id: str, seq_num: int) -> int:
        """The real-time result after ``seq_num``: the night so far, decided causally.

        Only the epochs since the session's previous result are computed, continuing its stored state, so a
        night's real-time analysis costs as much as one analysis of the whole night, not one per 5 minutes.
        """
        db = self.stores.db
        n = seq_num + 1
        with db.read() as s:
            sess = s.get(SleepSession, session_id)
            skip = sess is None or sess.state == SessionState.COMPLETE or not sess.realtime
            if sess is not None and not skip:
                scheme = StageScheme(sess.scheme)
                earlier = self._earlier_realtime(s, session_id, n, sess.snoring)
        if skip:
            with db.write() as s:
                self._finish(s, job_id)
            return 0
        try:
            inputs, result, after = self._stage_realtime(session_id, n, scheme, earlier)
        except RealtimeStateError as exc:  # a decided epoch's chunk turned out unusable only now
            log.info("session %s: %s; staging the night again", session_id, exc)
            earlier = None
            inputs, result, after = self._stage_realtime(session_id, n, scheme, None)
        stages = ([] if earlier is None else earlier.stages) + [int(v) for v in result.stages]
        snoring = ([] if earlier is None or earlier.snoring is None else earlier.snoring) + [
            int(v) for v in result.snoring
        ]
        webhooks = 0
        with db.write() as s:
            sess = self._locked_session(s, session_id)
            if sess is not None:
                self._write_inputs(s, session_id, inputs)
            if sess is not None and sess.state != SessionState.COMPLETE:
                keep_snoring = snoring if sess.snoring else None
                inference = n // 10 - 1
                row = {
                    "session_id": session_id,
                    "inference_seq_num": inference,
                    "seq_num": seq_num,
                    "sleep_stages": stages,
                    "snoring_stages": keep_snoring,
                    "model_version": result.model_version,
                    "created_at": utcnow(),
                    "causal_state": after.to_json(),
                }
                _upsert(s, RealtimeResult, [row], ["session_id", "inference_seq_num"])
                s.execute(  # only the latest state is ever continued
                    update(RealtimeResult)
                    .where(RealtimeResult.session_id == session_id, RealtimeResult.inference_seq_num < inference)
                    .values(causal_state=None)
                )
                payload = inference_complete_payload(sess.user_id, session_id, seq_num, stages, keep_snoring)
                webhooks += enqueue_webhook(s, sess, payload) is not None
            self._finish(s, job_id)
        return webhooks

    # ---------------------------------------------------------------------------------------- final
    def _final_job(self, job_id: int, session_id: str) -> int:
        db = self.stores.db
        with db.read() as s:
            sess = s.get(SleepSession, session_id)
            if sess is None or sess.state != SessionState.CLOSED:
                skip = True
            else:
                skip = False
                n = final_epoch_count(sess)
                scheme = StageScheme(sess.scheme)
                chunks, stored = self._inputs(s, session_id, n)
        if skip:
            with db.write() as s:
                self._finish(s, job_id)
            return 0
        inputs = self._assemble(session_id, n, chunks, stored)
        result = self.engine.full_night(inputs.features, inputs.valid, scheme)
        webhooks = 0
        with db.write() as s:
            sess = self._locked_session(s, session_id)
            if sess is not None and sess.state == SessionState.CLOSED:
                self._write_inputs(s, session_id, inputs)
                _upsert(
                    s,
                    FinalResult,
                    [
                        {
                            "session_id": session_id,
                            "sleep_stages": [int(v) for v in result.stages],
                            "snoring_stages": [int(v) for v in result.snoring] if sess.snoring else None,
                            "model_version": result.model_version,
                            "computed_at": utcnow(),
                        }
                    ],
                    ["session_id"],
                )
                sess.state = SessionState.COMPLETE.value
                sess.complete_time = utcnow()
                # the night is over: no real-time result will continue from its state
                s.execute(
                    update(RealtimeResult).where(RealtimeResult.session_id == session_id).values(causal_state=None)
                )
                s.flush()
                if sess.callback_url:
                    tz = parse_timezone(sess.created_timezone)
                    document = session_document(s, sess, tz, sess.created_timezone)
                    webhooks += enqueue_webhook(s, sess, session_complete_payload(sess.user_id, document)) is not None
                log.info(
                    "session %s COMPLETE (%d epochs, %d valid)", session_id, inputs.valid.size, int(inputs.valid.sum())
                )
            self._finish(s, job_id)
        return webhooks

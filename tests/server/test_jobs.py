"""Analysis jobs: results computed by the engine, bad chunks, stale features, retries, recovery, stale sessions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from sleeptrack.analysis import Engine, RealtimeState, StageScheme, decode_mel_chunk, load_engine
from sleeptrack.analysis._sequence import DERIVED_CONTEXT
from sleeptrack.jobs import (
    MAX_ATTEMPTS,
    InProcessQueue,
    JobReport,
    JobRunner,
    QueuedJob,
    add_job,
    close_stale_sessions,
    recover,
)
from sleeptrack.store import (
    Chunk,
    ChunkFeatures,
    FinalResult,
    Job,
    RealtimeResult,
    SleepSession,
    open_stores,
    utcnow,
)
from tests.server.conftest import Api, Night, make_keys, make_settings, mel_chunk


def test_final_result_is_the_engines_full_night_on_the_uploaded_chunks(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    bodies = {seq: mel_chunk(100 + seq) for seq in range(14) if seq != 4}
    for seq, body in bodies.items():
        assert api.upload(sid, user, seq, body).status_code == 200
    assert api.close(sid, user, unexpected=1).status_code == 200
    api.wait()
    engine = load_engine()
    features = np.zeros((14, engine.n_features), np.float32)
    valid = np.zeros(14, bool)
    for seq, body in bodies.items():
        features[seq] = engine.chunk_features(decode_mel_chunk(body))
        valid[seq] = True
    expected = engine.full_night(features, valid, StageScheme.FOUR)
    report = api.report(sid, user)
    assert report["session"]["sleep_stages"] == expected.stages.tolist()
    assert report["session"]["snoring_stages"] == expected.snoring.tolist()
    assert report["session"]["sleep_stages"][4] == -1 and report["missing_data_ratio"] == round(1 / 14, 2)
    assert report["model_version"] == engine.version
    with api.ctx.stores.db.read() as db:
        stored = {f.seq_num: f for f in db.scalars(select(ChunkFeatures).where(ChunkFeatures.session_id == sid))}
    assert sorted(stored) == sorted(bodies)
    assert np.array_equal(np.frombuffer(stored[0].data, "<f4"), features[0])


def test_realtime_results_continue_the_night(api: Api, night: Night, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each 5-minute result computes only its new epochs from the stored state and equals staging the night
    so far from scratch; a chunk arriving late for a decided epoch, or a state that cannot be read, starts the
    night again; a COMPLETE session keeps no state."""
    calls: list[tuple[int | None, int]] = []
    original = Engine.realtime_continue

    def spy(self: Engine, state: RealtimeState | None, features: Any, valid: Any, scheme: Any) -> Any:
        calls.append((None if state is None else state.epochs, len(features)))
        return original(self, state, features, valid, scheme)

    monkeypatch.setattr(Engine, "realtime_continue", spy)
    engine = load_engine()
    feats = np.stack([engine.chunk_features(decode_mel_chunk(m)) for m in night.mels[:60]])
    user = api.new_user()
    sid = api.new_session(user)

    def upload(seqs: Iterable[int]) -> None:
        for seq in seqs:
            assert api.upload(sid, user, seq, night.mels[seq]).status_code == 200
        api.wait()

    def latest() -> tuple[list[int], list[int], list[int]]:
        with api.ctx.stores.db.read() as db:
            rows = db.execute(
                select(RealtimeResult.inference_seq_num, RealtimeResult.sleep_stages, RealtimeResult.snoring_stages)
                .where(RealtimeResult.session_id == sid)
                .order_by(RealtimeResult.inference_seq_num)
            ).all()
            kept = db.scalars(
                select(RealtimeResult.inference_seq_num).where(
                    RealtimeResult.session_id == sid, RealtimeResult.causal_state.is_not(None)
                )
            ).all()
        return list(rows[-1].sleep_stages), list(rows[-1].snoring_stages), list(kept)

    def from_scratch(n: int, valid: np.ndarray) -> tuple[list[int], list[int]]:
        r = engine.realtime(feats[:n], valid[:n], StageScheme.FOUR)
        return r.stages.tolist(), r.snoring.tolist()

    valid = np.ones(60, bool)
    valid[13] = False  # held back by the phone
    for first in range(0, 40, 10):
        upload(s for s in range(first, first + 10) if s != 13)
    assert calls[0] == (None, 10)
    assert [state for state, _ in calls] == [None, 10, 20, 30]
    assert all(rows <= 10 + DERIVED_CONTEXT for _, rows in calls[1:])  # new epochs and a few of context
    stages, snoring, kept = latest()
    assert (stages, snoring) == from_scratch(40, valid)
    assert kept == [3]  # the state is kept with the latest result only

    calls.clear()
    valid[13] = True
    upload([13, *range(40, 50)])  # the late chunk changes a decided epoch: staged again from the start
    assert calls == [(None, 50)]
    assert latest()[:2] == from_scratch(50, valid)

    calls.clear()
    with api.ctx.stores.db.write() as db:
        db.execute(update(RealtimeResult).where(RealtimeResult.session_id == sid).values(causal_state={"bad": 1}))
    upload(range(50, 60))
    assert calls == [(None, 60)]
    assert latest()[:2] == from_scratch(60, valid)

    assert api.close(sid, user).status_code == 200
    api.wait()
    assert latest()[2] == []


def _runner(api: Api) -> JobRunner:
    return JobRunner(api.ctx.stores)


def test_undecodable_chunks_become_error_epochs(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    for seq in range(11):
        assert api.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
    api.wait()
    stores = api.ctx.stores
    with stores.db.read() as db:
        chunk = db.get(Chunk, (sid, 3))
        assert chunk is not None
        key = chunk.blob_key
    # damaged on disk after it was accepted: its bytes in the blob segment overwritten
    pack, _, byte_range = key.rpartition("@")
    with (api.data_dir / "blobs" / pack).open("r+b") as f:
        f.seek(int(byte_range.partition("+")[0]))
        f.write(b"corrupted on disk")
    with stores.db.write() as db:
        db.execute(update(ChunkFeatures).where(ChunkFeatures.session_id == sid).values(engine_version="old-model"))
        db.delete(db.get_one(ChunkFeatures, (sid, 3)))
    assert api.close(sid, user, unexpected=1).status_code == 200
    api.wait()
    report = api.report(sid, user)
    assert report["session"]["sleep_stages"][3] == -1
    assert all(v != -1 for i, v in enumerate(report["session"]["sleep_stages"]) if i != 3)
    with stores.db.read() as db:
        chunk = db.get(Chunk, (sid, 3))
        assert chunk is not None and chunk.error is not None and "mel" in chunk.error
        versions = set(db.scalars(select(ChunkFeatures.engine_version).where(ChunkFeatures.session_id == sid)))
    assert versions == {load_engine().version}  # stale features were recomputed with the current engine


def test_failing_jobs_are_retried_then_marked_failed(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    with api.ctx.stores.db.write() as db:
        job = add_job(db, "features", sid, 0)
        job.kind = "bogus"
        db.flush()
        job_id = job.id
    runner = _runner(api)
    outcomes = [runner.run(job_id) for _ in range(MAX_ATTEMPTS + 1)]
    assert [o.outcome for o in outcomes] == ["retry"] * (MAX_ATTEMPTS - 1) + ["failed", "skipped"]
    assert outcomes[0].retry_after == 2.0 and "bogus" in (outcomes[0].error or "")
    with api.ctx.stores.db.read() as db:
        row = db.get_one(Job, job_id)
        assert row.status == "failed" and row.attempts == MAX_ATTEMPTS and row.error


def test_jobs_of_deleted_sessions_are_skipped(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    assert api.upload(sid, user, 0).status_code == 200
    api.wait()
    with api.ctx.stores.db.write() as db:
        job_id = add_job(db, "final", sid).id
    assert api.client.delete(f"/ai/v1/sessions/{sid}", headers=api.h(user=user)).status_code == 204
    assert _runner(api).run(job_id).outcome == "skipped"


def test_recovery_after_a_crash(api: Api) -> None:
    stores = api.ctx.stores
    user = api.new_user()
    sid = api.new_session(user)
    for seq in range(3):
        assert api.upload(sid, user, seq).status_code == 200
    api.wait()
    # as a crash would leave it: CLOSED, its final job missing; another job "running" in a dead process
    with stores.db.write() as db:
        s = db.get_one(SleepSession, sid)
        s.state, s.end_time = "CLOSED", s.start_time + timedelta(seconds=90)
        db.execute(update(Job).where(Job.session_id == sid, Job.seq_num == 1).values(status="running"))
    queued = recover(stores, reset_running=False)
    with stores.db.read() as db:
        assert db.scalars(select(Job.status).where(Job.session_id == sid, Job.seq_num == 1)).one() == "running"
    queued = recover(stores)
    with stores.db.read() as db:
        jobs = {(j.kind, j.seq_num): j for j in db.scalars(select(Job).where(Job.session_id == sid))}
    assert jobs[("features", 1)].status == "pending" and jobs[("final", -1)].status == "pending"
    assert {q.job_id for q in queued} >= {jobs[("features", 1)].id, jobs[("final", -1)].id}
    api.ctx.queue.submit(queued)
    api.wait()
    assert api.report(sid, user)["session"]["state"] == "COMPLETE"


def test_sessions_left_open_are_closed(api: Api) -> None:
    stores = api.ctx.stores
    user = api.new_user()
    old = api.new_session(user)
    for seq in (0, 1, 2):
        assert api.upload(old, user, seq).status_code == 200
    with stores.db.write() as db:
        s = db.get_one(SleepSession, old)
        s.start_time = utcnow() - timedelta(hours=25)
    fresh_user = api.new_user()
    fresh = api.new_session(fresh_user)
    queued = close_stale_sessions(stores, timedelta(hours=24))
    assert len(queued) == 1
    api.ctx.queue.submit(queued)
    api.wait()
    with stores.db.read() as db:
        s = db.get_one(SleepSession, old)
        assert s.state == "COMPLETE" and s.unexpected_end_time is not None
        assert s.end_time == s.start_time + timedelta(seconds=90)
        assert db.get_one(SleepSession, fresh).state == "OPEN"
        assert db.get(FinalResult, old) is not None


def test_priorities_hold_in_the_queue(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    for seq in range(10):
        assert api.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
    api.wait()
    ids = []
    with api.ctx.stores.db.write() as db:
        db.execute(update(Job).where(Job.session_id == sid).values(status="pending"))
        for j in db.scalars(select(Job).where(Job.session_id == sid)):
            ids.append((j.priority, j.id, j.kind))
    order: list[str] = []
    batches: list[int] = []
    last = [-1.0]
    done = threading.Event()
    gate = threading.Event()
    runner = _runner(api)

    class Gated(JobRunner):
        def run_many(self, job_ids: Sequence[int]) -> list[JobReport]:
            gate.wait(10)
            return runner.run_many(job_ids)

    queue = InProcessQueue(api.ctx.settings, mode="thread", workers=1, runner=Gated(api.ctx.stores))

    def listen(report: JobReport) -> None:
        order.append(report.kind)
        if report.extra["wall_seconds"] != last[0]:
            last[0] = report.extra["wall_seconds"]
            batches.append(0)
        batches[-1] += 1
        if len(order) == len(ids):
            done.set()

    queue.add_listener(listen)
    queue.start()
    try:
        # the first job occupies the worker; the rest wait and come out by priority
        jobs = [QueuedJob(p, i) for p, i, _ in sorted(ids, key=lambda t: -t[0])]
        queue.submit(jobs[:1])
        deadline = time.monotonic() + 10
        while queue.running() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        queue.submit(jobs[1:])
        gate.set()
        assert done.wait(30)
    finally:
        queue.stop()
    assert order[0] == "features" and order[1] == "realtime" and order[2:] == ["features"] * 9
    assert batches[:2] == [1, 1] and batches[2:] == [4, 4, 1]  # features go to the worker four at a time


@pytest.mark.slow
def test_worker_processes_run_jobs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, worker_mode="process", workers=1)
    make_keys(settings)
    stores = open_stores(settings)
    queue = InProcessQueue(settings, mode="process", workers=1)
    reports: list[JobReport] = []
    finished = threading.Event()

    def listen(report: JobReport) -> None:
        reports.append(report)
        finished.set()

    queue.add_listener(listen)
    queue.start()
    try:
        queue.submit([QueuedJob(0, 12345)])  # unknown: skipped by the worker process
        assert finished.wait(60)
    finally:
        queue.stop()
        stores.close()
    assert reports[0].job_id == 12345 and reports[0].outcome == "skipped"

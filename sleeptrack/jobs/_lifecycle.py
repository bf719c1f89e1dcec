"""Creating jobs, closing sessions and recovering after a restart.

Jobs are added in the transaction that makes them necessary (an upload, a close), so a crash between
the commit and the queue loses nothing: :func:`recover` finds every job that still has to run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sleeptrack.analysis import EPOCH_SECONDS, EPOCHS_PER_INFERENCE, SessionState
from sleeptrack.store import Job, SleepSession, Stores, utcnow

from ._queue import PRIORITY, QueuedJob

__all__ = ["add_job", "close_session", "close_stale_sessions", "jobs_for_upload", "recover"]


def add_job(db: Session, kind: str, session_id: str, seq_num: int = -1) -> Job:
    now = utcnow()
    job = Job(
        kind=kind,
        session_id=session_id,
        seq_num=seq_num,
        priority=PRIORITY[kind],
        status="pending",
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.add(job)
    return job


def jobs_for_upload(db: Session, s: SleepSession, seq_num: int) -> list[Job]:
    """The jobs an accepted chunk causes: its features, and a real-time result after every 10th epoch."""
    jobs = [add_job(db, "features", s.id, seq_num)]
    if s.realtime and (seq_num + 1) % EPOCHS_PER_INFERENCE == 0:
        jobs.append(add_job(db, "realtime", s.id, seq_num))
    return jobs


def unexpected_end(s: SleepSession) -> timedelta:
    """Length of a session that ended unexpectedly: up to the end of its last uploaded chunk."""
    return timedelta(seconds=EPOCH_SECONDS * (s.last_seq_num + 1))


def close_session(db: Session, s: SleepSession, *, end_time: datetime | None = None, unexpected: bool = False) -> Job:
    """Mark ``s`` CLOSED (its end time set) and add its final-analysis job.

    ``unexpected``: the end is the end of the last uploaded chunk and ``unexpected_end_time`` is now.
    Otherwise ``end_time`` (a datetime) or, if None, the later of now and the end of the last chunk.
    """
    now = utcnow()
    if unexpected:
        s.end_time = s.start_time + unexpected_end(s)
        s.unexpected_end_time = now
    elif end_time is not None:
        s.end_time = end_time
    else:
        s.end_time = max(now, s.start_time + unexpected_end(s))
    s.state = SessionState.CLOSED.value
    existing = db.scalars(select(Job).where(Job.kind == "final", Job.session_id == s.id)).first()
    if existing is not None:
        existing.status = "pending"
        existing.updated_at = now
        return existing
    return add_job(db, "final", s.id)


def close_stale_sessions(stores: Stores, max_age: timedelta) -> list[QueuedJob]:
    """Close (as unexpected ends) the OPEN sessions started more than ``max_age`` ago."""
    cutoff = utcnow() - max_age
    with stores.db.write() as db:
        stale = list(
            db.scalars(
                select(SleepSession).where(
                    SleepSession.state == SessionState.OPEN.value, SleepSession.start_time < cutoff
                )
            )
        )
        jobs = [close_session(db, s, unexpected=True) for s in stale]
        db.flush()
        return [QueuedJob(j.priority, j.id) for j in jobs]


def recover(stores: Stores, *, reset_running: bool = True) -> list[QueuedJob]:
    """The jobs to queue after a start.

    ``reset_running``: jobs marked running belong to a dead process (true for the embedded server, the
    only process using its database); otherwise only those whose lease expired run again. CLOSED
    sessions whose final job is missing get one.
    """
    now = utcnow()
    with stores.db.write() as db:
        condition = Job.status == "running"
        if not reset_running:
            condition = condition & (Job.locked_until < now)
        db.execute(update(Job).where(condition).values(status="pending", locked_until=None, updated_at=now))
        closed = db.scalars(select(SleepSession).where(SleepSession.state == SessionState.CLOSED.value))
        for s in closed:
            final = db.scalars(select(Job).where(Job.kind == "final", Job.session_id == s.id)).first()
            if final is None:
                add_job(db, "final", s.id)
            elif final.status == "done":
                final.status = "pending"
        db.flush()
        rows = db.execute(select(Job.id, Job.priority).where(Job.status == "pending").order_by(Job.id)).all()
    return [QueuedJob(priority, job_id) for job_id, priority in rows]

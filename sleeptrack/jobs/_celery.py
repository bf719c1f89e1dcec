"""Scale-out job queue: Celery on Redis, ``sleeptrack worker`` processes running the analysis jobs.

The database row stays the job (as with :class:`~sleeptrack.jobs.InProcessQueue`); a Celery message only
carries its id. Delivery guarantees:

* Messages are acknowledged late (after the job ran) and re-queued if the worker dies holding one
  (``task_acks_late``, ``task_reject_on_worker_lost``; Redis' visibility timeout for a worker killed outright).
* Jobs are idempotent: a job already done is skipped; results are upserts; a job another worker holds
  (lease ``job_lease_seconds``) is looked at again when the lease ends, and run if that worker died.
* Messages can be lost (Redis restarted: it keeps nothing on disk): the workers sweep the database every
  few seconds. A marker key in Redis tells a restarted (emptied) Redis: then every pending job is sent
  again. Jobs whose lease expired, and jobs pending for longer than ``LOST_AFTER`` (a publish dropped
  while Redis was unreachable), are sent again at any sweep. Duplicates are harmless (idempotent jobs).

Publishing never blocks an upload: :meth:`CeleryQueue.submit` hands ids to a background thread; if Redis
is down they are dropped there and the sweep sends them later.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select

from sleeptrack._periodic import Periodic
from sleeptrack.analysis import SessionState
from sleeptrack.store import Job, Settings, SleepSession, Stores, utcnow

from ._lifecycle import add_job
from ._queue import PRIORITY, JobReport, QueuedJob

__all__ = ["QUEUE_NAME", "TASK_NAME", "CeleryQueue", "make_celery", "sweep_lost_jobs"]

log = logging.getLogger("sleeptrack.jobs")

QUEUE_NAME = "sleeptrack"
TASK_NAME = "sleeptrack.run_job"
#: A pending job whose message is older than this is taken to be lost and sent again by the sweep.
LOST_AFTER = timedelta(minutes=10)
#: Set in Redis by the first sweep; its absence means Redis lost its data (restarted) since.
MARKER = "sleeptrack:broker-epoch"


def make_celery(settings: Settings) -> Any:
    """The Celery application of these settings (broker ``settings.broker_url``)."""
    from celery import Celery

    if not settings.broker_url:
        raise ValueError("scale-out needs a broker: --broker redis://127.0.0.1:6379/0 (or SLEEPTRACK_BROKER_URL)")
    app = Celery("sleeptrack", broker=settings.broker_url)
    app.conf.update(
        task_default_queue=QUEUE_NAME,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            # Lower runs first (real-time, then final, then features), one Redis list per priority.
            "priority_steps": sorted(set(PRIORITY.values())),
            "sep": ":",
            "queue_order_strategy": "priority",
            # An unacknowledged message (its worker was killed) is delivered again after this long.
            "visibility_timeout": max(30, int(settings.job_lease_seconds * 2)),
        },
    )
    return app


class CeleryQueue:
    """A :class:`~sleeptrack.jobs.JobQueue` that publishes job ids to Celery (used by ``sleeptrack serve --broker``)."""

    workers = 0
    mode = "celery"

    def __init__(self, settings: Settings, app: Any = None) -> None:
        self.settings = settings
        self.app = app if app is not None else make_celery(settings)
        self._outbox: queue.Queue[QueuedJob | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[JobReport], None]] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._publish_loop, name="celery-publisher", daemon=True)
            self._thread.start()

    def stop(self, wait: bool = True) -> None:
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join(timeout=10 if wait else 0.1)
            self._thread = None

    def submit(self, jobs: Iterable[QueuedJob]) -> None:
        for job in jobs:
            self._outbox.put(job)

    def pending(self) -> int:
        return self._outbox.qsize()

    def add_listener(self, listener: Callable[[JobReport], None]) -> None:
        self._listeners.append(listener)  # reports happen in the workers; nothing is reported here

    def send(self, job: QueuedJob, countdown: float | None = None) -> None:
        self.app.send_task(
            TASK_NAME,
            args=[job.job_id, job.priority],
            queue=QUEUE_NAME,
            priority=job.priority,
            countdown=countdown,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
        )

    def _publish_loop(self) -> None:
        while True:
            job = self._outbox.get()
            if job is None:
                return
            try:
                self.send(job)
            except Exception as exc:  # Redis down: the workers' sweep sends it once Redis is back
                log.warning("could not queue job %s (%s); the workers' sweep will send it", job.job_id, exc)


def sweep_lost_jobs(
    stores: Stores, *, all_pending: bool = False, lost_after: timedelta = LOST_AFTER
) -> list[QueuedJob]:
    """Jobs to send again: pending for longer than ``lost_after`` (every pending one if ``all_pending``),
    or running past their lease.

    CLOSED sessions without a final job get one (their close was committed but its job was not).
    """
    now = utcnow()
    old = now if all_pending else now - lost_after
    with stores.db.write() as db:
        closed = db.scalars(
            select(SleepSession.id).where(
                SleepSession.state == SessionState.CLOSED.value,
                ~select(Job.id).where(Job.kind == "final", Job.session_id == SleepSession.id).exists(),
            )
        ).all()
        for session_id in closed:
            add_job(db, "final", session_id)
        db.flush()
        rows = db.execute(
            select(Job.id, Job.priority).where(
                or_(
                    (Job.status == "pending") & or_(Job.updated_at <= old, Job.session_id.in_(closed)),
                    (Job.status == "running") & (Job.locked_until < now),
                )
            )
        ).all()
        # Pending again (a dead worker's lease is over), touched so that the next sweep waits a grace period.
        for job in db.scalars(select(Job).where(Job.id.in_([r[0] for r in rows]))):
            job.status = "pending"
            job.locked_until = None
            job.updated_at = now
    return [QueuedJob(priority, job_id) for job_id, priority in rows]


class Sweeper:
    """Background thread of a worker: re-sends lost jobs every ``interval`` seconds (one worker at a time)."""

    def __init__(self, stores: Stores, queue_: CeleryQueue, redis_url: str | None, interval: float = 5.0) -> None:
        self.stores = stores
        self.queue = queue_
        self.redis_url = redis_url
        self.interval = interval
        self._thread = Periodic(
            "job-sweeper",
            interval,
            self.sweep_once,
            lambda exc: log.warning("job sweep failed (%s); retrying in %g s", exc, interval),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def _turn(self) -> tuple[bool, bool]:
        """(this worker sweeps now, Redis lost its data since the last sweep)."""
        if not self.redis_url:
            return True, False
        import redis

        with contextlib.closing(redis.Redis.from_url(self.redis_url, socket_timeout=2)) as r:
            if not r.set("sleeptrack:sweep", "1", nx=True, ex=max(1, int(self.interval))):
                return False, False
            emptied = bool(r.set(MARKER, str(time.time()), nx=True))
            return True, emptied

    def sweep_once(self) -> int:
        mine, emptied = self._turn()
        if not mine:
            return 0
        if emptied:
            log.info(
                "the broker has no record of earlier jobs (first start, or Redis restarted): re-sending pending jobs"
            )
        jobs = sweep_lost_jobs(self.stores, all_pending=emptied)
        for job in jobs:
            self.queue.send(job)
        if jobs:
            log.info("re-sent %d analysis jobs whose messages were lost or whose worker died", len(jobs))
        return len(jobs)

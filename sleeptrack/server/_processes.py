"""Several API processes on the embedded default (``sleeptrack serve --processes N``).

One API process runs its Python on one core at a time (the GIL). With ``--processes N`` uvicorn runs N
copies of the app on the same listening socket, and the kernel spreads connections between them. One of
them, the *leader*, holds an exclusive lock on ``<data_dir>/leader.lock`` (its pid is written in the file)
and runs what must run once: the analysis workers and their job queue, the webhook sender, the sweep of
stale sessions and the recovery of unfinished jobs at start. The others only answer requests: the jobs
their uploads and closes commit are rows in the database, which the leader's :class:`JobPoller` reads
every quarter of a second and queues. If the leader dies, uvicorn starts a replacement, which takes the
lock (the kernel releases it with the dead process) and resumes the unfinished jobs.

Every process enforces rate limits on the calls it answers (as several servers of the scale-out mode
do without Redis); quotas are shared through the database. ``/metrics`` describes the process that
answered.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import func, select

from sleeptrack._periodic import Periodic
from sleeptrack.jobs import JobReport, QueuedJob
from sleeptrack.store import Job, Settings, Stores, try_lock

__all__ = [
    "SETTINGS_ENV",
    "HandedOver",
    "JobPoller",
    "LeaderLock",
    "app_from_environment",
    "freeze_startup_heap",
    "settings_for_processes",
]

log = logging.getLogger("sleeptrack.server")

#: How ``sleeptrack serve`` passes its settings to the API processes uvicorn starts.
SETTINGS_ENV = "SLEEPTRACK_SERVE_SETTINGS"


def settings_for_processes(settings: Settings) -> str:
    """The settings as the API processes read them back: every field but the secret, which each process
    reads from the environment or ``secret.key`` as the parent did (no secret in a process environment)."""
    return settings.model_dump_json(exclude={"secret_key"})


def freeze_startup_heap() -> None:
    """Once an API process has built its app: everything alive now (modules, the app) lives as long as the
    process, so keep it out of the cyclic garbage collector's full passes, which otherwise walk it again
    and again under load (their share of the CPU during an ingest burst: 6 % → 3 %)."""
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """uvicorn's app factory in each API process."""
    from ._app import create_app

    app = create_app(Settings(**json.loads(os.environ[SETTINGS_ENV])))
    freeze_startup_heap()
    return app


class LeaderLock:
    """An exclusive, non-blocking ``flock`` on a file; the kernel releases it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True if this process now leads (or already did)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not try_lock(fd):
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the lock
            self._fd = None


class HandedOver:
    """The job queue of an API process that does not lead: its jobs are committed rows, which the leader
    polls and runs, so there is nothing to queue here; :meth:`pending` counts the waiting rows."""

    workers = 0
    mode = "leader's"

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def start(self) -> None:
        pass

    def stop(self, wait: bool = True) -> None:
        pass

    def submit(self, jobs: Iterable[QueuedJob]) -> None:
        pass

    def pending(self) -> int:
        """Jobs waiting to run, whichever process committed them (``/healthz``'s ``jobs_queued``, as the
        leader's queue counts them)."""
        with self.stores.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Job).where(Job.status == "pending")) or 0)

    def idle(self) -> bool:
        return True

    def add_listener(self, listener: Callable[[JobReport], None]) -> None:
        pass


class JobPoller:
    """Queues the jobs that other API processes committed: rows with an id above the highest seen.

    On SQLite (the only database this mode runs on) transactions write one at a time, so ids are
    committed in increasing order and none can appear below the mark.
    """

    def __init__(self, stores: Stores, submit: Callable[[Iterable[QueuedJob]], None], interval: float = 0.25) -> None:
        self.stores = stores
        self.submit = submit
        with stores.db.read() as s:
            # Older jobs are recover()'s, which the leader runs after reading this mark.
            self._after = int(s.scalar(select(func.max(Job.id))) or 0)
        self._thread = Periodic(
            "job-poller",
            interval,
            self.poll_once,
            lambda _: log.exception("cannot read the jobs other API processes committed; will retry"),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def poll_once(self) -> int:
        """Queue the pending jobs committed since the last call; how many."""
        with self.stores.db.read() as s:
            rows = s.execute(
                select(Job.id, Job.priority, Job.status).where(Job.id > self._after).order_by(Job.id)
            ).all()
        if not rows:
            return 0
        self._after = int(rows[-1].id)
        jobs = [QueuedJob(int(r.priority), int(r.id)) for r in rows if r.status == "pending"]
        if jobs:
            self.submit(jobs)
        return len(jobs)

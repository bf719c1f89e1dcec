"""The embedded job queue: a priority queue in the server process feeding worker processes (or threads).

The engine is numpy code that holds the GIL for most of its time (two threads run chunk features only
~1.1× faster than one), so by default jobs run in ``spawn``-ed worker processes at a lower CPU priority:
the API process keeps answering uploads while analysis uses what is left. A dispatcher hands a job to
a worker only when one is free, so priorities hold: real-time results overtake the features backlog.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from sleeptrack.store import Settings, open_stores

from ._queue import PRIORITY, JobReport, QueuedJob
from ._runner import JobRunner

__all__ = ["InProcessQueue"]

log = logging.getLogger("sleeptrack.jobs")

_RUNNER: JobRunner | None = None


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """End this worker once the process that started it is gone (SIGKILLed API processes included)."""
    while os.getppid() == parent:
        time.sleep(interval)
    log.warning("the process that started this analysis worker (pid %d) is gone; exiting", parent)
    os._exit(0)


def _init_worker(settings: dict[str, Any], nice: int) -> None:
    """Worker-process start: lower the priority, open the stores, load the engine once.

    A worker outliving its API process (killed with SIGKILL, nothing shuts the pool down) would be left
    running forever; a watchdog thread ends it with its parent.
    """
    global _RUNNER
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    from sleeptrack._logging import configure_logging

    worker_settings = Settings(**settings)
    configure_logging(worker_settings.log_level, plain=worker_settings.log_plain)
    if nice and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)
    stores = open_stores(worker_settings, migrate=False, pool_size=2)
    _RUNNER = JobRunner(stores)
    _ = _RUNNER.engine


def _run_in_worker(job_ids: list[int]) -> list[JobReport]:
    if _RUNNER is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("worker not initialised")
    return _RUNNER.run_many(job_ids)


class InProcessQueue:
    """A :class:`~sleeptrack.jobs.JobQueue` running jobs in this machine's worker processes or threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        mode: Literal["process", "thread"] = "process",
        workers: int = 1,
        runner: JobRunner | None = None,
        features_batch: int = 4,
    ) -> None:
        if mode == "thread" and runner is None:
            raise ValueError("thread mode needs the JobRunner the threads share")
        self.settings = settings
        self.mode = mode
        self.workers = workers
        self.features_batch = features_batch
        self._runner = runner
        self._heap: list[tuple[int, int, int]] = []
        self._queued: set[int] = set()
        self._counter = 0
        self._lock = threading.Condition()
        self._slots = threading.Semaphore(workers)
        self._executor: Executor | None = None
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self._running = 0
        self._listeners: list[Callable[[JobReport], None]] = []
        self._timers: set[threading.Timer] = set()

    # ---------------------------------------------------------------------------------- lifecycle
    def _new_executor(self) -> Executor:
        if self.mode == "thread":
            return ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="job")
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.settings.for_worker(), self.settings.worker_nice),
        )

    def start(self) -> None:
        if self._dispatcher is not None:
            return
        self._stopping = False
        self._executor = self._new_executor()
        self._dispatcher = threading.Thread(target=self._dispatch, name="job-dispatcher", daemon=True)
        self._dispatcher.start()

    def stop(self, wait: bool = True) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            for timer in self._timers:
                timer.cancel()
        if self._dispatcher is not None:
            self._slots.release()  # unblock a dispatcher waiting for a slot
            self._dispatcher.join(timeout=10)
            self._dispatcher = None
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

    def add_listener(self, listener: Callable[[JobReport], None]) -> None:
        self._listeners.append(listener)

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def running(self) -> int:
        return self._running

    def idle(self) -> bool:
        with self._lock:
            return not self._heap and self._running == 0 and not self._timers

    # ------------------------------------------------------------------------------------- queue
    def submit(self, jobs: Iterable[QueuedJob]) -> None:
        with self._lock:
            for job in jobs:
                if job.job_id in self._queued:
                    continue
                self._queued.add(job.job_id)
                self._counter += 1
                heapq.heappush(self._heap, (job.priority, self._counter, job.job_id))
            self._lock.notify()

    def _resubmit_later(self, job: QueuedJob, delay: float) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self.submit([job])

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            if self._stopping:
                return
            self._timers.add(timer)
        timer.start()

    def _dispatch(self) -> None:
        while True:
            self._slots.acquire()
            with self._lock:
                while not self._heap and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                priority, _, job_id = heapq.heappop(self._heap)
                batch = [QueuedJob(priority, job_id)]
                # Features jobs go to a worker several at a time (one hand-over, one claim, one write): a
                # real-time job waits at most for one such batch.
                while priority == PRIORITY["features"] and len(batch) < self.features_batch and self._heap:
                    if self._heap[0][0] != priority:
                        break
                    _, _, more = heapq.heappop(self._heap)
                    batch.append(QueuedJob(priority, more))
                for job in batch:
                    self._queued.discard(job.job_id)
                self._running += 1
            self._hand_over(batch)

    def _hand_over(self, batch: list[QueuedJob]) -> None:
        executor = self._executor
        assert executor is not None
        started = time.perf_counter()
        ids = [job.job_id for job in batch]
        try:
            if self.mode == "thread":
                runner = self._runner
                assert runner is not None
                future: Future[list[JobReport]] = executor.submit(runner.run_many, ids)
            else:
                future = executor.submit(_run_in_worker, ids)
        except (RuntimeError, BrokenProcessPool):
            self._job_finished(batch, None, started)
            return
        future.add_done_callback(lambda f: self._job_finished(batch, f, started))

    def _job_finished(self, batch: list[QueuedJob], future: Future[list[JobReport]] | None, started: float) -> None:
        reports: list[JobReport] | None = None
        if future is not None and not future.cancelled():
            exc = future.exception()
            if exc is None:
                reports = future.result()
            elif isinstance(exc, BrokenProcessPool):
                log.error("an analysis worker process died; restarting the pool")
                self._restart_pool()
            else:
                log.error("jobs %s crashed their worker: %r", [j.job_id for j in batch], exc)
        with self._lock:
            self._running -= 1
        self._slots.release()
        if reports is None:
            if not self._stopping:
                for job in batch:
                    self._resubmit_later(job, 1.0)
            return
        wall = time.perf_counter() - started
        for job, report in zip(batch, reports, strict=True):
            if report.outcome == "retry" and report.retry_after is not None:
                self._resubmit_later(job, report.retry_after)
            report.extra.setdefault("wall_seconds", wall)
            for listener in self._listeners:
                try:
                    listener(report)
                except Exception:
                    log.exception("job listener failed")

    def _restart_pool(self) -> None:
        with self._lock:
            if self._stopping:
                return
            old, self._executor = self._executor, self._new_executor()
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

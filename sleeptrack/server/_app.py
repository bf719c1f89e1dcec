"""The FastAPI application factory and the background machinery of ``sleeptrack serve``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import sleeptrack
from sleeptrack._periodic import Periodic
from sleeptrack.dashboard import dashboard_router
from sleeptrack.jobs import InProcessQueue, JobQueue, JobReport, JobRunner, close_stale_sessions, recover
from sleeptrack.store import Settings, open_stores
from sleeptrack.webhooks import Delivery, WebhookSender

from ._auth import Authenticator
from ._context import ServerContext
from ._errors import install_error_handlers
from ._hardening import HeaderGuardMiddleware, install_answer_schema
from ._ingest import ChunkWriter
from ._metrics import Metrics
from ._middleware import BodyLimitMiddleware, MetricsMiddleware
from ._processes import HandedOver, JobPoller, LeaderLock
from ._shared_limits import open_limits
from ._upload import UPLOAD_OPERATION, UPLOAD_PATH, upload_route

__all__ = ["create_app"]

log = logging.getLogger("sleeptrack.server")

DESCRIPTION = """\
Self-hosted, wire-compatible implementation of the AsleepTrack API: users, sleep sessions with 30-second
uploads, real-time results and final reports, webhooks.

Every call needs an `x-api-key` header (create one with `sleeptrack keys create`). Every answer is
`{"detail": ..., "result": ...}`. Calls about a user's sessions also take `x-user-id`; calls that return
times take an optional `timezone` header (IANA name, default UTC).
"""


class _Housekeeper:
    """Flushes usage counters every second; every minute (``sweeps``: the process that runs the jobs) seals
    the chunk segments of API processes that died and closes stale sessions."""

    def __init__(
        self, ctx: ServerContext, interval: float = 1.0, sweep_every: float = 60.0, sweeps: bool = True
    ) -> None:
        self.ctx = ctx
        self.sweep_every = sweep_every
        self.sweeps = sweeps
        self._since_sweep = 0.0
        self._thread = Periodic(
            "housekeeper", interval, self._tick, lambda _: log.exception("housekeeping failed; will retry")
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def sweep(self) -> None:
        sealed = self.ctx.stores.seal_abandoned_segments()
        if sealed:
            log.info("sealed %d chunk segment(s) left by a process that stopped without closing them", sealed)
        jobs = close_stale_sessions(self.ctx.stores, timedelta(hours=self.ctx.settings.stale_session_hours))
        if jobs:
            log.info(
                "closed %d sessions left open for more than %g h", len(jobs), self.ctx.settings.stale_session_hours
            )
            self.ctx.queue.submit(jobs)

    def _tick(self) -> None:
        self._since_sweep += self._thread.interval
        self.ctx.usage.flush()
        if self.sweeps and self._since_sweep >= self.sweep_every:
            self._since_sweep = 0.0
            self.sweep()


@dataclass
class _Background:
    """What ``_start`` started besides the context, for ``_stop``."""

    housekeeper: _Housekeeper
    poller: JobPoller | None = None
    lock: LeaderLock | None = None


def _start(settings: Settings, metrics: Metrics, queue: JobQueue | None) -> tuple[ServerContext, _Background]:
    stores = open_stores(settings, migrate=True, pool_size=20)
    external = queue is not None or bool(settings.broker_url)
    if queue is None and settings.broker_url:
        from sleeptrack.jobs._celery import CeleryQueue

        queue = CeleryQueue(settings)  # scale-out: jobs run in `sleeptrack worker` processes
    lock = None
    leads = True
    if not external and settings.api_processes > 1:  # several API processes on the embedded default
        lock = LeaderLock(settings.data_dir / "leader.lock")
        leads = lock.acquire()
        if not leads:
            queue = HandedOver(stores)
    if queue is None:
        workers = settings.resolved_workers
        if settings.worker_mode == "thread":
            runner = JobRunner(stores)
            _ = runner.engine  # load the model before the first job
            queue = InProcessQueue(settings, mode="thread", workers=workers, runner=runner)
        else:
            queue = InProcessQueue(settings, mode="process", workers=workers)
    sender = WebhookSender(
        stores,
        timeout=settings.webhook_timeout,
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff,
        backoff_max=settings.webhook_backoff_max,
        concurrency=settings.webhook_concurrency,
        allow_private=settings.allow_private_callbacks,
        max_response_bytes=settings.webhook_max_response_bytes,
    )
    limiter, usage = open_limits(settings, stores.db)
    auth = Authenticator(stores, limiter, usage)
    ctx = ServerContext(settings, stores, queue, sender, auth, usage, metrics, ChunkWriter(stores.db, stores.blobs))

    def on_job(report: JobReport) -> None:
        if report.kind:
            metrics.jobs.labels(report.kind, report.outcome).inc()
            metrics.job_seconds.labels(report.kind).observe(report.seconds)
        if report.webhooks:
            sender.wake()

    def on_delivery(d: Delivery) -> None:
        metrics.webhooks.labels(d.event, "delivered" if d.ok else ("failed" if d.final else "retry")).inc()
        metrics.webhook_seconds.observe(d.seconds)

    queue.add_listener(on_job)
    sender.add_listener(on_delivery)
    background = _Background(_Housekeeper(ctx, sweeps=leads), lock=lock)
    if leads:
        queue.start()
        sender.start()
        if lock is not None:  # its mark is read before recover(): no job can fall between the two
            background.poller = JobPoller(stores, queue.submit)
        background.housekeeper.sweep()
        # Jobs marked running belong to a dead process only when this process runs every job itself.
        recovered = recover(stores, reset_running=not external)
        if recovered:
            log.info("resuming %d unfinished analysis jobs", len(recovered))
            queue.submit(recovered)
        if background.poller is not None:
            background.poller.start()
    background.housekeeper.start()
    log.info(
        "sleeptrack server ready (database %s, %d %s workers)%s",
        stores.db.url.render_as_string(hide_password=True),
        getattr(queue, "workers", 0),
        getattr(queue, "mode", "external"),
        "" if lock is None else f"; API process {os.getpid()} {'leads' if leads else 'follows'}",
    )
    return ctx, background


def _stop(ctx: ServerContext, background: _Background) -> None:
    background.housekeeper.stop()
    if background.poller is not None:
        background.poller.stop()
    ctx.upload_threads.shutdown(wait=True)
    ctx.writer.stop()
    ctx.usage.flush()
    ctx.queue.stop(wait=True)
    ctx.sender.stop()
    ctx.stores.close()
    if background.lock is not None:
        background.lock.release()


def create_app(settings: Settings | None = None, *, queue: JobQueue | None = None) -> FastAPI:
    """The sleeptrack API. Its stores, workers and webhook sender start with the app's lifespan.

    ``queue``: another job queue (e.g. a distributed one) instead of the in-process workers.
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx, background = await run_in_threadpool(_start, settings, metrics, queue)
        app.state.ctx = ctx
        try:
            yield
        finally:
            await run_in_threadpool(_stop, ctx, background)

    app = FastAPI(
        title="sleeptrack API",
        version=sleeptrack.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    install_error_handlers(app)
    from . import _data, _ops, _sessions, _users

    app.include_router(_users.router)
    app.include_router(_sessions.router)
    app.include_router(_data.router)
    app.include_router(_ops.router)
    # /dashboard (sleeptrack.dashboard); a key revoked there is dropped from the key cache at once.
    app.include_router(
        dashboard_router(lambda: app.state.ctx.stores, on_key_revoked=lambda: app.state.ctx.auth.forget())
    )
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_upload_bytes + 64 * 1024, shown=settings.max_upload_bytes
    )
    # Also sets each request's callback policy (private targets refused unless the settings allow them).
    app.add_middleware(HeaderGuardMiddleware, allow_private_callbacks=settings.allow_private_callbacks)
    # The upload route is a bare ASGI endpoint matched before the API's routes (see _upload).
    app.router.routes.insert(0, upload_route())
    install_answer_schema(app, {UPLOAD_PATH: {"post": UPLOAD_OPERATION}})
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app

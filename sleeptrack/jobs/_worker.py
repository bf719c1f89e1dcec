"""``sleeptrack worker``: a Celery worker running analysis jobs, delivering webhooks, sweeping lost jobs."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from sleeptrack.store import Settings, open_stores

from ._celery import QUEUE_NAME, TASK_NAME, CeleryQueue, Sweeper, make_celery
from ._queue import QueuedJob
from ._runner import JobRunner

__all__ = ["run_worker"]

log = logging.getLogger("sleeptrack.jobs")


def run_worker(settings: Settings, *, name: str | None = None, sweep_interval: float = 5.0) -> None:
    """Run one worker process until it is stopped (SIGTERM / Ctrl+C: the running job finishes first).

    One job at a time (Celery's ``solo`` pool: the engine holds the GIL); run one worker per core.
    """
    from sleeptrack.webhooks import WebhookSender

    stores = open_stores(settings, migrate=True, pool_size=4)
    runner = JobRunner(stores, lease=timedelta(seconds=settings.job_lease_seconds))
    _ = runner.engine  # load the model before taking jobs
    app = make_celery(settings)
    publisher = CeleryQueue(settings, app)
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
    sweeper = Sweeper(stores, publisher, settings.resolved_redis_url, interval=sweep_interval)

    @app.task(name=TASK_NAME, acks_late=True)  # type: ignore[untyped-decorator]
    def run_job(job_id: int, priority: int = 2) -> str:
        report = runner.run(job_id)
        if report.outcome == "retry" and report.retry_after is not None:
            publisher.send(QueuedJob(priority, job_id), countdown=report.retry_after)
        if report.webhooks:
            sender.wake()
        if report.kind:
            log.info(
                "job %s (%s of %s): %s in %.2f s",
                job_id,
                report.kind,
                report.session_id,
                report.outcome,
                report.seconds,
            )
        return report.outcome

    sender.start()
    sweeper.start()
    node = name or f"sleeptrack-{os.getpid()}@{socket.gethostname()}"
    log.info("sleeptrack worker %s ready (database %s)", node, stores.db.url.render_as_string(hide_password=True))
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",
                f"--loglevel={settings.log_level}",
                "-Q",
                QUEUE_NAME,
                "-n",
                node,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        )
    finally:
        sweeper.stop()
        sender.stop()
        stores.close()

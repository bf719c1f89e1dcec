"""What every request handler reaches through ``request.app.state.ctx``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from sleeptrack.analysis import InvalidTimezoneError, parse_timezone
from sleeptrack.jobs import JobQueue, QueuedJob
from sleeptrack.store import Job, Settings, Stores

from ._auth import Authenticator, Caller
from ._errors import ApiError, Detail
from ._ingest import ChunkWriter, UploadTargets
from ._limits import UsageCounter
from ._metrics import Metrics

if TYPE_CHECKING:
    from sleeptrack.webhooks import WebhookSender

#: Uploads checked and written to the blob store at once (their group commit is awaited on the event loop).
UPLOAD_THREADS = 16

__all__ = ["TZ", "ServerContext", "ai_caller", "authenticate", "ctx_of", "data_caller", "request_timezone"]


@dataclass
class ServerContext:
    settings: Settings
    stores: Stores
    queue: JobQueue
    sender: WebhookSender
    auth: Authenticator
    usage: UsageCounter
    metrics: Metrics
    writer: ChunkWriter
    upload_targets: UploadTargets = field(default_factory=UploadTargets)
    #: Where uploads check their chunk (see ``_upload``; the chunk writer stores it).
    upload_threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="upload")
    )
    started_at: float = field(default_factory=time.time)

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue jobs committed by a request."""
        self.queue.submit(QueuedJob(j.priority, j.id) for j in jobs)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no job is queued or running and no webhook is due (tests, demo). True if reached."""
        deadline = time.monotonic() + timeout
        idle = getattr(self.queue, "idle", None)
        while time.monotonic() < deadline:
            if (idle is None or idle()) and self.sender.pending() == 0:
                return True
            time.sleep(0.05)
        return False


def ctx_of(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


_api_key_header = APIKeyHeader(name="x-api-key", auto_error=False, description="Your API key")


async def authenticate(auth: Authenticator, api_key: str | None, data_api: bool) -> Caller:
    """``auth.authenticate`` on the event loop when no database is needed, else in the thread pool."""
    if auth.is_cached(api_key):  # no database needed: stay on the event loop
        return auth.authenticate(api_key, data_api=data_api)
    return await run_in_threadpool(auth.authenticate, api_key, data_api=data_api)


async def ai_caller(request: Request, x_api_key: str | None = Depends(_api_key_header)) -> Caller:
    """The caller of a Users / Session API request (401 / 403 as documented)."""
    return await authenticate(ctx_of(request).auth, x_api_key, False)


async def data_caller(request: Request, x_api_key: str | None = Depends(_api_key_header)) -> Caller:
    """The caller of a Data API request (401 "The api key is not provided" without a key)."""
    return await authenticate(ctx_of(request).auth, x_api_key, True)


@dataclass(frozen=True)
class TZ:
    tz: tzinfo
    name: str


def request_timezone(
    timezone: str | None = Header(
        default=None, description="IANA time zone of the times in the answer (default UTC), e.g. Asia/Seoul"
    ),
) -> TZ:
    name = (timezone or "UTC").strip() or "UTC"
    try:
        return TZ(parse_timezone(name), name)
    except InvalidTimezoneError:
        raise ApiError(400, Detail.INVALID_TIMEZONE) from None

"""Operations: ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

import sleeptrack

from ._context import ctx_of

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="Health check", description="200 when the database answers, 503 otherwise.")
def healthz(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    result: dict[str, Any] = {"version": sleeptrack.__version__, "database": "ok"}
    status = 200
    try:
        with ctx.stores.db.read() as db:
            db.execute(text("SELECT 1"))
    except Exception as exc:
        result["database"] = f"error: {type(exc).__name__}"
        status = 503
    result["jobs_queued"] = ctx.queue.pending()
    return JSONResponse({"detail": "OK" if status == 200 else "unavailable", "result": result}, status_code=status)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
def metrics(request: Request) -> Response:
    ctx = ctx_of(request)
    ctx.metrics.queue_depth.set(ctx.queue.pending())
    with contextlib.suppress(Exception):  # the database is down: report the rest
        ctx.metrics.outbox_pending.set(ctx.sender.pending())
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

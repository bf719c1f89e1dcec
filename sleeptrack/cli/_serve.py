"""``sleeptrack serve``: the API server on the embedded default (SQLite, local blobs, in-process workers)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import app, err_console, fail
from ._server_opts import DatabaseUrlOption, DataDirOption, server_settings
from ._worker import BrokerOption

if TYPE_CHECKING:
    from sleeptrack.store import Settings


class WorkerMode(StrEnum):
    process = "process"
    thread = "thread"


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Analysis workers (default: CPUs - 1, at least 1).", show_default=False)
    ] = None,
    worker_mode: Annotated[
        WorkerMode | None, typer.Option(help="Run analysis in worker processes (default) or threads.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    plain_logs: Annotated[
        bool, typer.Option("--plain-logs", help="Human-readable logs instead of JSON lines.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    timeout_keep_alive: Annotated[
        int, typer.Option(help="Seconds an idle HTTP connection stays open (longer than clients keep theirs).")
    ] = 30,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="API processes answering on the port (default 1). On the embedded default one of them also "
            "runs the analysis workers, webhooks and housekeeping (docs/server.md).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the sleeptrack server: Users, Session and Data APIs, webhooks, analysis workers.

    OpenAPI documentation at /docs, Prometheus metrics at /metrics, health at /healthz.
    Create an API key first: sleeptrack keys create --environment test --plan advanced
    """
    settings = server_settings(
        data_dir,
        database_url,
        broker_url=broker,
        workers=workers,
        worker_mode=worker_mode.value if worker_mode is not None else None,
        log_level=log_level.upper(),
        log_plain=plain_logs or None,
        api_processes=processes,
    )
    try:
        import uvicorn

        from sleeptrack._logging import configure_logging
        from sleeptrack.server import create_app
        from sleeptrack.server._processes import freeze_startup_heap
        from sleeptrack.store import DatabaseError, PlanError
    except ImportError:
        fail("the server needs its extra dependencies: pip install 'sleeptrack[server]'")
    log_config = configure_logging(settings.log_level, plain=settings.log_plain)
    try:
        settings.plans()
    except PlanError as exc:
        fail(str(exc))
    err_console.print(
        f"sleeptrack server on [bold]http://{host}:{port}[/] (docs at /docs), data in {settings.data_dir}",
        highlight=False,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": log_config,
        "access_log": access_log,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": timeout_keep_alive,
    }
    try:
        if settings.api_processes > 1:
            _serve_processes(settings, options)
        else:
            app_ = create_app(settings)
            freeze_startup_heap()
            uvicorn.run(app_, **options)
    except DatabaseError as exc:
        fail(str(exc))


def _serve_processes(settings: Settings, options: dict[str, Any]) -> None:
    """``--processes N``: uvicorn starts N API processes, each building the app from the settings."""
    import uvicorn

    from sleeptrack.server._processes import SETTINGS_ENV, settings_for_processes
    from sleeptrack.store import is_sqlite_url, open_stores

    if not settings.broker_url:
        if not is_sqlite_url(settings.resolved_database_url):
            fail("several API processes on PostgreSQL need the scale-out mode: add --broker (docs/scale-out.md)")
        if sys.platform == "win32":
            fail("several API processes on the embedded default need a POSIX system (file locks)")
    # Done once here rather than by N processes at once: the database migrated, the secret created.
    open_stores(settings, migrate=True).close()
    settings.secret()
    os.environ[SETTINGS_ENV] = settings_for_processes(settings)
    uvicorn.run(
        "sleeptrack.server._processes:app_from_environment", factory=True, workers=settings.api_processes, **options
    )

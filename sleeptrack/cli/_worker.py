"""``sleeptrack worker``: scale-out analysis and webhook worker (Celery on Redis)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app, err_console, fail
from ._server_opts import DatabaseUrlOption, DataDirOption, server_settings

BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        envvar="SLEEPTRACK_BROKER_URL",
        help="Celery broker URL (redis://127.0.0.1:6379/0): analysis jobs go to `sleeptrack worker` processes.",
        show_default=False,
    ),
]


@app.command("worker")
def worker_command(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    broker: BrokerOption = None,
    name: Annotated[str | None, typer.Option(help="Worker name (default: sleeptrack-<pid>@<host>).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    plain_logs: Annotated[
        bool, typer.Option("--plain-logs", help="Human-readable logs instead of JSON lines.")
    ] = False,
) -> None:
    """Run a scale-out worker: analysis jobs from the broker, webhook delivery, recovery of lost jobs.

    Start as many as you have cores, next to `sleeptrack serve --broker ... --database-url postgresql://...`
    with the same settings (database, broker, secret key, blob store).
    """
    settings = server_settings(
        data_dir, database_url, broker_url=broker, log_level=log_level.upper(), log_plain=plain_logs or None
    )
    if not settings.broker_url:
        fail("a worker needs a broker: --broker redis://127.0.0.1:6379/0 (or SLEEPTRACK_BROKER_URL)")
    try:
        from sleeptrack._logging import configure_logging
        from sleeptrack.jobs._worker import run_worker
        from sleeptrack.store import DatabaseError
    except ImportError:
        fail("the worker needs its extra dependencies: pip install 'sleeptrack[distributed]'")
    configure_logging(settings.log_level, plain=settings.log_plain)
    err_console.print(f"sleeptrack worker on {settings.broker_url}", highlight=False)
    try:
        run_worker(settings, name=name)
    except DatabaseError as exc:
        fail(str(exc))

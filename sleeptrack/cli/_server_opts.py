"""Options shared by the commands that touch the server's data (``serve``, ``keys``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import fail

if TYPE_CHECKING:
    from sleeptrack.store import Settings

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="SLEEPTRACK_DATA_DIR",
        help="Folder of the server's database, uploads and settings (default: the per-user data folder).",
        show_default=False,
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="SLEEPTRACK_DATABASE_URL",
        help="SQLAlchemy URL of the database (default: SQLite in the data folder).",
        show_default=False,
    ),
]


def server_settings(data_dir: Path | None, database_url: str | None = None, **overrides: Any) -> Settings:
    """The server settings (environment variables, then these options), or a clear error."""
    try:
        from pydantic import ValidationError

        from sleeptrack.store import Settings
    except ImportError:
        fail("the server needs its extra dependencies: pip install 'sleeptrack[server]'")
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir.expanduser()
    if database_url is not None:
        values["database_url"] = database_url
    try:
        return Settings(**values)
    except ValidationError as exc:
        fail(f"invalid server settings: {exc}")

"""The Typer application shared by every command module, and small CLI helpers."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

__all__ = ["app", "console", "err_console", "fail"]

app = typer.Typer(
    name="sleeptrack",
    help="Open sleep tracking from night sound: server, SDK, analysis engine and night simulator.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error the user can act on and exit (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _print_version(value: bool) -> None:
    if value:
        from sleeptrack import __version__

        console.print(f"sleeptrack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Open sleep tracking from night sound: server, SDK, analysis engine and night simulator."""

"""A progress bar for work counted in epochs, silent when disabled (e.g. with --json)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["epoch_progress"]


@contextmanager
def epoch_progress(
    label: str, enabled: bool = True, console: Console | None = None
) -> Iterator[Callable[[int, int], None]]:
    """Yield ``advance(done, total)``; shows a bar with the count and the time left."""
    if not enabled:
        yield lambda _done, _total: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=max(total, done))

        yield advance

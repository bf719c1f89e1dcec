"""``sleeptrack`` command line: every command lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import _simulate  # noqa: F401  (registers `sleeptrack simulate`)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

"""``sleeptrack`` command line: every command lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import _stats  # noqa: F401  (registers its command)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

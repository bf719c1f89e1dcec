"""``sleeptrack`` command line: every command lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import (  # noqa: F401  (each registers its commands)
    _accounts,
    _analyze,
    _demo,
    _keys,
    _reports_cli,
    _serve,
    _simulate,
    _stats,
    _track,
    _train,
    _worker,
)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

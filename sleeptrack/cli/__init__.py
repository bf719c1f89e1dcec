"""``sleeptrack`` command line: every command lives in its own module and registers on ``app``."""

from __future__ import annotations

from . import _analyze, _demo, _simulate, _stats, _train  # noqa: F401  (each registers its commands)
from ._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()

"""Where sleeptrack finds optional real data and keeps its own files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir"]

_ENV = "SLEEPTRACK_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """The folder of real recordings and hypnograms (``../shared/data``), or ``None`` if absent.

    Looked up in ``$SLEEPTRACK_SHARED_DATA``, then ``../shared/data`` next to the current directory
    and next to the source checkout. Product code must work without it: callers fall back to
    what ships with the package.
    """
    env = os.environ.get(_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_dir() else None
    repo_root = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), repo_root):
        candidate = (base / ".." / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None

"""Where sleeptrack finds the optional real data, and the one train / test split everyone uses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

__all__ = ["Split", "data_split", "shared_data_dir"]

_ENV = "SLEEPTRACK_SHARED_DATA"

Split = Literal["train", "test"]

#: Share of every real-data collection (clips, hypnograms) held out for testing.
TEST_FRACTION = 0.2


def shared_data_dir() -> Path | None:
    """The folder of real recordings and hypnograms (``../shared/data``), or ``None`` if absent.

    Looked up in ``$SLEEPTRACK_SHARED_DATA`` (an empty value means "none"), then ``../shared/data``
    next to the current directory and next to the source checkout (or one level further up). Product
    code must work without it: callers fall back to what ships with the package.
    """
    env = os.environ.get(_ENV)
    if env is not None:
        path = Path(env).expanduser()
        return path if env and path.is_dir() else None
    repo_root = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), repo_root):
        # ``../shared`` beside the checkout; one level further up for git worktrees kept in a sub-folder.
        for up in (base.parent, base.parent.parent):
            candidate = (up / "shared" / "data").resolve()
            if candidate.is_dir():
                return candidate
    return None


def data_split(key: str, test_fraction: float = TEST_FRACTION) -> Split:
    """Deterministic train / test assignment of one real item (a clip, a hypnogram), by a hash of ``key``.

    ``key`` is the item's path relative to the shared data folder, e.g.
    ``"snoring_clips/snoring/1_10.flac"``. The same key always lands in the same split, on every
    machine, so a model trained on the ``train`` side is never tested on what it saw.
    """
    digest = hashlib.sha256(key.replace(os.sep, "/").encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2.0**64
    return "test" if bucket < test_fraction else "train"

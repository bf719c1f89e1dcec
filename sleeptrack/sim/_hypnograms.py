"""The real whole-night hypnograms of ``../shared/data/hypnograms``: ids, reading, the main sleep period.

A hypnogram's id is its path relative to the data folder (``hypnograms/mass/01-03-0001 PSG.json``);
:func:`sleeptrack._data.data_split` of that id decides its train / test side.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from sleeptrack._data import data_split

from ._config import SimulationError

__all__ = [
    "MIN_SLEEP_PERIOD_EPOCHS",
    "eligible_hypnogram_ids",
    "hypnogram_ids",
    "main_sleep_period",
    "read_hypnogram",
    "resolve_hypnogram_id",
]

Stages = npt.NDArray[np.int8]

_FOLDER: Final = "hypnograms"
#: AASM / R&K codes of the files (0 W, 1 N1, 2 N2, 3 N3, 4 REM; R&K stage 4 files use 3 already)
#: to our 4 stages: wake 0, light 1 (N1 + N2), deep 2 (N3), REM 3.
_TO_FOUR: Final = np.array([0, 1, 1, 2, 3], dtype=np.int8)
_LABELS: Final = {"W": 0, "WAKE": 0, "N1": 1, "N2": 2, "N3": 3, "N4": 3, "R": 4, "REM": 4}
#: Wake (or unscored) longer than this splits a recording into separate sleep bouts.
_SPLIT_GAP_EPOCHS: Final = 120
#: Persistent sleep: this many consecutive sleep epochs.
_PERSISTENT_EPOCHS: Final = 10
#: A night must hold at least 3 h of sleep period to drive a simulation (naps are left out).
MIN_SLEEP_PERIOD_EPOCHS: Final = 360


@lru_cache(maxsize=8)
def hypnogram_ids(data_dir: Path) -> tuple[str, ...]:
    """Every real hypnogram id under ``data_dir/hypnograms`` (sorted; empty if none)."""
    root = data_dir / _FOLDER
    if not root.is_dir():
        return ()
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".txt"}]
    return tuple(sorted(p.relative_to(data_dir).as_posix() for p in files))


def _parse_text(text: str, hid: str) -> list[int]:
    values: list[int] = []
    for raw in text.splitlines():
        token = raw.split("#", 1)[0].strip().upper()
        if not token:
            continue
        if token.lstrip("-").isdigit():
            values.append(int(token))
        elif token in _LABELS:
            values.append(_LABELS[token])
        else:
            values.append(-1)
    if not values:
        raise SimulationError(f"hypnogram {hid} holds no epochs")
    return values


@lru_cache(maxsize=512)
def _read_cached(data_dir: Path, hid: str) -> bytes:
    path = data_dir / hid
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else _parse_text(text, hid)
    if not isinstance(raw, list) or not all(isinstance(v, int) for v in raw):
        raise SimulationError(f"hypnogram {hid} is not a list of integer stage codes")
    codes = np.asarray(raw, dtype=np.int64)
    four = np.full(codes.shape, -1, dtype=np.int8)
    valid = (codes >= 0) & (codes <= 4)
    four[valid] = _TO_FOUR[codes[valid]]
    return four.tobytes()


def read_hypnogram(data_dir: Path, hid: str) -> Stages:
    """The 4-stage codes of one real hypnogram (-1 where unscored)."""
    return np.frombuffer(_read_cached(data_dir, hid), dtype=np.int8).copy()


def main_sleep_period(stages: Stages) -> Stages | None:
    """The main sleep period: from persistent sleep onset to the last sleep epoch, unscored filled.

    Recordings that keep hours of wake around the night (Sleep-EDF) or a nap are cut into sleep bouts
    at wake gaps longer than an hour; the bout with most sleep is the night. It starts at persistent
    sleep (the first of 10 consecutive sleep epochs, 5 min): dozing off and waking again before that
    belongs to the sleep latency, which the simulator draws itself. Unscored epochs inside take the
    previous epoch's stage. ``None`` if the recording holds no sleep.
    """
    sleep = np.flatnonzero(stages > 0)
    if sleep.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(sleep) > _SPLIT_GAP_EPOCHS)
    starts = np.concatenate(([0], breaks + 1))
    stops = np.concatenate((breaks, [sleep.size - 1]))
    best = int(np.argmax(stops - starts))
    first, last = int(sleep[starts[best]]), int(sleep[stops[best]])
    asleep = (stages[first : last + 1] > 0).astype(np.int64)
    if asleep.size >= _PERSISTENT_EPOCHS:
        window = np.convolve(asleep, np.ones(_PERSISTENT_EPOCHS, dtype=np.int64), mode="valid")
        persistent = np.flatnonzero(window == _PERSISTENT_EPOCHS)
        if persistent.size:
            first += int(persistent[0])
    period = stages[first : last + 1].copy()
    for i in np.flatnonzero(period < 0):
        period[i] = period[i - 1]  # the first epoch is sleep, so i > 0
    return period


@lru_cache(maxsize=16)
def eligible_hypnogram_ids(data_dir: Path, split: str) -> tuple[str, ...]:
    """Ids usable for ``split`` ("train", "test" or "any") whose sleep period is at least 3 h."""
    out = []
    for hid in hypnogram_ids(data_dir):
        if split != "any" and data_split(hid) != split:
            continue
        period = main_sleep_period(read_hypnogram(data_dir, hid))
        if period is not None and period.size >= MIN_SLEEP_PERIOD_EPOCHS:
            out.append(hid)
    return tuple(out)


def resolve_hypnogram_id(data_dir: Path, text: str) -> str:
    """The id named by ``text``: a full id, or one relative to ``hypnograms/``."""
    ids = hypnogram_ids(data_dir)
    candidate = text.strip().replace("\\", "/")
    for option in (candidate, f"{_FOLDER}/{candidate}"):
        if option in ids:
            return option
    close = [i for i in ids if candidate.lower() in i.lower()][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else " (ids are paths like hypnograms/mass/…)"
    raise SimulationError(f"unknown hypnogram {text!r}{hint}")

"""The night's hypnogram: a real one (trimmed, time-warped, jittered, sometimes spliced) or a model one.

Real hypnograms keep whatever wake surrounded the night in the lab (Sleep-EDF keeps up to 30 min,
DOD-O hours); the simulator keeps only the main sleep period and draws its own sleep latency and final
wake. The period is then warped in time to the requested length: every run of two or more epochs is
stretched by the night's factor times a per-run log-normal jitter (run boundaries move), brief
one-epoch runs stay brief. Nights longer than the source get cycles of a second night appended; about
a third of nights splice the second half of another night (same split) at the end of a REM period.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from sleeptrack._data import data_split

from ._config import NightConfig, SimulationError
from ._hypnogram_model import MODEL_NAME, packaged_model
from ._hypnograms import eligible_hypnogram_ids, main_sleep_period, read_hypnogram, resolve_hypnogram_id

__all__ = ["Architecture", "build_architecture"]

Stages = npt.NDArray[np.int8]

#: Sleep latency: log-normal, median 12 min, 10-90 % about 5-26 min (engineering choice within the
#: 10-20 min typical of healthy adults, Ohayon et al. 2004), 1 to 60 min.
_LATENCY_MEDIAN_EPOCHS: Final = 24.0
_LATENCY_SIGMA: Final = 0.6
#: Final wake before the recording stops: log-normal, median 4 min, 0.5 to 30 min (engineering choice).
_FINAL_MEDIAN_EPOCHS: Final = 8.0
_FINAL_SIGMA: Final = 0.8
#: Time-warp bounds: the source night is squeezed at most to 75 % or stretched to 130 %.
_MIN_WARP: Final = 0.75
_MAX_WARP: Final = 1.30
#: Log-normal jitter of each run's length (moves run boundaries).
_RUN_JITTER: Final = 0.2
_SPLICE_PROBABILITY: Final = 0.3


@dataclass(frozen=True)
class Architecture:
    """The stages of the whole recording and where they came from."""

    stages: Stages
    kind: Literal["real", "model"]
    sources: tuple[str, ...]
    sleep_latency_epochs: int
    final_wake_epochs: int
    warp_factor: float
    spliced: bool


def _lognormal_epochs(rng: np.random.Generator, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(np.clip(round(median * np.exp(rng.normal(0.0, sigma))), lo, hi))


def _rem_ends(period: Stages, min_rem: int = 4) -> npt.NDArray[np.intp]:
    """Indices where a REM run of at least ``min_rem`` epochs ends (cycle boundaries)."""
    edges = np.flatnonzero(np.diff(period)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [period.size]))
    keep = (period[starts] == 3) & (stops - starts >= min_rem) & (stops < period.size)
    return np.asarray(stops[keep], dtype=np.intp)


def _warp(period: Stages, factor: float, rng: np.random.Generator) -> Stages:
    edges = np.flatnonzero(np.diff(period)) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [period.size])))
    scaled = lengths * factor * np.exp(rng.normal(0.0, _RUN_JITTER, lengths.size))
    new = np.maximum(1, np.floor(scaled + rng.random(lengths.size))).astype(np.int64)
    new[lengths == 1] = 1
    return np.repeat(period[starts], new).astype(np.int8)


def _fit(period: Stages, target: int, rng: np.random.Generator) -> Stages:
    """Crop the end, or lengthen random sleep runs, so the period is exactly ``target`` epochs."""
    if period.size >= target:
        return period[:target].copy()
    edges = np.flatnonzero(np.diff(period)) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [period.size]))).astype(np.int64)
    weights = np.where(period[starts] > 0, lengths, 0).astype(np.float64)
    lengths += rng.multinomial(target - period.size, weights / weights.sum())
    return np.repeat(period[starts], lengths).astype(np.int8)


class _Source:
    def __init__(self, data_dir: Path, cfg: NightConfig, rng: np.random.Generator) -> None:
        self.data_dir = data_dir
        self.rng = rng
        self.pinned: str | None = None
        if cfg.hypnogram_id is not None:
            hid = resolve_hypnogram_id(data_dir, cfg.hypnogram_id)
            side = data_split(hid)
            if cfg.split != "any" and side != cfg.split:
                raise SimulationError(
                    f"hypnogram {hid} is on the {side} side of the data split, not {cfg.split}; "
                    f"use --split {side} or --split any"
                )
            if main_sleep_period(read_hypnogram(data_dir, hid)) is None:
                raise SimulationError(f"hypnogram {hid} holds no sleep")
            self.pinned = hid
        self.ids = eligible_hypnogram_ids(data_dir, cfg.split)
        if self.pinned is None and not self.ids:
            raise SimulationError(f"no real hypnograms on the {cfg.split} side under {data_dir}")

    def draw(self, exclude: str | None = None) -> tuple[str, Stages]:
        if self.pinned is not None:
            hid = self.pinned
        else:
            pool = [i for i in self.ids if i != exclude] or list(self.ids)
            hid = pool[int(self.rng.integers(len(pool)))]
        period = main_sleep_period(read_hypnogram(self.data_dir, hid))
        assert period is not None  # eligible ids all hold sleep
        return hid, period


def _real_period(source: _Source, target: int, rng: np.random.Generator) -> tuple[Stages, list[str], bool]:
    hid, period = source.draw()
    sources = [hid]
    spliced = False
    if source.pinned is None and len(source.ids) > 1 and rng.random() < _SPLICE_PROBABILITY:
        other_id, other = source.draw(exclude=hid)
        cuts = _rem_ends(period)
        cuts = cuts[(cuts > 0.25 * period.size) & (cuts < 0.7 * period.size)]
        other_cuts = _rem_ends(other)
        if cuts.size and other_cuts.size:
            cut = int(cuts[rng.integers(cuts.size)])
            other_cut = int(other_cuts[np.argmin(np.abs(other_cuts - cut))])
            period = np.concatenate((period[:cut], other[other_cut:]))
            sources.append(other_id)
            spliced = True
    while period.size * _MAX_WARP < target:
        more_id, more = source.draw(exclude=sources[-1])
        cuts = _rem_ends(more)
        cuts = cuts[cuts >= 180]  # skip the first cycle (about 90 min): the sleeper is already asleep
        start = int(cuts[0]) if cuts.size else more.size // 3
        period = np.concatenate((period, more[start:]))
        sources.append(more_id)
        spliced = True
    return period, sources, spliced


def build_architecture(cfg: NightConfig, data_dir: Path | None, rng: np.random.Generator) -> Architecture:
    """Draw the stages of the whole night (0 wake, 1 light, 2 deep, 3 REM)."""
    n = cfg.n_epochs
    latency = _lognormal_epochs(rng, _LATENCY_MEDIAN_EPOCHS, _LATENCY_SIGMA, 2, 120)
    final = _lognormal_epochs(rng, _FINAL_MEDIAN_EPOCHS, _FINAL_SIGMA, 1, 60)
    if latency + final > 0.4 * n:
        shrink = 0.4 * n / (latency + final)
        latency, final = int(latency * shrink), int(final * shrink)
    target = n - latency - final
    use_model = cfg.hypnogram_id == "model" or data_dir is None
    if cfg.hypnogram_id is not None and cfg.hypnogram_id != "model" and data_dir is None:
        raise SimulationError(
            f"hypnogram {cfg.hypnogram_id!r} needs the real data folder (../shared/data or "
            "$SLEEPTRACK_SHARED_DATA), which is not available; use hypnogram 'model'"
        )
    if use_model:
        period = packaged_model().sample(target, rng)
        factor = 1.0
        sources: list[str] = [f"model:{MODEL_NAME}"]
        spliced = False
    else:
        assert data_dir is not None
        source = _Source(data_dir, cfg, rng)
        raw, sources, spliced = _real_period(source, target, rng)
        factor = float(np.clip(target / raw.size, _MIN_WARP, _MAX_WARP) * np.exp(rng.normal(0.0, 0.04)))
        period = _fit(_warp(raw, factor, rng), target, rng)
    stages = np.concatenate(
        (np.zeros(latency, np.int8), period, np.zeros(final, np.int8)),
    ).astype(np.int8)
    return Architecture(
        stages=stages,
        kind="model" if use_model else "real",
        sources=tuple(sources),
        sleep_latency_epochs=latency,
        final_wake_epochs=final,
        warp_factor=round(factor, 4),
        spliced=spliced,
    )

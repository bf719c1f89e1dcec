"""A time-inhomogeneous semi-Markov model of the sleep period, fitted to the real hypnograms.

It drives nights when ``../shared/data`` is absent (or when asked with ``hypnogram_id="model"``). The
packaged file ``data/hypnogram_model_v1.json`` is rebuilt by ``sleeptrack simulate --fit-hypnogram-model``
from the **train** side of the real hypnograms only, so test-side hypnograms never leak into it.

The model: the sleep period starts in light sleep; each run's stage-to-stage transition probabilities
and its run-length distribution (21 quantiles, in epochs) depend on the stage and on the hour since
sleep onset (7 buckets: 0-1 h, ..., 5-6 h, 6 h and later).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ._config import SimulationError
from ._hypnograms import eligible_hypnogram_ids, main_sleep_period, read_hypnogram

__all__ = ["MODEL_NAME", "HypnogramModel", "fit_hypnogram_model", "packaged_model", "packaged_model_path"]

MODEL_NAME: Final = "hypnogram_model_v1"
_FORMAT_VERSION: Final = 1
BUCKET_EPOCHS: Final = 120
N_BUCKETS: Final = 7
N_STAGES: Final = 4
QUANTILES: Final = np.linspace(0.0, 1.0, 21)
#: Below this many runs in a (bucket, stage) cell its run lengths are pooled with all buckets.
_MIN_RUNS: Final = 40
#: Pseudo-count weight of the all-bucket transition row when a bucket's row is estimated.
_PRIOR_WEIGHT: Final = 10.0


def _runs(period: npt.NDArray[np.int8]) -> list[tuple[int, int, int]]:
    edges = np.flatnonzero(np.diff(period)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [period.size]))
    return [(int(period[a]), int(a), int(b - a)) for a, b in zip(starts, stops, strict=True)]


def _bucket(epoch: int) -> int:
    return min(epoch // BUCKET_EPOCHS, N_BUCKETS - 1)


@dataclass(frozen=True, eq=False)
class HypnogramModel:
    """Semi-Markov sleep-period model.

    Attributes
    ----------
    transitions
        ``(7, 4, 4)``: probability that a run of stage ``s`` ending in hour-bucket ``b`` is followed
        by stage ``t`` (zero on the diagonal).
    run_quantiles
        ``(7, 4, 21)``: run-length quantiles in epochs (0 %, 5 %, ... 100 %) of stage ``s`` runs
        starting in bucket ``b``.
    fitted_on
        Which hypnograms it was fitted on (split, number of nights per collection).
    """

    transitions: npt.NDArray[np.float64]
    run_quantiles: npt.NDArray[np.float64]
    fitted_on: dict[str, Any]

    def sample(self, n_epochs: int, rng: np.random.Generator) -> npt.NDArray[np.int8]:
        """A sleep period of exactly ``n_epochs`` epochs (4-stage codes), starting in light sleep.

        Each night also draws how long its deep, wake and REM runs are relative to the average night
        (log-normal factors), so model nights differ as real ones do.
        """
        if n_epochs <= 0:
            return np.zeros(0, dtype=np.int8)
        scale = np.exp(rng.normal(0.0, [0.4, 0.1, 0.3, 0.15]))
        out = np.empty(n_epochs, dtype=np.int8)
        t, stage = 0, 1
        while t < n_epochs:
            b = _bucket(t)
            q = self.run_quantiles[b, stage]
            length = float(np.interp(rng.random(), QUANTILES, q)) * scale[stage]
            n = max(1, int(length + rng.random()))
            out[t : t + n] = stage
            t += n
            p = self.transitions[_bucket(t), stage]
            stage = int(rng.choice(N_STAGES, p=p))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": _FORMAT_VERSION,
            "name": MODEL_NAME,
            "description": "semi-Markov sleep-period model: transitions and run-length quantiles by "
            "stage (0 wake, 1 light, 2 deep, 3 REM) and hour since sleep onset",
            "bucket_epochs": BUCKET_EPOCHS,
            "quantiles": QUANTILES.round(4).tolist(),
            "fitted_on": self.fitted_on,
            "transitions": self.transitions.round(5).tolist(),
            "run_quantiles": self.run_quantiles.round(2).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HypnogramModel:
        if data.get("format_version") != _FORMAT_VERSION or data.get("bucket_epochs") != BUCKET_EPOCHS:
            raise SimulationError("unsupported hypnogram model file; rebuild it with --fit-hypnogram-model")
        trans = np.asarray(data["transitions"], dtype=np.float64)
        quant = np.asarray(data["run_quantiles"], dtype=np.float64)
        if trans.shape != (N_BUCKETS, N_STAGES, N_STAGES) or quant.shape != (
            N_BUCKETS,
            N_STAGES,
            QUANTILES.size,
        ):
            raise SimulationError("hypnogram model file has the wrong shape")
        trans = trans / trans.sum(axis=2, keepdims=True)
        return cls(trans, quant, dict(data.get("fitted_on", {})))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> HypnogramModel:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def fit_hypnogram_model(data_dir: Path, split: str = "train") -> HypnogramModel:
    """Fit the model to the main sleep periods of the real hypnograms of ``split``."""
    ids = eligible_hypnogram_ids(data_dir, split)
    if not ids:
        raise SimulationError(f"no real hypnograms of split {split!r} under {data_dir}")
    counts = np.zeros((N_BUCKETS, N_STAGES, N_STAGES))
    lengths: list[list[list[int]]] = [[[] for _ in range(N_STAGES)] for _ in range(N_BUCKETS)]
    for hid in ids:
        period = main_sleep_period(read_hypnogram(data_dir, hid))
        if period is None:
            continue
        runs = _runs(period)
        for k, (stage, start, length) in enumerate(runs):
            lengths[_bucket(start)][stage].append(length)
            if k + 1 < len(runs):
                counts[_bucket(start + length), stage, runs[k + 1][0]] += 1
    pooled = counts.sum(axis=0)
    pooled_p = (pooled + 0.5) / (pooled + 0.5).sum(axis=1, keepdims=True)
    trans = counts + _PRIOR_WEIGHT * pooled_p[None]
    for s in range(N_STAGES):
        trans[:, s, s] = 0.0
    trans /= trans.sum(axis=2, keepdims=True)
    quant = np.zeros((N_BUCKETS, N_STAGES, QUANTILES.size))
    for s in range(N_STAGES):
        every = [n for b in range(N_BUCKETS) for n in lengths[b][s]]
        for b in range(N_BUCKETS):
            own = lengths[b][s]
            sample = own if len(own) >= _MIN_RUNS else own + every
            quant[b, s] = np.quantile(np.asarray(sample or [1], dtype=np.float64), QUANTILES)
    collections = Counter(hid.split("/")[1] for hid in ids)
    fitted_on = {"split": split, "n_nights": len(ids), "collections": dict(sorted(collections.items()))}
    return HypnogramModel(trans, quant, fitted_on)


def packaged_model_path() -> Path:
    """Where the packaged model file lives (inside the installed package)."""
    return Path(str(resources.files("sleeptrack.sim").joinpath("data").joinpath(f"{MODEL_NAME}.json")))


@lru_cache(maxsize=1)
def packaged_model() -> HypnogramModel:
    """The model that ships with the package."""
    path = packaged_model_path()
    if not path.is_file():
        raise SimulationError(
            f"the packaged hypnogram model {path} is missing; rebuild it with "
            "`sleeptrack simulate --fit-hypnogram-model`"
        )
    return HypnogramModel.load(path)

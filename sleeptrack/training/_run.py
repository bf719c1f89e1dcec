"""``sleeptrack train``: rebuild the default model, or make one from your own scored nights."""

from __future__ import annotations

import importlib.metadata
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sleeptrack.analysis._engine import DEFAULT_MODEL, MODELS_DIR, Engine, load_engine
from sleeptrack.analysis._train import TrainingNight, fit_engine

from ._clips import clip_set, load_clips
from ._nights import find_night_pairs, recording_night, simulated_nights

__all__ = ["TRAIN_SEED_BASE", "VALIDATION_SEED_BASE", "TrainConfig", "train_model"]

#: Seeds of the simulated training and validation nights (train split of the real data). Benchmarks and
#: tests evaluate on test-split nights with other seeds.
TRAIN_SEED_BASE = 1000
VALIDATION_SEED_BASE = 2000

Say = Callable[[str], None]


@dataclass
class TrainConfig:
    """What ``sleeptrack train`` does; the defaults rebuild the shipped model."""

    simulated_nights: int = 48
    validation_nights: int = 6
    clip_augmentations: int = 3
    seed: int = 0
    version: str = DEFAULT_MODEL
    out_dir: Path = MODELS_DIR
    user_nights: Path | None = None
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def training_seeds(self) -> list[int]:
        """Seeds of the simulated training nights (train split of the real data)."""
        return [TRAIN_SEED_BASE + self.seed * 10_000 + i for i in range(self.simulated_nights)]

    def validation_seeds(self) -> list[int]:
        """Seeds of the simulated validation nights, disjoint from the training ones."""
        return [VALIDATION_SEED_BASE + self.seed * 10_000 + i for i in range(self.validation_nights)]

    def command_line(self) -> str:
        """The ``sleeptrack train`` command that reproduces this configuration."""
        default = TrainConfig()
        parts = ["sleeptrack train"]
        if self.user_nights is not None:
            parts.append(f"--nights {self.user_nights}")
        for option, value, base in (
            ("--simulated", self.simulated_nights, default.simulated_nights),
            ("--validation", self.validation_nights, default.validation_nights),
            ("--seed", self.seed, default.seed),
            ("--version", self.version, default.version),
        ):
            if value != base:
                parts.append(f"{option} {value}")
        return " ".join(parts)


def _library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("numpy", "scipy", "scikit-learn"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _summary(nights: list[TrainingNight]) -> dict[str, Any]:
    stages = np.concatenate([n.stages for n in nights]) if nights else np.zeros(0, np.int8)
    counts = np.bincount(stages[stages >= 0].astype(np.intp), minlength=4)
    return {
        "nights": len(nights),
        "epochs": int(stages.size),
        "hours": round(stages.size * 30 / 3600, 1),
        "stage_share": {
            k: round(float(v) / max(1, counts.sum()), 3)
            for k, v in zip(("wake", "light", "deep", "rem"), counts, strict=True)
        },
    }


def train_model(
    config: TrainConfig, say: Say | None = None, on_night: Callable[[str], None] | None = None
) -> tuple[Engine, Path, dict[str, Any]]:
    """Train, save ``<out_dir>/<version>.npz`` + ``.json``, and return the engine, its path and metadata."""
    log = say or (lambda _m: None)
    started = time.perf_counter()
    train: list[TrainingNight] = []
    validation: list[TrainingNight] = []
    sources: dict[str, Any] = {}

    if config.user_nights is not None:
        pairs = find_night_pairs(config.user_nights)
        if not pairs:
            raise ValueError(f"no recording + .json pairs in {config.user_nights}")
        log(f"{len(pairs)} scored recordings in {config.user_nights}")
        own = []
        for pair in pairs:
            own.append(recording_night(pair))
            if on_night:
                on_night(pair.name)
        n_val = len(own) // 5 if len(own) >= 5 else 0
        validation += own[:n_val]
        train += own[n_val:]
        sources["user_nights"] = {"folder": str(config.user_nights), "names": [p.name for p in pairs]}

    def done(night: TrainingNight) -> None:
        if on_night:
            on_night(night.name)

    if config.simulated_nights:
        seeds = config.training_seeds()
        log(f"simulating {len(seeds)} training nights (train split)")
        train += simulated_nights(seeds, "train", config.workers, done)
        val_seeds = config.validation_seeds()
        if val_seeds:
            log(f"simulating {len(val_seeds)} validation nights (train split)")
            validation += simulated_nights(val_seeds, "train", config.workers, done)
        sources["simulated"] = {"split": "train", "training_seeds": seeds, "validation_seeds": val_seeds}

    clips = None
    snoring_from: Engine | None = None
    if config.simulated_nights:
        clip_list = load_clips("train")
        clips = clip_set(clip_list, config.clip_augmentations, seed=config.seed)
        sources["snoring_clips"] = {
            "split": "train",
            "clips": len(clip_list),
            "augmented_copies": config.clip_augmentations,
        }
    else:
        # Without simulated nights there are no snore-window labels: keep the default model's snoring.
        snoring_from = load_engine()
        sources["snoring_networks_from"] = snoring_from.version
    log("fitting networks")
    engine, metrics = fit_engine(train, validation, clips, config.version, config.seed, log, snoring_from)
    metadata = {
        "description": "sleeptrack analysis engine: snore-window, snoring and staging networks with HMM decoding",
        "training": {
            "command": config.command_line(),
            "seed": config.seed,
            "sources": sources,
            "train": _summary(train),
            "validation": _summary(validation),
            "seconds": round(time.perf_counter() - started),
            "python": platform.python_version(),
            # Two trainings with the same seeds need not agree across these (tree fitting changes between
            # scikit-learn releases): recorded so that a rebuilt model can be compared with the shipped one.
            "libraries": _library_versions(),
        },
        "validation_metrics": metrics,
        **config.extra,
    }
    path = engine.save(config.out_dir, metadata)
    return engine, path, metadata

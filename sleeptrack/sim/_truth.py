"""The ground truth of a simulated night: :class:`NightTruth` and the tables it holds."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis import (
    EPOCH_SECONDS,
    SAMPLE_RATE,
    Hypnogram,
    format_time,
    parse_datetime,
    parse_timezone,
)

from ._profile import NightProfile

__all__ = ["FORMAT_VERSION", "BreathTable", "EpochLatent", "NightTruth", "SimEvent", "SnoreTable"]

FORMAT_VERSION: Final = 1
Floats = npt.NDArray[np.float64]
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class SimEvent:
    """A sound event of the night other than a breath or a single snore.

    ``type`` is one of ``movement``, ``sigh``, ``talk``, ``phone``, ``cough``, ``room``, ``car``,
    ``thunder``, ``snore_bout``, ``noise_change``; ``level_db`` is its RMS in dBFS; ``attrs`` holds
    the rest (``clip`` = id of the real recording used, ``sound`` = name of the synthetic sound ...).
    """

    type: str
    start_s: float
    duration_s: float
    level_db: float
    attrs: Mapping[str, Scalar]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "level_db": self.level_db,
            **self.attrs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimEvent:
        core = {"type", "start_s", "duration_s", "level_db"}
        return cls(
            type=str(data["type"]),
            start_s=float(data["start_s"]),
            duration_s=float(data["duration_s"]),
            level_db=float(data["level_db"]),
            attrs={k: v for k, v in data.items() if k not in core},
        )

    @property
    def stop_s(self) -> float:
        return self.start_s + self.duration_s


class _Columns:
    """A table of equally long float columns, rounded so that a JSON round trip is exact."""

    DIGITS: ClassVar[dict[str, int]] = {}

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):  # type: ignore[arg-type]
            arr = np.round(np.asarray(getattr(self, f.name), dtype=np.float64), self.DIGITS.get(f.name, 3))
            if arr.ndim != 1 or (n is not None and arr.size != n):
                raise ValueError(f"column {f.name} must be flat and as long as the others")
            n = arr.size
            arr.setflags(write=False)
            object.__setattr__(self, f.name, arr)

    def __len__(self) -> int:
        first = fields(self)[0].name  # type: ignore[arg-type]
        return int(getattr(self, first).size)

    def to_dict(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}  # type: ignore[arg-type]

    def equals(self, other: _Columns) -> bool:
        return type(self) is type(other) and all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)  # type: ignore[arg-type]
        )


@dataclass(frozen=True, eq=False)
class BreathTable(_Columns):
    """Every breath: inhalation onset and length, exhalation onset and length (s), exhalation level."""

    onset_s: Floats
    inhale_s: Floats
    exhale_onset_s: Floats
    exhale_s: Floats
    level_db: Floats
    sigh: Floats

    DIGITS: ClassVar[dict[str, int]] = {"level_db": 2, "sigh": 0}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreathTable:
        return cls(**{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls)})


@dataclass(frozen=True, eq=False)
class SnoreTable(_Columns):
    """Every snore: onset and length (s), level (dBFS), index of the breath it belongs to."""

    onset_s: Floats
    duration_s: Floats
    level_db: Floats
    breath: Floats

    DIGITS: ClassVar[dict[str, int]] = {"level_db": 2, "breath": 0}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnoreTable:
        return cls(**{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls)})


@dataclass(frozen=True, eq=False)
class EpochLatent(_Columns):
    """The true latent parameters of every epoch (one value per epoch).

    ``breath_rate_bpm``, ``breath_interval_cv`` and ``breath_level_db`` are what the breaths of the
    epoch were drawn from (targets, before breath-to-breath randomness); ``breath_count`` and
    ``snore_count`` count breaths and snores starting in the epoch; ``noise_level_db`` is the RMS of the
    background noise bed; ``snr_db`` = level - noise; ``movement_s`` and ``activity_s`` are seconds of
    body movement and of wake activity (talking, phone, coughing) in the epoch.
    """

    breath_rate_bpm: Floats
    breath_interval_cv: Floats
    breath_level_db: Floats
    breath_count: Floats
    snore_count: Floats
    noise_level_db: Floats
    snr_db: Floats
    movement_s: Floats
    activity_s: Floats

    DIGITS: ClassVar[dict[str, int]] = {
        "breath_interval_cv": 4,
        "breath_level_db": 2,
        "breath_count": 0,
        "snore_count": 0,
        "noise_level_db": 2,
        "snr_db": 2,
    }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpochLatent:
        return cls(**{f.name: np.asarray(data[f.name], dtype=np.float64) for f in fields(cls)})

    def as_dict(self) -> dict[str, Floats]:
        """Name → per-epoch array."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class NightTruth:
    """Everything that is true about a simulated night.

    Attributes
    ----------
    hypnogram
        Stages (0 wake, 1 light, 2 deep, 3 REM) and snoring (0 / 1) per 30-s epoch, start time, zone.
    seed, hours, split
        How the night was made (``config`` holds every option).
    events
        Movements, sighs, talking, phone handling, coughs, room sounds, cars, thunder, snoring bouts
        and noise changes, sorted by start.
    breaths, snores
        Every breath and every snore.
    profile
        The sleeper and the room.
    latent
        The per-epoch latent parameters.
    source
        The real hypnograms and recordings the night was built from, and their split.
    """

    hypnogram: Hypnogram
    seed: int
    hours: float
    split: str
    events: tuple[SimEvent, ...]
    breaths: BreathTable
    snores: SnoreTable
    profile: NightProfile
    latent: EpochLatent
    source: Mapping[str, Any]
    config: Mapping[str, Any]
    generator: str = "sleeptrack.sim"

    @property
    def n_epochs(self) -> int:
        return self.hypnogram.n_epochs

    @property
    def start_time(self) -> datetime:
        return self.hypnogram.start_time

    @property
    def timezone(self) -> str:
        return self.hypnogram.timezone

    @property
    def sleep_stages(self) -> npt.NDArray[np.int8]:
        return self.hypnogram.stages

    @property
    def snoring_stages(self) -> npt.NDArray[np.int8]:
        assert self.hypnogram.snoring is not None
        return self.hypnogram.snoring

    @property
    def n_samples(self) -> int:
        return self.n_epochs * EPOCH_SECONDS * SAMPLE_RATE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; :meth:`from_dict` reads it back exactly."""
        tz = parse_timezone(self.timezone)
        return {
            "format_version": FORMAT_VERSION,
            "generator": self.generator,
            "start_time": format_time(self.start_time, tz),
            "timezone": self.timezone,
            "seed": self.seed,
            "hours": self.hours,
            "split": self.split,
            "epoch_seconds": EPOCH_SECONDS,
            "sample_rate": SAMPLE_RATE,
            "n_epochs": self.n_epochs,
            "sleep_stages": self.sleep_stages.tolist(),
            "snoring_stages": self.snoring_stages.tolist(),
            "profile": self.profile.to_dict(),
            "source": dict(self.source),
            "config": dict(self.config),
            "latent": self.latent.to_dict(),
            "events": [e.to_dict() for e in self.events],
            "breaths": self.breaths.to_dict(),
            "snores": self.snores.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NightTruth:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported truth format_version {version!r} (this version reads 1)")
        timezone = str(data["timezone"])
        start = parse_datetime(str(data["start_time"]), parse_timezone(timezone))
        hypnogram = Hypnogram(
            np.asarray(data["sleep_stages"], dtype=np.int8),
            start,
            timezone,
            snoring=np.asarray(data["snoring_stages"], dtype=np.int8),
        )
        return cls(
            hypnogram=hypnogram,
            seed=int(data["seed"]),
            hours=float(data["hours"]),
            split=str(data["split"]),
            events=tuple(SimEvent.from_dict(e) for e in data["events"]),
            breaths=BreathTable.from_dict(data["breaths"]),
            snores=SnoreTable.from_dict(data["snores"]),
            profile=NightProfile.from_dict(data["profile"]),
            latent=EpochLatent.from_dict(data["latent"]),
            source=dict(data["source"]),
            config=dict(data["config"]),
            generator=str(data.get("generator", "sleeptrack.sim")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NightTruth:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the truth JSON (atomically: a reader never sees half a file)."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.to_json())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NightTruth:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NightTruth):
            return NotImplemented
        return (
            self.hypnogram == other.hypnogram
            and self.seed == other.seed
            and self.hours == other.hours
            and self.split == other.split
            and self.events == other.events
            and self.breaths.equals(other.breaths)
            and self.snores.equals(other.snores)
            and self.profile == other.profile
            and self.latent.equals(other.latent)
            and dict(self.source) == dict(other.source)
            and dict(self.config) == dict(other.config)
        )

    __hash__ = None  # type: ignore[assignment]

"""The hypnogram: one sleep stage per 30-second epoch, as a first-class object."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from ._constants import EPOCH_SECONDS, Stage, StageScheme
from ._time import format_time, parse_datetime, parse_timezone

__all__ = ["Hypnogram", "StageRun"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class StageRun:
    """A run of consecutive epochs with the same code."""

    code: int
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


def _as_codes(values: Sequence[int] | npt.ArrayLike, name: str) -> npt.NDArray[np.int8]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat list of integer codes, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer) and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name} must hold integer codes")
    return arr.astype(np.int8, copy=True)


@dataclass(frozen=True, eq=False, init=False)
class Hypnogram:
    """Sleep stages of one night in 30-second epochs.

    Epoch ``i`` covers ``[start_time + 30 s * i, start_time + 30 s * (i + 1))``.

    Parameters
    ----------
    stages
        One code per epoch: -1 error (no or unusable audio), 0 wake, 1 light, 2 deep, 3 REM
        (``StageScheme.FOUR``) or -1, 0 wake, 1 sleep (``StageScheme.TWO``).
    start_time
        Start of epoch 0; must carry a UTC offset.
    timezone
        IANA name used when the hypnogram is shown ("UTC", "Asia/Seoul").
    scheme
        Stage vocabulary.
    probabilities
        Optional ``(n_epochs, scheme.n_classes)`` per-epoch class probabilities.
    snoring
        Optional per-epoch snoring codes (-1 error, 0 none, 1 snoring).
    model_version
        Name of the model that produced it, if any.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> h = Hypnogram([0, 1, 2, 2, 3, 0], datetime(2025, 1, 15, 23, tzinfo=UTC))
    >>> h.n_epochs, h.duration.total_seconds()
    (6, 180.0)
    >>> Hypnogram.from_json(h.to_json()) == h
    True
    """

    stages: npt.NDArray[np.int8]
    start_time: datetime
    timezone: str = "UTC"
    scheme: StageScheme = StageScheme.FOUR
    probabilities: npt.NDArray[np.float32] | None = None
    snoring: npt.NDArray[np.int8] | None = None
    model_version: str | None = None

    def __init__(
        self,
        stages: npt.ArrayLike,
        start_time: datetime,
        timezone: str = "UTC",
        scheme: StageScheme = StageScheme.FOUR,
        probabilities: npt.ArrayLike | None = None,
        snoring: npt.ArrayLike | None = None,
        model_version: str | None = None,
    ) -> None:
        codes = _as_codes(stages, "stages")
        scheme = StageScheme(scheme)
        top = scheme.n_classes - 1
        if codes.size and (codes.min() < -1 or codes.max() > top):
            bad = sorted({int(v) for v in codes if v < -1 or v > top})
            raise ValueError(f"stage codes {bad} are outside -1..{top} of the {scheme.value} vocabulary")
        if start_time.tzinfo is None:
            raise ValueError("start_time must carry a UTC offset (a naive time is ambiguous)")
        parse_timezone(timezone)
        probs: npt.NDArray[np.float32] | None = None
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=np.float32)
            if probs.shape != (codes.size, scheme.n_classes):
                raise ValueError(f"probabilities must have shape ({codes.size}, {scheme.n_classes}), got {probs.shape}")
        snore: npt.NDArray[np.int8] | None = None
        if snoring is not None:
            snore = _as_codes(snoring, "snoring")
            if snore.size != codes.size:
                raise ValueError(f"snoring has {snore.size} epochs but stages have {codes.size}")
            if snore.size and (snore.min() < -1 or snore.max() > 1):
                raise ValueError("snoring codes must be -1, 0 or 1")
        codes.setflags(write=False)
        for name, value in (
            ("stages", codes),
            ("start_time", start_time),
            ("timezone", timezone),
            ("scheme", scheme),
            ("probabilities", probs),
            ("snoring", snore),
            ("model_version", model_version),
        ):
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------------------------------- shape
    @property
    def n_epochs(self) -> int:
        return int(self.stages.size)

    def __len__(self) -> int:
        return self.n_epochs

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=EPOCH_SECONDS * self.n_epochs)

    @property
    def end_time(self) -> datetime:
        """End of the last epoch."""
        return self.start_time + self.duration

    def epoch_start(self, index: int) -> datetime:
        return self.start_time + timedelta(seconds=EPOCH_SECONDS * index)

    @property
    def missing_data_ratio(self) -> float:
        """Share of ``-1`` epochs (0.0 for an empty hypnogram)."""
        if self.n_epochs == 0:
            return 0.0
        return float(np.count_nonzero(self.stages == Stage.ERROR)) / self.n_epochs

    def runs(self) -> Iterator[StageRun]:
        """Yield the runs of equal consecutive stage codes."""
        stages = self.stages
        if stages.size == 0:
            return
        edges = np.flatnonzero(np.diff(stages)) + 1
        starts = np.concatenate(([0], edges))
        stops = np.concatenate((edges, [stages.size]))
        for start, stop in zip(starts, stops, strict=True):
            yield StageRun(int(stages[start]), int(start), int(stop - start))

    # ----------------------------------------------------------------------------------- conversions
    def to_two_stage(self) -> Hypnogram:
        """Collapse light, deep and REM into sleep (1); wake stays 0 and errors stay -1."""
        if self.scheme is StageScheme.TWO:
            return self
        two = np.where(self.stages > 0, 1, self.stages).astype(np.int8)
        probs = None
        if self.probabilities is not None:
            probs = np.stack([self.probabilities[:, 0], self.probabilities[:, 1:].sum(axis=1)], axis=1)
        return Hypnogram(two, self.start_time, self.timezone, StageScheme.TWO, probs, self.snoring, self.model_version)

    def with_timezone(self, timezone: str) -> Hypnogram:
        return Hypnogram(
            self.stages,
            self.start_time,
            timezone,
            self.scheme,
            self.probabilities,
            self.snoring,
            self.model_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; :meth:`from_dict` reads it back exactly."""
        tz = parse_timezone(self.timezone)
        out: dict[str, Any] = {
            "format_version": _FORMAT_VERSION,
            "epoch_seconds": EPOCH_SECONDS,
            "start_time": format_time(self.start_time, tz),
            "timezone": self.timezone,
            "scheme": self.scheme.value,
            "stages": self.stages.tolist(),
            "snoring": None if self.snoring is None else self.snoring.tolist(),
            "probabilities": None
            if self.probabilities is None
            else np.round(self.probabilities.astype(np.float64), 4).tolist(),
            "model_version": self.model_version,
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hypnogram:
        if not isinstance(data, dict) or "stages" not in data or "start_time" not in data:
            raise ValueError("a hypnogram needs at least 'stages' and 'start_time'")
        epoch_seconds = data.get("epoch_seconds", EPOCH_SECONDS)
        if epoch_seconds != EPOCH_SECONDS:
            raise ValueError(f"only {EPOCH_SECONDS}-second epochs are supported, got {epoch_seconds}")
        timezone = str(data.get("timezone") or "UTC")
        probs = data.get("probabilities")
        snoring = data.get("snoring")
        return cls(
            stages=np.asarray(data["stages"], dtype=np.int64).astype(np.int8),
            start_time=parse_datetime(str(data["start_time"]), parse_timezone(timezone)),
            timezone=timezone,
            scheme=StageScheme(data.get("scheme", StageScheme.FOUR.value)),
            probabilities=None if probs is None else np.asarray(probs, dtype=np.float32),
            snoring=None if snoring is None else np.asarray(snoring, dtype=np.int8),
            model_version=data.get("model_version"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Hypnogram:
        return cls.from_dict(json.loads(text))

    # ---------------------------------------------------------------------------------------- equality
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hypnogram):
            return NotImplemented
        return (
            np.array_equal(self.stages, other.stages)
            and self.start_time == other.start_time
            and self.timezone == other.timezone
            and self.scheme is other.scheme
            and self.model_version == other.model_version
            and _optional_equal(self.snoring, other.snoring)
            and _optional_close(self.probabilities, other.probabilities)
        )

    __hash__ = None  # type: ignore[assignment]


def _optional_equal(a: npt.NDArray[Any] | None, b: npt.NDArray[Any] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


def _optional_close(a: npt.NDArray[Any] | None, b: npt.NDArray[Any] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-4))

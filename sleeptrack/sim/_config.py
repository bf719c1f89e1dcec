"""What a simulated night is asked to be: :class:`NightConfig`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, get_args

from sleeptrack.analysis import EPOCH_SECONDS, format_time, parse_datetime, parse_timezone

from ._rng import MAX_SEED

__all__ = [
    "DEFAULT_BEDTIME",
    "MAX_HOURS",
    "NOISE_KINDS",
    "SPLITS",
    "NightConfig",
    "NoiseKind",
    "SimulationError",
    "SplitChoice",
]

NoiseKind = Literal["fan", "traffic", "rain", "quiet", "mixed"]
SplitChoice = Literal["train", "test", "any"]
NOISE_KINDS: Final[tuple[str, ...]] = get_args(NoiseKind)
SPLITS: Final[tuple[str, ...]] = get_args(SplitChoice)

#: Default start of a night: 23:00 local time on a fixed date, so runs are reproducible.
DEFAULT_BEDTIME: Final = (2025, 1, 15, 23, 0)
#: Longest night the simulator makes (the server calls > 24 h TOO_LONG_FOR_ANALYSIS).
MAX_HOURS: Final = 24.0
_MIN_HOURS: Final = EPOCH_SECONDS / 3600.0
_SNR_RANGE: Final = (-20.0, 50.0)


class SimulationError(ValueError):
    """A night cannot be simulated as asked (bad option, unknown hypnogram, split conflict ...)."""


@dataclass(frozen=True)
class NightConfig:
    """Options of one simulated night; ``None`` means "drawn from the seed".

    Parameters
    ----------
    hours
        Length of the recording in hours (rounded to whole 30-s epochs), ``1/120`` to ``24``.
    seed
        Non-negative integer; the same seed and options give bit-identical audio and truth.
    start_time
        Start of epoch 0: an aware ``datetime`` or an ISO-8601 string (a string without offset is
        read in ``timezone``). Default: 23:00 local time on 2025-01-15.
    timezone
        IANA time zone name of the sleeper.
    split
        Which real hypnograms and clips may be used: ``"train"`` or ``"test"`` side of
        :func:`sleeptrack._data.data_split`, or ``"any"``.
    hypnogram_id
        A real hypnogram to drive the night (its path relative to the data folder, e.g.
        ``"hypnograms/mass/01-03-0001 PSG.json"``), or ``"model"`` for the packaged semi-Markov model.
    snorer
        Whether the sleeper snores.
    noise
        Background noise: ``"fan"``, ``"traffic"``, ``"rain"``, ``"quiet"`` or ``"mixed"``.
    snr_db
        Breathing signal-to-noise ratio in dB: RMS of a light-sleep exhalation over RMS of the
        background noise bed.
    """

    hours: float = 8.0
    seed: int = 0
    start_time: datetime | str | None = None
    timezone: str = "UTC"
    split: str = "any"
    hypnogram_id: str | None = None
    snorer: bool | None = None
    noise: str | None = None
    snr_db: float | None = None
    _start: datetime = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.hours, bool) or not isinstance(self.hours, int | float):
            raise SimulationError(f"hours must be a number, got {self.hours!r}")
        if not math.isfinite(self.hours) or not _MIN_HOURS <= self.hours <= MAX_HOURS:
            raise SimulationError(
                f"hours must be between {_MIN_HOURS:.4f} (one 30-s epoch) and {MAX_HOURS:g}, got {self.hours}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise SimulationError(f"seed must be an integer from 0 to 2**63-1, got {self.seed!r}")
        try:
            tz = parse_timezone(self.timezone)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
        if self.split not in SPLITS:
            raise SimulationError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.noise is not None and self.noise not in NOISE_KINDS:
            raise SimulationError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {self.noise!r}")
        if self.snr_db is not None and (
            not math.isfinite(self.snr_db) or not _SNR_RANGE[0] <= self.snr_db <= _SNR_RANGE[1]
        ):
            raise SimulationError(
                f"snr_db must be between {_SNR_RANGE[0]:g} and {_SNR_RANGE[1]:g} dB, got {self.snr_db}"
            )
        if self.hypnogram_id is not None and not self.hypnogram_id.strip():
            raise SimulationError("hypnogram_id must not be empty")
        if self.start_time is None:
            start = datetime(*DEFAULT_BEDTIME, tzinfo=tz)
        elif isinstance(self.start_time, str):
            try:
                start = parse_datetime(self.start_time, tz)
            except ValueError as exc:
                raise SimulationError(str(exc)) from exc
        elif isinstance(self.start_time, datetime):
            if self.start_time.tzinfo is None:
                raise SimulationError("start_time must carry a UTC offset (or pass an ISO string)")
            start = self.start_time
        else:
            raise SimulationError(f"start_time must be a datetime or an ISO string, got {self.start_time!r}")
        object.__setattr__(self, "_start", start.replace(microsecond=0))

    @property
    def n_epochs(self) -> int:
        """Number of 30-second epochs (at least one)."""
        return max(1, round(self.hours * 3600 / EPOCH_SECONDS))

    @property
    def start(self) -> datetime:
        """Start of epoch 0 as an aware datetime."""
        return self._start

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (what the truth file records)."""
        return {
            "hours": self.hours,
            "seed": self.seed,
            "start_time": format_time(self._start, parse_timezone(self.timezone)),
            "timezone": self.timezone,
            "split": self.split,
            "hypnogram_id": self.hypnogram_id,
            "snorer": self.snorer,
            "noise": self.noise,
            "snr_db": self.snr_db,
        }

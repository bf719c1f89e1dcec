"""Constants shared by the whole engine: epochs, stage codes and the audio contract."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "EPOCHS_PER_INFERENCE",
    "EPOCH_SECONDS",
    "SAMPLES_PER_EPOCH",
    "SAMPLE_RATE",
    "SnoringStage",
    "Stage",
    "StageScheme",
    "TwoStage",
]

#: Length of one epoch (one uploaded chunk, one hypnogram value) in seconds.
EPOCH_SECONDS: Final = 30
#: The engine works on 16 kHz mono audio; everything else is resampled on input.
SAMPLE_RATE: Final = 16_000
SAMPLES_PER_EPOCH: Final = EPOCH_SECONDS * SAMPLE_RATE
#: Real-time results are produced after every 10 epochs (5 minutes).
EPOCHS_PER_INFERENCE: Final = 10


class Stage(IntEnum):
    """4-stage sleep codes of the Data API (``sleep_stages``)."""

    ERROR = -1
    WAKE = 0
    LIGHT = 1
    DEEP = 2
    REM = 3


class TwoStage(IntEnum):
    """2-stage sleep codes (plans with basic analysis)."""

    ERROR = -1
    WAKE = 0
    SLEEP = 1


class SnoringStage(IntEnum):
    """Per-epoch snoring codes (``snoring_stages``)."""

    ERROR = -1
    NO_SNORING = 0
    SNORING = 1


class StageScheme(StrEnum):
    """Stage vocabulary of a hypnogram: 4-stage (advanced plans) or 2-stage (basic plans)."""

    FOUR = "4-stage"
    TWO = "2-stage"

    @property
    def n_classes(self) -> int:
        return 4 if self is StageScheme.FOUR else 2

    @property
    def labels(self) -> tuple[str, ...]:
        if self is StageScheme.FOUR:
            return ("wake", "light", "deep", "rem")
        return ("wake", "sleep")

"""The analysis engine: audio → mel spectrogram → per-epoch features → stages and snoring → statistics.

Pure signal processing and statistics: no web, no database.
"""

from ._constants import (
    EPOCH_SECONDS,
    EPOCHS_PER_INFERENCE,
    SAMPLE_RATE,
    SAMPLES_PER_EPOCH,
    SnoringStage,
    Stage,
    StageScheme,
    TwoStage,
)
from ._hypnogram import Hypnogram, StageRun
from ._time import InvalidTimezoneError, format_time, parse_datetime, parse_timezone

__all__ = [
    "EPOCHS_PER_INFERENCE",
    "EPOCH_SECONDS",
    "SAMPLES_PER_EPOCH",
    "SAMPLE_RATE",
    "Hypnogram",
    "InvalidTimezoneError",
    "SnoringStage",
    "Stage",
    "StageRun",
    "StageScheme",
    "TwoStage",
    "format_time",
    "parse_datetime",
    "parse_timezone",
]

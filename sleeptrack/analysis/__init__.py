"""The analysis engine: audio → mel spectrogram → per-epoch features → stages and snoring → statistics.

Pure signal processing and statistics: no web, no database.
"""

from ._average import (
    MAX_AVERAGE_PERIOD_DAYS,
    AverageReport,
    SessionSummary,
    circular_mean_clock,
    compute_average_report,
    validate_period,
)
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
from ._report import (
    INVALID_PECULIARITIES,
    Peculiarity,
    SessionState,
    SleepReport,
    assess_peculiarities,
    build_report,
)
from ._stats import SleepStat, compute_stat, sleep_index
from ._time import InvalidTimezoneError, format_time, parse_datetime, parse_timezone

__all__ = [
    "EPOCHS_PER_INFERENCE",
    "EPOCH_SECONDS",
    "INVALID_PECULIARITIES",
    "MAX_AVERAGE_PERIOD_DAYS",
    "SAMPLES_PER_EPOCH",
    "SAMPLE_RATE",
    "AverageReport",
    "Hypnogram",
    "InvalidTimezoneError",
    "Peculiarity",
    "SessionState",
    "SessionSummary",
    "SleepReport",
    "SleepStat",
    "SnoringStage",
    "Stage",
    "StageRun",
    "StageScheme",
    "TwoStage",
    "assess_peculiarities",
    "build_report",
    "circular_mean_clock",
    "compute_average_report",
    "compute_stat",
    "format_time",
    "parse_datetime",
    "parse_timezone",
    "sleep_index",
    "validate_period",
]

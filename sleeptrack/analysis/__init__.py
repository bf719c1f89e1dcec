"""The analysis engine: audio → mel spectrogram → per-epoch features → stages and snoring → statistics.

Pure signal processing and statistics: no web, no database.
"""

from ._audio import (
    SUPPORTED_FORMATS,
    SUPPORTED_RATES,
    AudioFormatError,
    AudioInfo,
    audio_info,
    decode_chunk,
    iter_audio_blocks,
)
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
from ._engine import (
    DEFAULT_MODEL,
    Engine,
    ModelError,
    RealtimeState,
    RealtimeStateError,
    StagingResult,
    chunk_feature_names,
    load_engine,
)
from ._hypnogram import Hypnogram, StageRun
from ._mel import MEL, MEL_VERSION, MelFormatError, check_mel_chunk, decode_mel_chunk, encode_mel_chunk, mel_spectrogram
from ._metrics import AgreementReport, BlandAltman, EpochAgreement, NightPair, agreement, epoch_agreement
from ._pipeline import RecordingAnalysis, analyze_recording
from ._plot import plot_agreement, plot_hypnogram
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
    "DEFAULT_MODEL",
    "EPOCHS_PER_INFERENCE",
    "EPOCH_SECONDS",
    "INVALID_PECULIARITIES",
    "MAX_AVERAGE_PERIOD_DAYS",
    "MEL",
    "MEL_VERSION",
    "SAMPLES_PER_EPOCH",
    "SAMPLE_RATE",
    "SUPPORTED_FORMATS",
    "SUPPORTED_RATES",
    "AgreementReport",
    "AudioFormatError",
    "AudioInfo",
    "AverageReport",
    "BlandAltman",
    "Engine",
    "EpochAgreement",
    "Hypnogram",
    "InvalidTimezoneError",
    "MelFormatError",
    "ModelError",
    "NightPair",
    "Peculiarity",
    "RealtimeState",
    "RealtimeStateError",
    "RecordingAnalysis",
    "SessionState",
    "SessionSummary",
    "SleepReport",
    "SleepStat",
    "SnoringStage",
    "Stage",
    "StageRun",
    "StageScheme",
    "StagingResult",
    "TwoStage",
    "agreement",
    "analyze_recording",
    "assess_peculiarities",
    "audio_info",
    "build_report",
    "check_mel_chunk",
    "chunk_feature_names",
    "circular_mean_clock",
    "compute_average_report",
    "compute_stat",
    "decode_chunk",
    "decode_mel_chunk",
    "encode_mel_chunk",
    "epoch_agreement",
    "format_time",
    "iter_audio_blocks",
    "load_engine",
    "mel_spectrogram",
    "parse_datetime",
    "parse_timezone",
    "plot_agreement",
    "plot_hypnogram",
    "sleep_index",
    "validate_period",
]

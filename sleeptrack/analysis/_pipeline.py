"""Analysing a whole recording: stream it in 30-second chunks, stage it, build its report."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ._audio import audio_info, iter_audio_blocks
from ._constants import EPOCH_SECONDS, SAMPLES_PER_EPOCH, StageScheme
from ._engine import Engine, StagingResult, load_engine
from ._hypnogram import Hypnogram
from ._report import SessionState, SleepReport, build_report
from ._time import parse_timezone

__all__ = ["RecordingAnalysis", "analyze_recording", "session_id_for"]

#: Called with (epochs done, epochs expected).
Progress = Callable[[int, int], None]


@dataclass
class RecordingAnalysis:
    """The outcome of :func:`analyze_recording`."""

    path: Path
    start_time: datetime
    end_time: datetime
    timezone: str
    staging: StagingResult
    report: SleepReport

    @property
    def hypnogram(self) -> Hypnogram:
        return self.staging.hypnogram(self.start_time, self.timezone)

    def result_dict(self) -> dict[str, object]:
        """Exactly the ``result`` object of ``GET /data/v3/sessions/{id}`` for this recording."""
        return self.report.to_dict(parse_timezone(self.timezone), self.timezone)


def session_id_for(path: Path, start_time: datetime) -> str:
    """A session id in the reference's shape (``20250115230000_ab12c``) for a local recording."""
    suffix = hashlib.sha256(path.name.encode()).hexdigest()[:5]
    return f"{start_time.astimezone(parse_timezone('UTC')):%Y%m%d%H%M%S}_{suffix}"


def analyze_recording(
    path: Path,
    start_time: datetime | None = None,
    timezone: str = "UTC",
    engine: Engine | None = None,
    scheme: StageScheme = StageScheme.FOUR,
    progress: Progress | None = None,
) -> RecordingAnalysis:
    """Analyse a recording of any length with memory that does not grow with it.

    Parameters
    ----------
    path
        WAV, MP3, FLAC or OGG at 16, 44.1 or 48 kHz, mono or stereo.
    start_time
        When the recording started (timezone-aware). Default: the file's modification time minus its
        duration, i.e. the recording is assumed to have been written when it ended.
    timezone
        IANA zone in which the report is shown.

    Raises
    ------
    AudioFormatError
        If the file cannot be used; nothing is analysed then.
    """
    tz = parse_timezone(timezone)
    info = audio_info(path)
    duration = timedelta(seconds=info.seconds)
    if start_time is None:
        start_time = datetime.fromtimestamp(path.stat().st_mtime, tz) - duration
    engine = engine or load_engine()
    expected = int(info.seconds // EPOCH_SECONDS)
    rows: list[np.ndarray] = []
    for block in iter_audio_blocks(path):
        if block.size < SAMPLES_PER_EPOCH:
            break  # a final partial epoch counts in time in bed but is not staged
        rows.append(engine.chunk_features_from_audio(block))
        if progress is not None:
            progress(len(rows), expected)
    features = np.stack(rows) if rows else np.zeros((0, engine.n_features), np.float32)
    staging = engine.full_night(features, np.ones(len(rows), dtype=bool), scheme)
    end_time = start_time + duration
    report = build_report(
        session_id_for(path, start_time),
        staging.stages,
        start_time,
        end_time,
        state=SessionState.COMPLETE,
        snoring_stages=staging.snoring,
        scheme=scheme,
        created_timezone=timezone,
        model_version=staging.model_version,
    )
    return RecordingAnalysis(path, start_time, end_time, timezone, staging, report)

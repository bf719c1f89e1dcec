"""Peculiarities and the session report: the ``result`` object of ``GET /data/v3/sessions/{id}``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ._constants import EPOCH_SECONDS, Stage, StageScheme
from ._stats import SleepStat, compute_stat
from ._time import format_time

__all__ = [
    "INVALID_PECULIARITIES",
    "MAX_ANALYSIS_SECONDS",
    "MIN_CONSECUTIVE_EPOCHS",
    "MIN_UPLOADED_RATIO",
    "Peculiarity",
    "SessionState",
    "SleepReport",
    "assess_peculiarities",
    "build_report",
]

#: At least 5 consecutive minutes of sound are needed for an analysis.
MIN_CONSECUTIVE_EPOCHS = 10
#: At least 70 % of the session must have usable sound.
MIN_UPLOADED_RATIO = 0.7
#: Sessions longer than 24 hours are analysed but flagged.
MAX_ANALYSIS_SECONDS = 24 * 3600


class Peculiarity(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    NEVER_SLEPT = "NEVER_SLEPT"
    TOO_SHORT_FOR_ANALYSIS = "TOO_SHORT_FOR_ANALYSIS"
    TOO_LONG_FOR_ANALYSIS = "TOO_LONG_FOR_ANALYSIS"
    TOO_MANY_DEFECTS_IN_SLEEP_STAGES = "TOO_MANY_DEFECTS_IN_SLEEP_STAGES"
    NO_BREATHING_STABILITY = "NO_BREATHING_STABILITY"
    NO_REALTIME_POLLING = "NO_REALTIME_POLLING"


#: Sessions with these peculiarities are invalid: no stat object, not billed.
INVALID_PECULIARITIES = frozenset({Peculiarity.TOO_SHORT_FOR_ANALYSIS, Peculiarity.TOO_MANY_DEFECTS_IN_SLEEP_STAGES})


class SessionState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    COMPLETE = "COMPLETE"


def _longest_valid_run(stages: npt.NDArray[np.int8]) -> int:
    valid = np.concatenate(([False], stages != Stage.ERROR, [False]))
    edges = np.flatnonzero(valid[1:] != valid[:-1])
    if edges.size == 0:
        return 0
    return int((edges[1::2] - edges[0::2]).max())


def assess_peculiarities(
    sleep_stages: Sequence[int] | npt.ArrayLike,
    time_in_bed: float,
    state: SessionState = SessionState.COMPLETE,
    realtime_allowed: bool = True,
) -> list[Peculiarity]:
    """The peculiarities of a session, in a fixed order; ``NO_BREATHING_STABILITY`` is always present.

    * ``IN_PROGRESS``: the session is OPEN or CLOSED (stat is null);
    * ``NO_REALTIME_POLLING``: OPEN or CLOSED on a plan without real-time access (stages are null);
    * ``TOO_SHORT_FOR_ANALYSIS``: fewer than 5 consecutive minutes of usable sound;
    * ``TOO_MANY_DEFECTS_IN_SLEEP_STAGES``: less than 70 % of the epochs have usable sound;
    * ``TOO_LONG_FOR_ANALYSIS``: longer than 24 hours (still analysed);
    * ``NEVER_SLEPT``: a valid, complete session without a single sleep epoch.
    """
    stages = np.asarray(sleep_stages).astype(np.int8)
    out: list[Peculiarity] = []
    if state is not SessionState.COMPLETE:
        out.append(Peculiarity.IN_PROGRESS)
        if not realtime_allowed:
            out.append(Peculiarity.NO_REALTIME_POLLING)
        out.append(Peculiarity.NO_BREATHING_STABILITY)
        return out
    n = int(stages.size)
    valid_ratio = float(np.count_nonzero(stages != Stage.ERROR)) / n if n else 0.0
    too_short = _longest_valid_run(stages) < MIN_CONSECUTIVE_EPOCHS
    too_many_defects = n == 0 or valid_ratio < MIN_UPLOADED_RATIO
    if not (too_short or too_many_defects) and not np.any(stages > 0):
        out.append(Peculiarity.NEVER_SLEPT)
    if too_short:
        out.append(Peculiarity.TOO_SHORT_FOR_ANALYSIS)
    if time_in_bed > MAX_ANALYSIS_SECONDS:
        out.append(Peculiarity.TOO_LONG_FOR_ANALYSIS)
    if too_many_defects:
        out.append(Peculiarity.TOO_MANY_DEFECTS_IN_SLEEP_STAGES)
    out.append(Peculiarity.NO_BREATHING_STABILITY)
    return out


@dataclass
class SleepReport:
    """What the Data API returns for one session (``result`` of ``GET /data/v3/sessions/{id}``)."""

    session_id: str
    state: SessionState
    start_time: datetime
    end_time: datetime | None
    unexpected_end_time: datetime | None
    created_timezone: str
    sleep_stages: list[int] | None
    snoring_stages: list[int] | None
    peculiarities: list[Peculiarity]
    missing_data_ratio: float
    stat: SleepStat | None
    model_version: str | None = None

    @property
    def is_valid(self) -> bool:
        return not INVALID_PECULIARITIES.intersection(self.peculiarities)

    def to_dict(self, tz: tzinfo, timezone_name: str) -> dict[str, Any]:
        """The documented JSON, times rendered in ``tz`` (named ``timezone_name``)."""

        def when(value: datetime | None) -> str | None:
            return None if value is None else format_time(value, tz)

        # ``model_version`` is an added column (allowed without a version change by the reference's
        # versioning policy): every report names the model that produced it.
        return {
            "timezone": timezone_name,
            "peculiarities": [p.value for p in self.peculiarities],
            "missing_data_ratio": self.missing_data_ratio,
            "session": {
                "id": self.session_id,
                "state": self.state.value,
                "start_time": when(self.start_time),
                "end_time": when(self.end_time),
                "unexpected_end_time": when(self.unexpected_end_time),
                "created_timezone": self.created_timezone,
                "sleep_stages": self.sleep_stages,
                "breath_stages": None,
                "snoring_stages": self.snoring_stages,
            },
            "stat": None if self.stat is None else self.stat.to_dict(tz),
            "model_version": self.model_version,
        }


def build_report(
    session_id: str,
    sleep_stages: Sequence[int] | npt.ArrayLike,
    start_time: datetime,
    end_time: datetime | None,
    *,
    state: SessionState = SessionState.COMPLETE,
    snoring_stages: Sequence[int] | npt.ArrayLike | None = None,
    scheme: StageScheme = StageScheme.FOUR,
    created_timezone: str = "UTC",
    unexpected_end_time: datetime | None = None,
    realtime_allowed: bool = True,
    model_version: str | None = None,
) -> SleepReport:
    """Assemble the report of one session: peculiarities, missing data, stages and (when valid) stats.

    For a COMPLETE session, ``end_time`` defaults to the end of the last epoch. OPEN / CLOSED sessions
    get ``IN_PROGRESS`` and no stat; their stages are the real-time results so far (null on plans
    without real-time access).
    """
    stages = np.asarray(sleep_stages).astype(np.int8)
    snoring = None if snoring_stages is None else np.asarray(snoring_stages).astype(np.int8)
    n = int(stages.size)
    missing = round(float(np.count_nonzero(stages == Stage.ERROR)) / n, 2) if n else 0.0
    if state is SessionState.COMPLETE and end_time is None:
        end_time = start_time + timedelta(seconds=EPOCH_SECONDS * n)
    time_in_bed = (end_time - start_time).total_seconds() if end_time is not None else 0.0
    peculiarities = assess_peculiarities(stages, time_in_bed, state, realtime_allowed)
    hide_stages = Peculiarity.NO_REALTIME_POLLING in peculiarities
    stat: SleepStat | None = None
    if state is SessionState.COMPLETE and not INVALID_PECULIARITIES.intersection(peculiarities):
        assert end_time is not None
        stat = compute_stat(stages, start_time, end_time, snoring, scheme)
    return SleepReport(
        session_id=session_id,
        state=state,
        start_time=start_time,
        end_time=end_time if state is not SessionState.OPEN else None,
        unexpected_end_time=unexpected_end_time,
        created_timezone=created_timezone,
        sleep_stages=None if hide_stages else stages.tolist(),
        snoring_stages=None if hide_stages or snoring is None else snoring.tolist(),
        peculiarities=peculiarities,
        missing_data_ratio=missing,
        stat=stat,
        model_version=model_version,
    )

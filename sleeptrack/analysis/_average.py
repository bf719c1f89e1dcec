"""Average statistics over many sessions (``GET /data/v1/users/{id}/average-stats``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from ._report import Peculiarity
from ._stats import SleepStat
from ._time import format_time, parse_timezone

__all__ = [
    "MAX_AVERAGE_PERIOD_DAYS",
    "AverageReport",
    "SessionSummary",
    "circular_mean_clock",
    "compute_average_report",
    "validate_period",
]

#: The average-stats period may cover at most this many days (both ends included).
MAX_AVERAGE_PERIOD_DAYS = 100

_DAY = 86_400

# Durations and counts averaged arithmetically (nullable ones over the sessions that have them).
_MEAN_FIELDS = (
    "sleep_latency",
    "wakeup_latency",
    "time_in_bed",
    "time_in_sleep_period",
    "time_in_sleep",
    "time_in_wake",
    "time_in_light",
    "time_in_deep",
    "time_in_rem",
    "time_in_snoring",
    "time_in_no_snoring",
    "waso_count",
    "longest_waso",
    "sleep_cycle_count",
    "snoring_count",
)

# Keys of a slept-session object, in the documented order (the Stat object without sleep_index and
# sleep_cycle_time).
_SLEPT_SESSION_STAT_KEYS = (
    "sleep_time",
    "wake_time",
    "sleep_latency",
    "wakeup_latency",
    "light_latency",
    "deep_latency",
    "rem_latency",
    "time_in_bed",
    "time_in_sleep_period",
    "time_in_sleep",
    "time_in_wake",
    "time_in_light",
    "time_in_deep",
    "time_in_rem",
    "time_in_stable_breath",
    "time_in_unstable_breath",
    "time_in_snoring",
    "time_in_no_snoring",
    "sleep_efficiency",
    "sleep_ratio",
    "wake_ratio",
    "light_ratio",
    "deep_ratio",
    "rem_ratio",
    "stable_breath_ratio",
    "unstable_breath_ratio",
    "snoring_ratio",
    "no_snoring_ratio",
    "breathing_pattern",
    "breathing_index",
    "waso_count",
    "longest_waso",
    "sleep_cycle_count",
    "sleep_cycle",
    "unstable_breath_count",
    "snoring_count",
)


@dataclass
class SessionSummary:
    """What the average needs of one COMPLETE session."""

    session_id: str
    created_timezone: str
    start_time: datetime
    end_time: datetime
    completed_time: datetime
    peculiarities: Sequence[Peculiarity]
    stat: SleepStat | None


def validate_period(start_date: date, end_date: date) -> None:
    """Raise ``ValueError`` unless ``start_date <= end_date`` and the period covers at most 100 days."""
    if end_date < start_date:
        raise ValueError("end_date must not be before start_date")
    if (end_date - start_date).days + 1 > MAX_AVERAGE_PERIOD_DAYS:
        raise ValueError("The period should be less than or equal to 100 days")


def circular_mean_clock(seconds_of_day: Iterable[float]) -> int:
    """Mean clock time on the 24-hour circle, in whole seconds after midnight (23:30 and 00:30 give 00:00).

    Raises ``ValueError`` for no values or for values spread evenly around the clock (no mean).
    """
    values = list(seconds_of_day)
    if not values:
        raise ValueError("no clock times to average")
    angles = [2.0 * math.pi * s / _DAY for s in values]
    sin_mean = sum(math.sin(a) for a in angles) / len(angles)
    cos_mean = sum(math.cos(a) for a in angles) / len(angles)
    if math.hypot(sin_mean, cos_mean) < 1e-9:
        raise ValueError("clock times are spread evenly around the day: their mean is undefined")
    angle = math.atan2(sin_mean, cos_mean) % (2.0 * math.pi)
    # Truncated to the second, as the reference does (its documented example matches to the second);
    # the epsilon keeps a mean of exactly midnight from landing on 23:59:59 through rounding error.
    return math.floor(angle / (2.0 * math.pi) * _DAY + 1e-6) % _DAY


def _clock(value: datetime, timezone: str) -> float:
    local = value.astimezone(parse_timezone(timezone))
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass
class AverageReport:
    """Result of the average-stats endpoint."""

    start_date: date
    end_date: date
    average_stats: dict[str, Any] | None
    never_slept: list[SessionSummary]
    slept: list[SessionSummary]

    def to_dict(self, tz: tzinfo, timezone_name: str) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else format_time(value, tz)

        slept_sessions = []
        for s in self.slept:
            assert s.stat is not None
            stat = s.stat.to_dict(tz)
            item: dict[str, Any] = {
                "id": s.session_id,
                "created_timezone": s.created_timezone,
                "start_time": when(s.start_time),
                "end_time": when(s.end_time),
                "completed_time": when(s.completed_time),
            }
            item.update({key: stat[key] for key in _SLEPT_SESSION_STAT_KEYS})
            slept_sessions.append(item)
        return {
            "period": {
                "timezone": timezone_name,
                "start_date": self.start_date.isoformat(),
                "end_date": self.end_date.isoformat(),
            },
            "peculiarities": [Peculiarity.NO_BREATHING_STABILITY.value],
            "average_stats": self.average_stats,
            "never_slept_sessions": [
                {
                    "id": s.session_id,
                    "start_time": when(s.start_time),
                    "end_time": when(s.end_time),
                    "completed_time": when(s.completed_time),
                }
                for s in self.never_slept
            ],
            "slept_sessions": slept_sessions,
        }


def _average_stats(slept: Sequence[SessionSummary]) -> dict[str, Any]:
    stats = [s.stat for s in slept if s.stat is not None]
    means: dict[str, float | None] = {}
    for name in _MEAN_FIELDS:
        values = [getattr(st, name) for st in stats if getattr(st, name) is not None]
        means[name] = sum(values) / len(values) if values else None

    def ratio(numerator: str, denominator: str) -> float | None:
        num, den = means[numerator], means[denominator]
        if num is None or den is None or den == 0:
            return None
        return round(num / den, 3)

    def clock(attr: str) -> str:
        values = [_clock(getattr(s, attr), s.created_timezone) for s in slept]
        return _hms(circular_mean_clock(values))

    def stat_clock(attr: str) -> str:
        values = [
            _clock(getattr(s.stat, attr), s.created_timezone)
            for s in slept
            if s.stat is not None and getattr(s.stat, attr) is not None
        ]
        return _hms(circular_mean_clock(values))

    def integer(name: str) -> int | None:
        value = means[name]
        return None if value is None else _half_up(value)

    wake_ratio = ratio("time_in_wake", "time_in_sleep_period")
    return {
        "start_time": clock("start_time"),
        "end_time": clock("end_time"),
        "sleep_time": stat_clock("sleep_time"),
        "wake_time": stat_clock("wake_time"),
        "sleep_latency": integer("sleep_latency"),
        "wakeup_latency": integer("wakeup_latency"),
        "time_in_bed": integer("time_in_bed"),
        "time_in_sleep_period": integer("time_in_sleep_period"),
        "time_in_sleep": integer("time_in_sleep"),
        "time_in_wake": integer("time_in_wake"),
        "time_in_light": integer("time_in_light"),
        "time_in_deep": integer("time_in_deep"),
        "time_in_rem": integer("time_in_rem"),
        "time_in_stable_breath": None,
        "time_in_unstable_breath": None,
        "time_in_snoring": integer("time_in_snoring"),
        "time_in_no_snoring": integer("time_in_no_snoring"),
        "sleep_efficiency": ratio("time_in_sleep", "time_in_bed"),
        "wake_ratio": wake_ratio,
        "sleep_ratio": None if wake_ratio is None else round(1.0 - wake_ratio, 3),
        "light_ratio": ratio("time_in_light", "time_in_sleep_period"),
        "deep_ratio": ratio("time_in_deep", "time_in_sleep_period"),
        "rem_ratio": ratio("time_in_rem", "time_in_sleep_period"),
        "stable_breath_ratio": None,
        "unstable_breath_ratio": None,
        "snoring_ratio": ratio("time_in_snoring", "time_in_sleep_period"),
        "no_snoring_ratio": ratio("time_in_no_snoring", "time_in_sleep_period"),
        "breathing_index": None,
        "waso_count": integer("waso_count"),
        "longest_waso": integer("longest_waso"),
        "unstable_breath_count": None,
        "sleep_cycle_count": integer("sleep_cycle_count"),
        "snoring_count": integer("snoring_count"),
    }


def compute_average_report(sessions: Iterable[SessionSummary], start_date: date, end_date: date) -> AverageReport:
    """Average the sessions of a period.

    Only complete, valid sessions count (those with a stat object). Sessions with ``NEVER_SLEPT`` are
    listed apart and left out of the averages. Durations and counts are means rounded to whole numbers;
    ratios are ratios of the mean durations (3 decimals), so the stage ratios still sum to 1; clock
    times (start, end, sleep, wake) are averaged on the 24-hour circle in each session's own time zone
    and given as ``hh:mm:ss``.
    """
    validate_period(start_date, end_date)
    slept: list[SessionSummary] = []
    never: list[SessionSummary] = []
    for s in sorted(sessions, key=lambda s: s.start_time):
        if s.stat is None:
            continue
        if Peculiarity.NEVER_SLEPT in s.peculiarities:
            never.append(s)
        else:
            slept.append(s)
    return AverageReport(start_date, end_date, _average_stats(slept) if slept else None, never, slept)

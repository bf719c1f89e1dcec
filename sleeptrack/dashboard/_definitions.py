"""What every statistic and peculiarity means: the hover texts of the session and averages pages.

The definitions are the reference documentation's own ("Sleep Data Metrics" and the Data API's Stat
object), shortened where the two disagree only in wording; units are how the dashboard shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from ._svg import format_duration

__all__ = [
    "PECULIARITY_DEFINITIONS",
    "STAT_DEFINITIONS",
    "STAT_GROUPS",
    "StatDefinition",
    "StatRow",
    "format_stat",
    "stat_rows",
]

Kind = Literal["time", "clock", "duration", "ratio", "count", "score", "times"]


@dataclass(frozen=True)
class StatDefinition:
    key: str
    label: str
    kind: Kind
    definition: str


_DEFS: tuple[tuple[str, str, str, Kind, str], ...] = (
    # group, key, label, kind, definition
    (
        "Basic",
        "sleep_time",
        "Sleep time",
        "time",
        "Exact time at which 'Sleep' was first detected since the tracking started.",
    ),
    (
        "Basic",
        "wake_time",
        "Wake time",
        "time",
        "Exact time at which the last 'Wake' period was detected during tracking. No sleep is detected after "
        "wake_time.",
    ),
    (
        "Basic",
        "sleep_index",
        "Sleep index",
        "score",
        "Overall sleep quality from total sleep time (time_in_sleep), sleep efficiency and the number of "
        "awakenings (waso_count); 50 to 100. sleeptrack computes 50 + 50 · d^0.45 · e^0.35 · w^0.20 from a "
        "duration score (7-9 h best), an efficiency score (90 % best) and an awakenings score (5 or fewer "
        "best).",
    ),
    (
        "Basic",
        "time_in_bed",
        "Time in bed",
        "duration",
        "The time between the start and the end of tracking.",
    ),
    (
        "Basic",
        "time_in_sleep_period",
        "Sleep period",
        "duration",
        "The time between the onset of 'Sleep' and the start of the last 'Wake' during tracking (time_in_bed "
        "- sleep_latency - wakeup_latency).",
    ),
    (
        "Basic",
        "sleep_latency",
        "Sleep latency",
        "duration",
        "The time between the start of tracking and the detection of the first 'Sleep'.",
    ),
    (
        "Basic",
        "wakeup_latency",
        "Wake-up latency",
        "duration",
        "The time between the start of the last 'Wake' and the end of tracking.",
    ),
    (
        "Efficiency",
        "time_in_sleep",
        "Total sleep time",
        "duration",
        "The actual time spent sleeping: time_in_sleep_period minus all 'Wake' time (light + deep + REM).",
    ),
    (
        "Efficiency",
        "sleep_efficiency",
        "Sleep efficiency",
        "ratio",
        "The ratio of time_in_sleep to time_in_bed.",
    ),
    (
        "Stages",
        "time_in_wake",
        "Wake (WASO)",
        "duration",
        "The sum of all 'Wake' seconds detected during time_in_sleep_period.",
    ),
    (
        "Stages",
        "time_in_light",
        "Light sleep",
        "duration",
        "The sum of all 'Light' seconds detected during time_in_sleep_period.",
    ),
    (
        "Stages",
        "time_in_deep",
        "Deep sleep",
        "duration",
        "The sum of all 'Deep' seconds detected during time_in_sleep_period.",
    ),
    (
        "Stages",
        "time_in_rem",
        "REM sleep",
        "duration",
        "The sum of all 'REM' seconds detected during time_in_sleep_period.",
    ),
    (
        "Stages",
        "waso_count",
        "Awakenings",
        "count",
        "The number of 'Wake' episodes detected during time_in_sleep_period.",
    ),
    (
        "Stages",
        "longest_waso",
        "Longest awakening",
        "duration",
        "The longest 'Wake' episode during time_in_sleep_period.",
    ),
    (
        "Ratios",
        "sleep_ratio",
        "Sleep ratio",
        "ratio",
        "Ratio of time_in_sleep to time_in_sleep_period.",
    ),
    (
        "Ratios",
        "wake_ratio",
        "Wake ratio",
        "ratio",
        "Ratio of time_in_wake to time_in_sleep_period.",
    ),
    (
        "Ratios",
        "light_ratio",
        "Light ratio",
        "ratio",
        "Ratio of time_in_light to time_in_sleep_period.",
    ),
    (
        "Ratios",
        "deep_ratio",
        "Deep ratio",
        "ratio",
        "Ratio of time_in_deep to time_in_sleep_period.",
    ),
    (
        "Ratios",
        "rem_ratio",
        "REM ratio",
        "ratio",
        "Ratio of time_in_rem to time_in_sleep_period.",
    ),
    (
        "Latencies",
        "light_latency",
        "Light latency",
        "duration",
        "The time between sleep_time and the first 'Light' (normally 0: light sleep comes first).",
    ),
    (
        "Latencies",
        "deep_latency",
        "Deep latency",
        "duration",
        "The time between sleep_time and the first 'Deep'.",
    ),
    (
        "Latencies",
        "rem_latency",
        "REM latency",
        "duration",
        "The time between sleep_time and the first 'REM'.",
    ),
    (
        "Cycles",
        "sleep_cycle_count",
        "Sleep cycles",
        "count",
        "The number of sleep cycles (NREM followed by REM) detected during time_in_sleep_period.",
    ),
    (
        "Cycles",
        "sleep_cycle",
        "Average cycle",
        "duration",
        "The average duration of the sleep cycles; each consists of 'REM' and 'Non-REM' sleep.",
    ),
    (
        "Cycles",
        "sleep_cycle_time",
        "Cycle transitions",
        "times",
        "The start of the first sleep cycle and the end of each cycle.",
    ),
    (
        "Snoring",
        "time_in_snoring",
        "Snoring time",
        "duration",
        "The time during time_in_sleep_period in which snoring was detected.",
    ),
    (
        "Snoring",
        "time_in_no_snoring",
        "No-snoring time",
        "duration",
        "The time during time_in_sleep_period in which no snoring was detected.",
    ),
    (
        "Snoring",
        "snoring_ratio",
        "Snoring ratio",
        "ratio",
        "The ratio of time_in_snoring to time_in_sleep_period.",
    ),
    (
        "Snoring",
        "no_snoring_ratio",
        "No-snoring ratio",
        "ratio",
        "The ratio of time_in_no_snoring to time_in_sleep_period.",
    ),
    (
        "Snoring",
        "snoring_count",
        "Snoring episodes",
        "count",
        "The number of times snoring was detected during time_in_sleep_period.",
    ),
)

#: Every statistic of the Stat object that sleeptrack computes, keyed by its JSON name.
STAT_DEFINITIONS: dict[str, StatDefinition] = {
    key: StatDefinition(key, label, kind, definition) for _, key, label, kind, definition in _DEFS
}

#: Group name -> statistic keys, in display order.
STAT_GROUPS: dict[str, list[str]] = {}
for _group, _key, *_ in _DEFS:
    STAT_GROUPS.setdefault(_group, []).append(_key)

#: Peculiarity -> what it means (the reference's wording) and whether it makes the session invalid.
PECULIARITY_DEFINITIONS: dict[str, tuple[str, bool]] = {
    "IN_PROGRESS": ("The session is OPEN or CLOSED: the final analysis is not done yet.", False),
    "NEVER_SLEPT": ("No sleep at all was detected during the measurement time.", False),
    "TOO_SHORT_FOR_ANALYSIS": (
        "Less than 5 consecutive minutes of sound: too short for a valid analysis. Invalid, not billed.",
        True,
    ),
    "TOO_LONG_FOR_ANALYSIS": (
        "Analysed, but longer than 24 hours: the result is hard to trust.",
        False,
    ),
    "TOO_MANY_DEFECTS_IN_SLEEP_STAGES": (
        "Less than 70 % of the session has usable sound (missing uploads): invalid, not billed.",
        True,
    ),
    "NO_BREATHING_STABILITY": (
        "Breathing-stability analysis is not provided (present on every V3 session).",
        False,
    ),
    "NO_REALTIME_POLLING": (
        "The plan does not include real-time results: stages appear when the session is complete.",
        False,
    ),
}


@dataclass(frozen=True)
class StatRow:
    key: str
    label: str
    value: str
    raw: Any
    definition: str


def format_stat(kind: Kind, value: Any, tz: tzinfo) -> str:
    """A statistic as the dashboard shows it (raw values stay in the JSON / CSV exports)."""
    if value is None:
        return "—"
    if kind == "time":
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return str(moment.astimezone(tz).strftime("%H:%M:%S"))
    if kind == "clock":
        return str(value)
    if kind == "duration":
        return format_duration(float(value))
    if kind == "ratio":
        return f"{float(value) * 100:.0f}%"
    if kind == "times":
        if not value:
            return "—"
        moments = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in value]
        return ", ".join(m.astimezone(tz).strftime("%H:%M") for m in moments)
    return str(value)


def stat_rows(stat: dict[str, Any], tz: tzinfo) -> dict[str, list[StatRow]]:
    """The Stat object grouped for display, every row with its definition (statistics the plan leaves null stay,
    shown as an em dash, so a missing feature is visible)."""
    out: dict[str, list[StatRow]] = {}
    for group, keys in STAT_GROUPS.items():
        rows = []
        for key in keys:
            if key not in stat:
                continue
            d = STAT_DEFINITIONS[key]
            rows.append(StatRow(key, d.label, format_stat(d.kind, stat[key], tz), stat[key], d.definition))
        if rows:
            out[group] = rows
    return out

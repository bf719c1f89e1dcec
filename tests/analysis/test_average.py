"""Average stats: the documented example as a test vector, the circle, and the period rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sleeptrack.analysis import (
    Peculiarity,
    SessionSummary,
    SleepStat,
    circular_mean_clock,
    compute_average_report,
    compute_stat,
    validate_period,
)

# The five slept sessions of the documented average-stats example (Asia/Seoul users, times in UTC):
# id, start, end, sleep, wake, then latency / duration / count fields as documented.
_DOC_SESSIONS = [
    ("20250101173000_biuw0", "2025-01-01T17:30:00", "2025-01-01T22:37:23", "2025-01-01T17:30:00",
     "2025-01-01T22:32:23", 0, 300, 18443, 18120, 17910, 210, 7020, 4410, 6480, 60, 18060, 7, 30, 4, 2),
    ("20250102180002_1it7v", "2025-01-02T18:00:02", "2025-01-02T23:05:06", "2025-01-02T18:30:02",
     "2025-01-02T23:05:06", 1800, 0, 18304, 16500, 15660, 840, 8460, 3690, 3510, 30, 16470, 10, 240, 3, 1),
    ("20250103180002_91khj", "2025-01-03T18:00:02", "2025-01-03T23:05:14", "2025-01-03T18:00:02",
     "2025-01-03T23:05:14", 0, 0, 18312, 18300, 17220, 1080, 8910, 3150, 5160, 0, 18300, 8, 720, 3, 0),
    ("20250104180001_z8tn9", "2025-01-04T18:00:01", "2025-01-04T20:27:03", "2025-01-04T18:00:01",
     "2025-01-04T19:32:33", 0, 3270, 8822, 5520, 5370, 150, 2100, 1680, 1590, 30, 5490, 3, 60, 1, 1),
    ("20250105180002_s3dh3", "2025-01-05T18:00:02", "2025-01-05T23:00:26", "2025-01-05T18:52:32",
     "2025-01-05T23:00:26", 3150, 0, 18024, 14850, 14610, 240, 5970, 3420, 5220, 90, 14760, 6, 90, 2, 3),
]  # fmt: skip


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _doc_summaries() -> list[SessionSummary]:
    out = []
    for (sid, start, end, sleep, wake, lat, wlat, tib, tsp, tst, wk, li, dp, rem, sn, nsn, waso, lw, cyc,
         snc) in _DOC_SESSIONS:  # fmt: skip
        stat = SleepStat(
            sleep_time=_utc(sleep), wake_time=_utc(wake), sleep_index=None, sleep_latency=lat,
            wakeup_latency=wlat, light_latency=0, deep_latency=None, rem_latency=None, time_in_bed=tib,
            time_in_sleep_period=tsp, time_in_sleep=tst, time_in_wake=wk, time_in_light=li, time_in_deep=dp,
            time_in_rem=rem, time_in_snoring=sn, time_in_no_snoring=nsn, sleep_efficiency=round(tst / tib, 2),
            sleep_ratio=None, wake_ratio=None, light_ratio=None, deep_ratio=None, rem_ratio=None,
            snoring_ratio=None, no_snoring_ratio=None, waso_count=waso, longest_waso=lw,
            sleep_cycle_count=cyc, sleep_cycle=None, snoring_count=snc,
        )  # fmt: skip
        out.append(
            SessionSummary(
                sid,
                "Asia/Seoul",
                _utc(start),
                _utc(end),
                _utc(end) + timedelta(seconds=2),
                [Peculiarity.NO_BREATHING_STABILITY],
                stat,
            )
        )
    return out


def test_documented_average_example() -> None:
    report = compute_average_report(_doc_summaries(), date(2025, 1, 1), date(2025, 1, 5))
    avg = report.average_stats
    assert avg is not None
    documented = {
        "start_time": "02:54:01",  # clock times are averaged in the sessions' own (Seoul) time zone
        "sleep_latency": 990,
        "wakeup_latency": 714,
        "time_in_bed": 16381,
        "time_in_sleep_period": 14658,
        "time_in_sleep": 14154,
        "time_in_wake": 504,
        "time_in_light": 6492,
        "time_in_deep": 3270,
        "time_in_rem": 4392,
        "sleep_efficiency": 0.864,  # ratio of the mean durations, not the mean of the ratios (0.838)
        "wake_ratio": 0.034,
        "sleep_ratio": 0.966,
        "light_ratio": 0.443,
        "deep_ratio": 0.223,
        "rem_ratio": 0.3,
        "waso_count": 7,
        "longest_waso": 228,
        "sleep_cycle_count": 3,
    }
    assert {key: avg[key] for key in documented} == documented
    # The example's snoring averages divide 5 sessions by 4 (time_in_snoring 53, time_in_no_snoring
    # 18270, snoring_count 2): we take the plain mean over the slept sessions.
    assert (avg["time_in_snoring"], avg["time_in_no_snoring"], avg["snoring_count"]) == (42, 14616, 1)
    # Circular means truncated to the second reproduce every documented clock time (the arithmetic mean
    # would give 07:27:02 and 07:15:08 for end_time and wake_time).
    assert (avg["end_time"], avg["sleep_time"], avg["wake_time"]) == ("07:28:03", "03:10:30", "07:17:44")
    result = report.to_dict(UTC, "UTC")
    assert result["period"] == {"timezone": "UTC", "start_date": "2025-01-01", "end_date": "2025-01-05"}
    assert [s["id"] for s in result["slept_sessions"]] == [row[0] for row in _DOC_SESSIONS]
    assert result["never_slept_sessions"] == []
    assert "sleep_index" not in result["slept_sessions"][0]


def test_clock_times_average_on_the_circle() -> None:
    assert circular_mean_clock([23 * 3600 + 1800, 1800]) == 0  # 23:30 and 00:30 → 00:00
    assert circular_mean_clock([22 * 3600, 2 * 3600]) == 0
    assert circular_mean_clock([6 * 3600, 8 * 3600]) == 7 * 3600
    with pytest.raises(ValueError, match="undefined"):
        circular_mean_clock([0, 12 * 3600])
    with pytest.raises(ValueError, match="no clock"):
        circular_mean_clock([])


def test_never_slept_and_invalid_sessions_are_kept_apart() -> None:
    start = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
    slept_stages = [0] * 20 + [1] * 600 + [0] * 10
    slept = compute_stat(slept_stages, start, start + timedelta(seconds=30 * 630))
    never = compute_stat([0] * 100, start, start + timedelta(seconds=3000))
    sessions = [
        SessionSummary("a", "UTC", start, start + timedelta(hours=5), start + timedelta(hours=5), [], slept),
        SessionSummary(
            "b",
            "UTC",
            start,
            start + timedelta(hours=1),
            start + timedelta(hours=1),
            [Peculiarity.NEVER_SLEPT],
            never,
        ),
        SessionSummary(
            "c",
            "UTC",
            start,
            start + timedelta(minutes=3),
            start + timedelta(minutes=3),
            [Peculiarity.TOO_SHORT_FOR_ANALYSIS],
            None,
        ),
    ]
    report = compute_average_report(sessions, date(2025, 3, 1), date(2025, 3, 1))
    assert [s.session_id for s in report.slept] == ["a"]
    assert [s.session_id for s in report.never_slept] == ["b"]
    assert report.average_stats is not None
    assert report.average_stats["time_in_sleep"] == slept.time_in_sleep
    empty = compute_average_report(sessions[1:], date(2025, 3, 1), date(2025, 3, 1))
    assert empty.average_stats is None


def test_period_boundaries() -> None:
    validate_period(date(2025, 1, 1), date(2025, 4, 10))  # 100 days, both ends included
    with pytest.raises(ValueError, match="less than or equal to 100 days"):
        validate_period(date(2025, 1, 1), date(2025, 4, 11))
    validate_period(date(2025, 1, 1), date(2025, 1, 1))
    with pytest.raises(ValueError, match="before start_date"):
        validate_period(date(2025, 1, 2), date(2025, 1, 1))

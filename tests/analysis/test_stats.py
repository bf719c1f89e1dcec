"""Edge cases of the statistics: empty, all wake, all error, one epoch, > 24 h, 2-stage, -1 epochs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hypothesis.strategies as st
import pytest
from hypothesis import given

from sleeptrack.analysis import (
    Peculiarity,
    SessionState,
    StageScheme,
    build_report,
    compute_stat,
    sleep_index,
)

START = datetime(2025, 1, 15, 23, 0, tzinfo=UTC)


def end_of(stages: list[int]) -> datetime:
    return START + timedelta(seconds=30 * len(stages))


def test_empty_hypnogram_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_stat([], START, START + timedelta(hours=1))


def test_bad_inputs_are_rejected_with_clear_messages() -> None:
    with pytest.raises(ValueError, match=r"-1\.\.3"):
        compute_stat([0, 4], START, START + timedelta(minutes=1))
    with pytest.raises(ValueError, match=r"-1\.\.1"):
        compute_stat([0, 2], START, START + timedelta(minutes=1), scheme=StageScheme.TWO)
    with pytest.raises(ValueError, match="after start_time"):
        compute_stat([0, 1], START, START)
    with pytest.raises(ValueError, match="UTC offset"):
        compute_stat([0, 1], START.replace(tzinfo=None), START.replace(tzinfo=None) + timedelta(minutes=1))
    with pytest.raises(ValueError, match="snoring_stages has 1 epochs"):
        compute_stat([0, 1], START, START + timedelta(minutes=1), snoring_stages=[0])


def test_all_wake_is_never_slept_with_documented_nulls() -> None:
    stages = [0] * 40
    report = build_report("20250115230000_abcde", stages, START, end_of(stages), snoring_stages=[0] * 40)
    assert report.peculiarities == [Peculiarity.NEVER_SLEPT, Peculiarity.NO_BREATHING_STABILITY]
    stat = report.stat
    assert stat is not None
    documented_nulls = [
        "sleep_latency",
        "sleep_time",
        "wakeup_latency",
        "wake_time",
        "wake_ratio",
        "sleep_ratio",
        "rem_ratio",
        "light_ratio",
        "deep_ratio",
        "light_latency",
        "deep_latency",
        "rem_latency",
        "sleep_cycle",
        "longest_waso",
        "sleep_index",
    ]
    for name in documented_nulls:
        assert getattr(stat, name) is None, name
    assert stat.time_in_bed == 1200
    assert (stat.time_in_sleep, stat.time_in_sleep_period, stat.sleep_efficiency) == (0, 0, 0.0)
    assert stat.waso_count == 0 and stat.sleep_cycle_count == 0 and stat.sleep_cycle_time == []


def test_all_error_epochs_are_invalid_without_stat() -> None:
    stages = [-1] * 60
    report = build_report("20250115230000_abcde", stages, START, end_of(stages))
    assert report.stat is None
    assert report.missing_data_ratio == 1.0
    assert Peculiarity.TOO_SHORT_FOR_ANALYSIS in report.peculiarities
    assert Peculiarity.TOO_MANY_DEFECTS_IN_SLEEP_STAGES in report.peculiarities
    assert not report.is_valid


def test_one_epoch_is_too_short() -> None:
    report = build_report("20250115230000_abcde", [1], START, end_of([1]))
    assert report.peculiarities == [Peculiarity.TOO_SHORT_FOR_ANALYSIS, Peculiarity.NO_BREATHING_STABILITY]
    assert report.stat is None
    # The statistics themselves are still defined for one epoch.
    stat = compute_stat([1], START, end_of([1]))
    assert (stat.time_in_sleep, stat.sleep_latency, stat.wakeup_latency, stat.sleep_efficiency) == (
        30,
        0,
        0,
        1.0,
    )


def test_five_consecutive_minutes_is_the_threshold() -> None:
    nine = [1] * 9 + [-1] + [1] * 9 + [-1] * 1
    ten = [1] * 10 + [-1] * 2
    assert Peculiarity.TOO_SHORT_FOR_ANALYSIS in build_report("s", nine, START, end_of(nine)).peculiarities
    assert Peculiarity.TOO_SHORT_FOR_ANALYSIS not in build_report("s", ten, START, end_of(ten)).peculiarities


def test_seventy_percent_uploaded_is_the_threshold() -> None:
    ok = [1] * 70 + [-1] * 30
    bad = [1] * 69 + [-1] * 31
    assert build_report("s", ok, START, end_of(ok)).stat is not None
    report = build_report("s", bad, START, end_of(bad))
    assert report.peculiarities == [
        Peculiarity.TOO_MANY_DEFECTS_IN_SLEEP_STAGES,
        Peculiarity.NO_BREATHING_STABILITY,
    ]
    assert report.stat is None and report.missing_data_ratio == 0.31


def test_longer_than_24_hours_is_flagged_but_analysed() -> None:
    stages = [0] * 20 + ([1] * 100 + [2] * 50 + [3] * 30) * 17 + [0] * 10  # 25 h 45 min
    report = build_report("s", stages, START, end_of(stages))
    assert Peculiarity.TOO_LONG_FOR_ANALYSIS in report.peculiarities
    assert report.stat is not None
    assert report.stat.time_in_bed == 30 * len(stages) > 24 * 3600
    assert report.stat.sleep_cycle_count == 17


def test_in_progress_sessions_have_no_stat_and_realtime_rules() -> None:
    stages = [0, 1, 1, 2]
    open_report = build_report("s", stages, START, None, state=SessionState.OPEN)
    assert open_report.peculiarities == [Peculiarity.IN_PROGRESS, Peculiarity.NO_BREATHING_STABILITY]
    assert open_report.stat is None and open_report.sleep_stages == stages and open_report.end_time is None
    hidden = build_report("s", stages, START, None, state=SessionState.OPEN, realtime_allowed=False)
    assert Peculiarity.NO_REALTIME_POLLING in hidden.peculiarities
    assert hidden.sleep_stages is None and hidden.snoring_stages is None


def test_two_stage_plans_null_the_four_stage_fields() -> None:
    stages = [0] * 10 + [1] * 50 + [0] * 2 + [1] * 40 + [0] * 5
    stat = compute_stat(stages, START, end_of(stages), scheme=StageScheme.TWO)
    for name in [
        "time_in_rem",
        "time_in_light",
        "time_in_deep",
        "rem_ratio",
        "light_ratio",
        "deep_ratio",
        "light_latency",
        "deep_latency",
        "rem_latency",
        "sleep_cycle",
        "sleep_cycle_count",
    ]:
        assert getattr(stat, name) is None, name
    assert (stat.time_in_sleep, stat.time_in_wake, stat.waso_count, stat.longest_waso) == (2700, 60, 1, 60)
    assert (stat.wake_ratio, stat.sleep_ratio) == (0.02, 0.98)
    assert stat.sleep_cycle_time == []


def test_error_epochs_are_excluded_and_counted_as_missing() -> None:
    stages = [0] * 10 + [1] * 20 + [-1] * 4 + [1] * 20 + [0] * 2 + [-1] + [0] * 2 + [2] * 20 + [0] * 10
    snoring = [0] * 30 + [-1] * 4 + [1] * 5 + [0] * 40 + [0] * 10
    report = build_report("s", stages, START, end_of(stages), snoring_stages=snoring)
    stat = report.stat
    assert stat is not None
    assert report.missing_data_ratio == round(5 / len(stages), 2)
    # Stage times exclude the five error epochs; the period is wake + sleep inside it.
    assert (stat.time_in_light, stat.time_in_deep, stat.time_in_wake) == (1200, 600, 120)
    assert stat.time_in_sleep_period == 1800 + 120
    # The wake bout interrupted only by an error epoch is one bout of 4 epochs.
    assert (stat.waso_count, stat.longest_waso) == (1, 120)
    assert stat.sleep_latency == 300 and stat.wakeup_latency == 300
    assert stat.light_ratio + stat.deep_ratio + stat.rem_ratio + stat.wake_ratio == pytest.approx(1.0)  # type: ignore[operator]
    # Snoring: 5 epochs inside the sleep period, one bout; epochs whose stage or snoring is unknown count
    # as neither, so snoring + no snoring = the sleep period.
    assert (stat.time_in_snoring, stat.time_in_no_snoring, stat.snoring_count) == (150, 1770, 1)
    assert stat.time_in_snoring + stat.time_in_no_snoring == stat.time_in_sleep_period  # type: ignore[operator]


def test_snoring_runs_and_ratios() -> None:
    stages = [0] * 4 + [1] * 100 + [0] * 4
    snoring = [1] * 4 + [1, 1, 0, 1, 0, 0, 1, 1, 1] + [0] * 91 + [1] * 4  # runs outside the period ignored
    stat = compute_stat(stages, START, end_of(stages), snoring)
    assert (stat.time_in_snoring, stat.time_in_no_snoring, stat.snoring_count) == (180, 2820, 3)
    assert (stat.snoring_ratio, stat.no_snoring_ratio) == (0.06, 0.94)


def test_without_snoring_analysis_the_snoring_fields_are_null() -> None:
    stat = compute_stat([0, 1, 1, 0], START, START + timedelta(minutes=2))
    assert stat.time_in_snoring is None and stat.snoring_ratio is None and stat.snoring_count is None


@given(st.integers(0, 16 * 3600), st.floats(0.0, 1.0), st.integers(0, 200))
def test_sleep_index_is_between_50_and_100(time_in_sleep: int, efficiency: float, waso: int) -> None:
    assert 50 <= sleep_index(time_in_sleep, efficiency, waso) <= 100


def test_sleep_index_rewards_better_nights() -> None:
    good = sleep_index(8 * 3600, 0.95, 4)
    fragmented = sleep_index(8 * 3600, 0.95, 25)
    short = sleep_index(4 * 3600, 0.95, 4)
    inefficient = sleep_index(8 * 3600, 0.65, 4)
    assert good == 100
    assert good > fragmented and good > short and good > inefficient
    assert sleep_index(15 * 60, 0.3, 1) == 50

"""The server-drawn SVG charts: shapes per epoch run, axis labels in the session's time zone, bar charts."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sleeptrack.dashboard._svg import (
    DayUsage,
    NightBar,
    NightStages,
    bar_chart_svg,
    format_duration,
    hypnogram_svg,
    snoring_svg,
    stage_runs,
    stage_shares_svg,
    time_ticks,
    usage_svg,
)

NS = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def runs_of(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{NS}rect") if "run" in r.get("class", "").split()]


def tick_labels(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text") if t.get("class") == "tick"]


def test_stage_runs() -> None:
    assert [(r.code, r.start, r.length) for r in stage_runs([0, 0, 1, 1, 1, -1, 2])] == [
        (0, 0, 2),
        (1, 2, 3),
        (-1, 5, 1),
        (2, 6, 1),
    ]
    assert stage_runs([]) == []


def test_hypnogram_one_rect_per_run_covering_every_epoch() -> None:
    stages = [0] * 20 + [1] * 40 + [2] * 30 + [-1] * 4 + [3] * 25 + [1] * 10 + [0] * 7
    root = parse(hypnogram_svg(stages, datetime(2025, 1, 15, 23, 0, tzinfo=UTC), UTC))
    rects = runs_of(root)
    assert len(rects) == 7
    assert root.get("data-epochs") == str(len(stages))
    assert sum(int(r.get("data-epochs", "0")) for r in rects) == len(stages)
    assert [int(r.get("data-stage", "9")) for r in rects] == [0, 1, 2, -1, 3, 1, 0]
    # Runs tile the plot from left to right without overlap.
    xs = [(float(r.get("x", "0")), float(r.get("width", "0"))) for r in rects]
    for (x_a, w_a), (x_b, _) in itertools.pairwise(xs):
        assert x_b == pytest.approx(x_a + w_a, abs=0.02)
    # Wake is drawn above light, light above deep; the missing band spans every row.
    y = {int(r.get("data-stage", "9")): float(r.get("y", "0")) for r in rects}
    assert y[0] < y[3] < y[1] < y[2]
    missing = next(r for r in rects if r.get("data-stage") == "-1")
    assert float(missing.get("height", "0")) > 3 * float(rects[0].get("height", "0"))
    # Every run has a hover title naming the stage and its clock times.
    titles = [r.find(f"{NS}title") for r in rects]
    assert all(t is not None and t.text for t in titles)
    assert titles[1] is not None and titles[1].text is not None
    assert titles[1].text.startswith("Light 23:10–23:30")


def test_hypnogram_axis_labels_in_session_timezone() -> None:
    start = datetime(2025, 1, 15, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    stages = [1] * (8 * 120)  # 8 hours
    seoul = tick_labels(parse(hypnogram_svg(stages, start, ZoneInfo("Asia/Seoul"))))
    utc = tick_labels(parse(hypnogram_svg(stages, start, UTC)))
    assert seoul[0] == "23:00" and "00:00" in seoul and seoul[-1] == "07:00"
    assert utc[0] == "14:00" and utc[-1] == "22:00"
    # Half-hour offsets still land on round local times.
    kolkata = tick_labels(parse(hypnogram_svg(stages, start, ZoneInfo("Asia/Kolkata"))))
    assert kolkata[0] == "20:00" and all(label.endswith(":00") for label in kolkata)


def test_time_ticks_step_and_dst() -> None:
    start = datetime(2025, 1, 1, 0, 2, tzinfo=UTC)
    ticks = time_ticks(start, start + timedelta(minutes=40), UTC)
    assert [label for _, label in ticks] == ["00:05", "00:10", "00:15", "00:20", "00:25", "00:30", "00:35", "00:40"]
    # Across the 2025-03-30 spring-forward in Berlin (02:00 -> 03:00) the labels stay on the local hour.
    berlin = ZoneInfo("Europe/Berlin")
    night = datetime(2025, 3, 29, 22, 0, tzinfo=berlin)
    labels = [label for _, label in time_ticks(night, night.astimezone(UTC) + timedelta(hours=8), berlin)]
    assert labels == ["22:00", "23:00", "00:00", "01:00", "03:00", "04:00", "05:00", "06:00", "07:00"]
    with pytest.raises(ValueError, match="timezone-aware"):
        time_ticks(datetime(2025, 1, 1), datetime(2025, 1, 2), UTC)


def test_two_stage_hypnogram_has_two_lanes() -> None:
    root = parse(hypnogram_svg([0, 0, 1, 1, 1, 0], datetime(2025, 1, 1, tzinfo=UTC), UTC, two_stage=True))
    lanes = [r for r in root.iter(f"{NS}rect") if r.get("class") == "lane"]
    assert len(lanes) == 2
    assert root.get("data-scheme") == "2-stage"
    labels = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "axis-label"]
    assert labels == ["Wake", "Sleep"]


def test_empty_hypnogram_says_so() -> None:
    root = parse(hypnogram_svg([], datetime(2025, 1, 1, tzinfo=UTC), UTC))
    assert root.get("data-epochs") == "0"
    assert "No sleep stages yet" in ET.tostring(root, encoding="unicode")


def test_snoring_timeline_draws_snoring_runs_only() -> None:
    snoring = [0] * 10 + [1] * 3 + [0] * 5 + [1] + [-1] * 2 + [0] * 4
    root = parse(snoring_svg(snoring, datetime(2025, 1, 1, 1, tzinfo=UTC), UTC))
    rects = runs_of(root)
    assert [r.get("class") for r in rects] == ["run snore", "run snore", "run s-1"]
    assert root.get("data-snoring-runs") == "2"
    assert root.get("data-epochs") == str(len(snoring))
    assert float(rects[1].get("width", "0")) >= 0.8  # a single epoch stays visible


def test_usage_chart_stacks_valid_invalid_pending() -> None:
    days = [
        DayUsage(date(2025, 1, 1) + timedelta(days=i), valid=i % 3, invalid=i % 2, hours=1.5, pending=0)
        for i in range(30)
    ]
    days[-1] = DayUsage(days[-1].day, 2, 1, 20.0, pending=1)
    root = parse(usage_svg(days))
    groups = [g for g in root.iter(f"{NS}g") if g.get("class") == "day"]
    assert len(groups) == 30
    assert root.get("data-sessions") == str(sum(d.total for d in days))
    last = groups[-1]
    classes = [r.get("class") for r in last.iter(f"{NS}rect")]
    assert classes == ["hit", "bar valid", "bar invalid", "bar pending"]
    bars = [r for r in last.iter(f"{NS}rect") if r.get("class") != "hit"]
    heights = [float(r.get("height", "0")) for r in bars]
    assert heights[0] == pytest.approx(2 * heights[1], rel=1e-3)
    title = last.find(f"{NS}title")
    assert title is not None and title.text is not None and "2 valid, 1 invalid, 1 in progress" in title.text
    # Y axis from 0 to a round maximum at or above the highest day.
    assert tick_labels(root)[:5] == ["0", "1", "2", "3", "4"]


def test_bar_chart_skips_missing_values_and_draws_average() -> None:
    nights = [NightBar(f"01-{i:02d}", None if i == 3 else 6.0 + i / 2, f"night {i}") for i in range(1, 8)]
    root = parse(bar_chart_svg(nights, fmt=lambda v: f"{v:g} h", average=7.5))
    bars = [r for r in root.iter(f"{NS}rect") if r.get("class") == "bar"]
    assert len(bars) == 6 and root.get("data-bars") == "6" and root.get("data-nights") == "7"
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights == sorted(heights)
    assert any(line.get("class") == "average" for line in root.iter(f"{NS}line"))
    assert "10 h" in tick_labels(root)  # nice maximum above 9.5 h


def test_stage_shares_four_and_two_stage() -> None:
    nights = [
        NightStages("01-01", wake=0.1, light=0.5, deep=0.2, rem=0.2),
        NightStages("01-02", wake=0.2, light=None, deep=None, rem=None, sleep=0.8),
    ]
    root = parse(stage_shares_svg(nights, height=200))
    groups = [g for g in root.iter(f"{NS}g") if g.get("class") == "night"]
    four = [r.get("class") for r in groups[0].iter(f"{NS}rect")]
    two = [r.get("class") for r in groups[1].iter(f"{NS}rect")]
    assert four == ["seg s2", "seg s1", "seg s3", "seg s0"]
    assert two == ["seg s0", "seg s1"]
    total = sum(float(r.get("height", "0")) for r in groups[0].iter(f"{NS}rect"))
    assert total == pytest.approx(200 - 8 - 24, abs=0.05)


def test_format_duration() -> None:
    assert format_duration(None) == "—"
    assert format_duration(30) == "30s"
    assert format_duration(90) == "1m 30s"
    assert format_duration(600) == "10m"
    assert format_duration(19380) == "5h 23m"


def test_titles_are_escaped() -> None:
    root = parse(bar_chart_svg([NightBar("<b>", 1.0, "a < b & c")]))
    assert root.find(f".//{NS}title") is not None

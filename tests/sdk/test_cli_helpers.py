"""CLI pieces that need no server: clock parsing, error lines, the live view, settings resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from sleeptrack.analysis import SAMPLES_PER_EPOCH
from sleeptrack.cli import app
from sleeptrack.cli._sdk_opts import describe_error
from sleeptrack.cli._track import LiveListener, live_view, parse_clock
from sleeptrack.sdk import (
    ApiConnectionError,
    ApiStatusError,
    AsleepConfig,
    AsleepErrorCode,
    IteratorSource,
    SleepTrackingManager,
)

from ._fake_api import API_KEY, FakeApi


def test_parse_clock() -> None:
    seoul = ZoneInfo("Asia/Seoul")
    now = datetime(2025, 1, 15, 22, 30, tzinfo=seoul)
    assert parse_clock("23:00", seoul, now) == datetime(2025, 1, 15, 23, 0, tzinfo=seoul)
    assert parse_clock("07:00", seoul, now) == datetime(2025, 1, 16, 7, 0, tzinfo=seoul)
    assert parse_clock("22:30", seoul, now) == datetime(2025, 1, 16, 22, 30, tzinfo=seoul)
    stop = parse_clock("07:00", seoul, parse_clock("23:00", seoul, now))
    assert stop - datetime(2025, 1, 15, 23, 0, tzinfo=seoul) == timedelta(hours=8)
    assert parse_clock("2025-01-16T06:00:00+00:00", seoul, now) == datetime(2025, 1, 16, 6, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_clock("25:99", seoul, now)
    with pytest.raises(ValueError):
        parse_clock("tomorrow", seoul, now)


def test_error_lines() -> None:
    down = ApiConnectionError(AsleepErrorCode.ERR_INIT_FAILED, "network error: connection refused")
    assert "is the server running" in describe_error(down)
    detail = "previous sleep session is not closed yet"
    conflict = ApiStatusError(AsleepErrorCode.ERR_CREATE_CONFLICT, detail, status=409)
    assert "ERR_CREATE_CONFLICT 22409" in describe_error(conflict) and "--on-unfinished" in describe_error(conflict)


def test_live_view_renders(tmp_path: Path) -> None:
    api = FakeApi()
    api.stages = lambda n: [0, 1, 2, 3] * (n // 4) + [1] * (n % 4)
    config = AsleepConfig(API_KEY, api.user(), "http://t.test", spool_dir=tmp_path)
    chunks = [(0.05 * np.random.default_rng(i).standard_normal(SAMPLES_PER_EPOCH)).astype(np.float32) for i in range(4)]
    listener = LiveListener()
    source = IteratorSource(chunks)
    m = SleepTrackingManager(config, listener, source=source, transport=api.transport(), realtime_every=2)
    m.start()
    assert m.wait(60)
    console = Console(record=True, width=100)
    console.print(live_view(m, listener, "test source", 0.0, 60))
    text = console.export_text()
    assert "4 uploaded" in text and "test source" in text and "closed" in text
    assert "real-time stage" in text and "Wake" in text  # the hypnogram rows


def test_commands_fail_cleanly_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLEEPTRACK_API_KEY", raising=False)
    monkeypatch.setenv("SLEEPTRACK_CONFIG", str(tmp_path / "none.toml"))
    runner = CliRunner()
    for args in (["report", "20250101000000_abcde"], ["sessions"], ["track", "--simulate", "0.1"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "no API key" in result.output, (args, result.output)


def test_track_needs_exactly_one_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLEEPTRACK_API_KEY", "k")
    monkeypatch.setenv("SLEEPTRACK_CONFIG", str(tmp_path / "none.toml"))
    runner = CliRunner()
    result = runner.invoke(app, ["track"])
    assert result.exit_code == 1 and "choose one audio source" in result.output
    result = runner.invoke(app, ["track", "--mic", "--simulate", "1"])
    assert result.exit_code == 1 and "choose one audio source" in result.output
    result = runner.invoke(app, ["track", str(tmp_path / "missing.wav")])
    assert result.exit_code == 1 and "not found" in result.output
    result = runner.invoke(app, ["track", "--simulate", "1", "--start-at", "25:00"])
    assert result.exit_code == 1 and "clock time" in result.output


def test_agreement_table_says_when_the_truth_has_no_snoring() -> None:
    from sleeptrack.analysis import Hypnogram
    from sleeptrack.cli._track import agreement_table

    start = datetime(2025, 1, 15, 23, tzinfo=UTC)
    stages = [0, 1, 1, 2, 2, 1, 3, 3]

    def text(truth_snore: list[int], measured_snore: list[int]) -> str:
        truth = Hypnogram(stages, start, snoring=truth_snore)
        measured = Hypnogram(stages, start, snoring=measured_snore)
        console = Console(width=100, record=True)
        console.print(agreement_table(truth, measured))
        return console.export_text()

    quiet = text([0] * 8, [0, 0, 0, 1, 0, 0, 0, 0])
    assert "none in the truth, 1 epoch called snoring" in quiet and "snoring F1" not in quiet
    snorer = text([0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0])
    assert "snoring F1" in snorer and "0.67" in snorer

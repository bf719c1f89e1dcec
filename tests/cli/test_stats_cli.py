from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sleeptrack.cli import app
from tests.analysis.test_doc_vectors import average_example_session_stages, webhook_example_stages

runner = CliRunner()


def test_stats_prints_the_documented_stat_object(tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text(json.dumps(webhook_example_stages()))
    (tmp_path / "s.json").write_text(json.dumps([0] * 120))
    result = runner.invoke(
        app,
        ["stats", str(tmp_path / "h.json"), "--start", "2025-01-15T02:50:29+00:00", "--end",
         "2025-01-15T03:50:29+00:00", "--snoring", str(tmp_path / "s.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stat = json.loads(result.stdout)
    assert stat["sleep_time"] == "2025-01-15T03:05:29+00:00"
    assert (stat["time_in_sleep_period"], stat["waso_count"], stat["sleep_ratio"]) == (1260, 1, 0.86)
    assert (stat["time_in_no_snoring"], stat["snoring_count"]) == (1260, 0)


def test_stats_timezone_and_basic_plan(tmp_path: Path) -> None:
    stages, snoring = average_example_session_stages()
    (tmp_path / "h.json").write_text(json.dumps({"stages": stages}))
    (tmp_path / "s.json").write_text(json.dumps(snoring))
    args = [
        "stats",
        str(tmp_path / "h.json"),
        "--start",
        "2025-01-04T18:00:01+00:00",
        "--timezone",
        "Asia/Seoul",
    ]
    result = runner.invoke(app, [*args, "--plan", "basic", "--snoring", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    stat = json.loads(result.stdout)
    assert stat["sleep_time"] == "2025-01-05T03:00:01+09:00"
    assert stat["time_in_deep"] is None and stat["rem_latency"] is None and stat["time_in_snoring"] is None
    assert stat["time_in_sleep"] == 5370


def test_stats_report_flag_prints_the_whole_result(tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text(json.dumps([0] * 30))
    result = runner.invoke(app, ["stats", str(tmp_path / "h.json"), "--start", "2025-01-01T00:00:00Z", "--report"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["peculiarities"] == ["NEVER_SLEPT", "NO_BREATHING_STABILITY"]
    assert report["stat"]["sleep_latency"] is None


def test_stats_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[0, 1, 7]")
    cases = {
        "stage codes [7]": ["stats", str(bad), "--start", "2025-01-01T00:00:00Z"],
        "not found": ["stats", str(tmp_path / "missing.json"), "--start", "2025-01-01T00:00:00Z"],
        "--start is required": ["stats", str(bad)],
        "unknown time zone": [
            "stats",
            str(bad),
            "--start",
            "2025-01-01T00:00:00Z",
            "--timezone",
            "Moon/Base",
        ],
        "not an ISO-8601": ["stats", str(bad), "--start", "yesterday"],
    }
    for message, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (message, result.output)
        assert message in result.stderr, (message, result.stderr)
    short = tmp_path / "short.json"
    short.write_text("[1, 1, 1]")
    result = runner.invoke(app, ["stats", str(short), "--start", "2025-01-01T00:00:00Z"])
    assert result.exit_code == 1 and "TOO_SHORT_FOR_ANALYSIS" in result.stderr


def test_help_lists_commands_with_help_text() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "stats" in result.stdout and "Stat object" in result.stdout

"""``sleeptrack simulate``: files, summary, batches and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner, Result

from sleeptrack.analysis import SAMPLES_PER_EPOCH
from sleeptrack.cli import app
from sleeptrack.sim import NightConfig, NightSimulator, NightTruth


def _run(*args: str) -> Result:
    """Invoke ``sleeptrack simulate`` (the app is a group once other commands are registered)."""
    group = isinstance(typer.main.get_command(app), typer.core.TyperGroup)
    return CliRunner().invoke(app, ["simulate", *args] if group else list(args), env={"COLUMNS": "200"})


def _said(text: str) -> str:
    return " ".join(text.split())


def test_simulate_is_registered_with_help() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for option in (
        "--hours",
        "--seed",
        "--out",
        "--truth",
        "--start",
        "--timezone",
        "--split",
        "--hypnogram",
    ):
        assert option in result.output
    for option in (
        "--snorer",
        "--no-snorer",
        "--noise",
        "--snr",
        "--count",
        "--out-dir",
        "--fit-hypnogram-model",
    ):
        assert option in result.output


def test_one_night_with_summary(tmp_path: Path) -> None:
    out = tmp_path / "night.flac"
    truth_path = tmp_path / "truth" / "night.json"
    result = _run(
        "--hours", "0.1", "--seed", "7", "--out", str(out), "--truth", str(truth_path),
        "--start", "2025-02-01T22:15", "--timezone", "Asia/Seoul",
        "--snorer", "--noise", "rain", "--snr", "6",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stages" in result.output
    assert "rain" in result.output
    assert "snorer" in result.output
    truth = NightTruth.load(truth_path)
    assert truth.start_time.isoformat() == "2025-02-01T22:15:00+09:00"
    assert truth.timezone == "Asia/Seoul"
    assert truth.profile.noise == "rain"
    assert truth.profile.snr_db == 6.0
    assert truth.profile.snorer
    data, rate = sf.read(out, dtype="float32")
    assert rate == 16_000
    assert data.size == truth.n_epochs * SAMPLES_PER_EPOCH == 12 * SAMPLES_PER_EPOCH
    same = NightSimulator(
        NightConfig(
            hours=0.1,
            seed=7,
            start_time="2025-02-01T22:15",
            timezone="Asia/Seoul",
            snorer=True,
            noise="rain",
            snr_db=6,
        )
    )
    assert same.truth == truth, "the CLI and the API make the same night"
    assert np.array_equal(data[:SAMPLES_PER_EPOCH], next(same.iter_epochs()))


def test_count_writes_night_pairs_into_a_folder(tmp_path: Path) -> None:
    result = _run("--hours", "0.05", "--seed", "3", "--count", "2", "--out-dir", str(tmp_path / "n"), "--no-snorer")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "n").iterdir())
    assert names == ["night-3.flac", "night-3.json", "night-4.flac", "night-4.json"]
    seeds = [json.loads((tmp_path / "n" / f"night-{s}.json").read_text())["seed"] for s in (3, 4)]
    assert seeds == [3, 4]
    assert "2 simulated nights" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0.1"], "say where to write"),
        (["--out", "night.aiff"], "use a .flac, .wav, .ogg or .mp3 name"),
        (["--hours", "0", "--out", "n.flac"], "hours must be between"),
        (["--hours", "30", "--out", "n.flac"], "hours must be between"),
        (["--seed", "-2", "--out", "n.flac"], "seed must be"),
        (["--count", "2", "--out", "n.flac"], "--count needs --out-dir"),
        (["--out-dir", "d", "--out", "n.flac"], "do not combine"),
        (["--start", "tonight", "--out", "n.flac"], "not an ISO-8601 time"),
        (["--timezone", "Moon/Base", "--out", "n.flac"], "unknown time zone"),
        (["--snr", "99", "--out", "n.flac"], "snr_db must be between"),
    ],
)
def test_bad_options_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run(*args)
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert message in _said(result.stderr)
    assert "Traceback" not in result.output + result.stderr
    assert not list(tmp_path.glob("*.flac"))


def test_unknown_choice_is_a_usage_error() -> None:
    result = _run("--noise", "ocean", "--out", "n.flac")
    assert result.exit_code == 2
    assert "ocean" in result.output + result.stderr


def test_unknown_hypnogram_fails_clearly(shared_data: Path, tmp_path: Path) -> None:
    result = _run("--hypnogram", "hypnograms/mass/nobody.json", "--out", str(tmp_path / "n.flac"))
    assert result.exit_code == 1
    assert "unknown hypnogram" in _said(result.stderr)


def test_fit_hypnogram_model_writes_a_model(shared_data: Path, tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    result = _run("--fit-hypnogram-model", "--out", str(target))
    assert result.exit_code == 0, result.output
    model = json.loads(target.read_text())
    assert model["fitted_on"]["split"] == "train"
    assert model["name"] == "hypnogram_model_v1"
    assert "train-side hypnograms" in result.output


def test_a_failed_write_says_which_file_and_the_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """libsndfile's bare "System error." (a full disk, typically) becomes a message that names the file."""

    def full_disk(self: sf.SoundFile, data: object) -> None:
        raise sf.LibsndfileError(2)  # SFE_SYSTEM, what libsndfile reports when write(2) fails

    monkeypatch.setattr(sf.SoundFile, "write", full_disk)
    out = tmp_path / "night.flac"
    result = _run("--hours", "0.05", "--seed", "3", "--out", str(out))
    assert result.exit_code == 1
    said = _said(result.output)
    assert f"could not write {out}" in said and "System error" in said and "MB are free on that disk" in said
    assert list(tmp_path.iterdir()) == [], "no partial audio file is left behind"

"""analyze, evaluate and train from the command line, on short simulated nights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sleeptrack.analysis import Engine, StageScheme, agreement, load_engine
from sleeptrack.analysis._train import CAUSAL_WEIGHTS, _chunk_matrix, _predict, tune_realtime
from sleeptrack.cli import app
from sleeptrack.sim import NightConfig, simulate_night
from sleeptrack.training import find_night_pairs, recording_night

# The two 2.5-hour nights (~290 MB of FLAC) are made once, on one worker, not once per xdist worker.
pytestmark = pytest.mark.xdist_group("engine-cli-nights")

runner = CliRunner()


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 2.5-hour test-split nights written as night-<seed>.flac + .json."""
    folder = tmp_path_factory.mktemp("nights")
    for seed in (900_101, 900_102):
        simulate_night(
            NightConfig(hours=2.5, seed=seed, split="test"),
            folder / f"night-{seed}.flac",
            folder / f"night-{seed}.json",
        )
    return folder


def test_analyze_prints_the_data_api_result(nights: Path, tmp_path: Path) -> None:
    figure = tmp_path / "night.png"
    result = runner.invoke(
        app,
        ["analyze", str(nights / "night-900101.flac"), "--start", "2025-01-15T23:00:00+09:00", "--timezone",
         "Asia/Seoul", "--json", "--plot", str(figure)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"timezone", "peculiarities", "missing_data_ratio", "session", "stat", "model_version"}
    assert doc["timezone"] == "Asia/Seoul"
    assert doc["session"]["start_time"] == "2025-01-15T23:00:00+09:00"
    assert doc["session"]["state"] == "COMPLETE"
    assert len(doc["session"]["sleep_stages"]) == 300
    assert doc["stat"]["time_in_bed"] == 9000
    assert doc["model_version"] == "sleeptrack-engine-1"
    assert figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_human_report(nights: Path) -> None:
    result = runner.invoke(app, ["analyze", str(nights / "night-900102.flac"), "--start", "2025-01-15T23:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "Sleep efficiency" in result.stdout
    assert "Deep" in result.stdout and "REM" in result.stdout


def test_analyze_rejects_bad_input_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    result = runner.invoke(app, ["analyze", str(bad)])
    assert result.exit_code == 1
    assert "could not decode the audio" in result.stderr
    result = runner.invoke(app, ["analyze", str(tmp_path / "missing.flac")])
    assert result.exit_code == 1 and "not found" in result.stderr
    result = runner.invoke(app, ["analyze", str(bad), "--timezone", "Nowhere/Land"])
    assert result.exit_code == 1 and "unknown time zone" in result.stderr


def test_evaluate_reports_agreement(nights: Path, tmp_path: Path) -> None:
    figure = tmp_path / "agreement.png"
    result = runner.invoke(app, ["evaluate", "--nights", str(nights), "--json", "--plot", str(figure)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stages"]["n_epochs"] == 600
    assert 0.0 <= report["stages"]["accuracy"] <= 1.0
    assert set(report["nights"]) == {"tst", "sleep_efficiency", "waso", "sleep_latency"}
    assert report["nights"]["tst"]["n_nights"] == 2
    assert len(report["stages"]["confusion"]) == 4
    assert figure.stat().st_size > 10_000
    human = runner.invoke(app, ["evaluate", "--nights", str(nights)])
    assert human.exit_code == 0
    assert "Cohen's kappa" in human.stdout and "Bland" in human.stdout


def test_train_on_your_own_scored_nights(nights: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = runner.invoke(
        app, ["train", "--nights", str(nights), "--simulated", "0", "--out", str(out), "--version", "mine-1"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "mine-1.npz").is_file()
    meta = json.loads((out / "mine-1.json").read_text())
    assert (
        meta["training"]["command"]
        == f"sleeptrack train --nights {nights} --simulated 0 --validation 0 --version mine-1"
    )
    assert meta["training"]["sources"]["user_nights"]["names"] == ["night-900101", "night-900102"]
    assert set(meta["training"]["libraries"]) == {"numpy", "scipy", "scikit-learn"}
    assert meta["training"]["libraries"]["scikit-learn"][0].isdigit()
    analysed = runner.invoke(
        app, ["analyze", str(nights / "night-900101.flac"), "--json", "--model", str(out / "mine-1.npz")]
    )
    assert analysed.exit_code == 0, analysed.output
    assert json.loads(analysed.stdout)["model_version"] == "mine-1"


def test_train_refuses_nothing_to_train_on(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--simulated", "0"])
    assert result.exit_code == 1 and "nothing to train on" in result.stderr
    result = runner.invoke(app, ["train", "--nights", str(tmp_path)])
    assert result.exit_code == 1 and "no recording" in result.stderr


def test_real_time_weights_are_tuned_on_validation_nights(nights: Path) -> None:
    """The last step of training (and of scripts/tune_realtime.py): the best real-time weight by kappa wins,
    and the full night's decoding does not change."""
    val = [recording_night(pair) for pair in find_night_pairs(nights)]
    engine = load_engine()
    chunks = [_chunk_matrix(n, engine.snore_window) for n in val]
    tuned, weights = tune_realtime(engine, chunks, val)
    assert set(weights) == {"stages_realtime", "snoring_realtime"}
    assert tuned.stage_chain.causal_weight == weights["stages_realtime"] in CAUSAL_WEIGHTS

    def realtime_kappa(candidate: Engine) -> float:
        return agreement(_predict(candidate, chunks, val, causal=True)).stages.kappa

    best = realtime_kappa(tuned)
    assert all(best >= realtime_kappa(engine.with_causal_weights(w, 1.0)) for w in CAUSAL_WEIGHTS)
    for c, night in zip(chunks, val, strict=True):
        assert np.array_equal(
            tuned.full_night(c, night.valid, StageScheme.FOUR).stages,
            engine.full_night(c, night.valid, StageScheme.FOUR).stages,
        )

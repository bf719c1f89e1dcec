"""The truth JSON: contents, consistency and an exact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sleeptrack.analysis import EPOCH_SECONDS, Hypnogram
from sleeptrack.sim import NightTruth

from ._nights import night

REQUIRED = {
    "format_version",
    "start_time",
    "timezone",
    "seed",
    "hours",
    "split",
    "sleep_stages",
    "snoring_stages",
    "events",
    "profile",
    "source",
    "latent",
    "breaths",
    "snores",
}
LATENT = {
    "breath_rate_bpm",
    "breath_interval_cv",
    "breath_level_db",
    "noise_level_db",
    "snore_count",
    "snr_db",
}


def test_truth_json_round_trip_is_exact(tmp_path: Path) -> None:
    truth = night(seed=3, hours=1.0, snorer=True).truth
    again = NightTruth.from_json(truth.to_json())
    assert again == truth
    assert again.to_json() == truth.to_json()
    path = truth.save(tmp_path / "t.json")
    assert NightTruth.load(path) == truth
    assert NightTruth.from_dict(json.loads(path.read_text())).hypnogram == truth.hypnogram


def test_truth_json_holds_what_the_engine_and_audits_need() -> None:
    truth = night(seed=3, hours=1.0, snorer=True).truth
    data = truth.to_dict()
    assert set(data) >= REQUIRED
    assert set(data["latent"]) >= LATENT
    assert data["start_time"] == "2025-01-15T23:00:00+00:00"
    assert data["format_version"] == 1
    n = truth.n_epochs
    assert len(data["sleep_stages"]) == len(data["snoring_stages"]) == n == 120
    assert set(data["sleep_stages"]) <= {0, 1, 2, 3}
    assert set(data["snoring_stages"]) <= {0, 1}
    assert all(len(v) == n for v in data["latent"].values())
    for event in data["events"]:
        assert {"type", "start_s", "duration_s", "level_db"} <= set(event)
        assert 0 <= event["start_s"] < n * EPOCH_SECONDS
        assert event["duration_s"] > 0
    assert {"hypnograms", "hypnogram_kind", "split", "clips"} <= set(data["source"])
    assert data["profile"]["snorer"] is True


def test_hypnogram_object_carries_stages_snoring_and_time() -> None:
    truth = night(seed=3, hours=1.0, snorer=True).truth
    hyp = truth.hypnogram
    assert isinstance(hyp, Hypnogram)
    assert hyp.snoring is not None
    assert hyp.n_epochs == truth.n_epochs
    assert hyp.timezone == "UTC"
    assert hyp.start_time == truth.start_time
    assert np.array_equal(hyp.stages, truth.sleep_stages)


def test_tables_are_consistent_with_the_stages() -> None:
    truth = night(seed=4, hours=2.0, snorer=True).truth
    stages, snoring = truth.sleep_stages, truth.snoring_stages
    lat = truth.latent
    onsets = truth.breaths.onset_s
    assert np.all(np.diff(onsets) > 0)
    assert onsets[0] >= 0
    assert onsets[-1] < truth.n_epochs * EPOCH_SECONDS
    assert np.all(truth.breaths.exhale_onset_s >= onsets + truth.breaths.inhale_s - 1e-3)
    ends = truth.breaths.exhale_onset_s + truth.breaths.exhale_s
    assert np.all(ends[:-1] <= onsets[1:] + 1e-3), "breaths never overlap (sighs included)"
    sighs = [e for e in truth.events if e.type == "sigh"]
    assert len(sighs) == int(truth.breaths.sigh.sum())
    assert {e.start_s for e in sighs} <= set(onsets[truth.breaths.sigh == 1].tolist())
    assert np.all(snoring[stages == 0] == 0), "nobody snores awake"
    assert np.all(lat.snore_count[snoring == 1] >= 2)
    assert lat.breath_count.sum() == len(truth.breaths)
    assert lat.snore_count.sum() == len(truth.snores)
    assert np.allclose(lat.snr_db, lat.breath_level_db - lat.noise_level_db, atol=0.02)
    # every snore rides on an inhalation of a sleep epoch
    breath = truth.snores.breath.astype(int)
    assert np.all(truth.snores.onset_s >= onsets[breath] - 1e-3)
    assert np.all(truth.snores.onset_s <= onsets[breath] + truth.breaths.inhale_s[breath])
    assert np.all(stages[(truth.snores.onset_s // EPOCH_SECONDS).astype(int)] > 0)

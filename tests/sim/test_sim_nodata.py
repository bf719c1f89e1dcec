"""Product code works without ../shared/data: the packaged model drives the stages, sounds are synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from sleeptrack._data import shared_data_dir
from sleeptrack.analysis import SAMPLES_PER_EPOCH
from sleeptrack.sim import NightConfig, NightSimulator, SimulationError


@pytest.fixture
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPTRACK_SHARED_DATA", "")
    assert shared_data_dir() is None


@pytest.mark.usefixtures("no_data")
def test_a_night_without_the_data_folder_is_fully_synthetic() -> None:
    sim = NightSimulator(NightConfig(hours=0.2, seed=12, snorer=True, split="test"))
    truth = sim.truth
    assert truth.source["data_folder"] is False
    assert truth.source["hypnogram_kind"] == "model"
    assert truth.source["hypnograms"] == ["model:hypnogram_model_v1"]
    assert all(i.startswith("synthetic:") for ids in truth.source["clips"].values() for i in ids)
    assert truth.profile.breath_source == truth.profile.snore_source == "synthetic"
    blocks = list(sim.iter_epochs())
    assert len(blocks) == truth.n_epochs == 24
    assert all(b.shape == (SAMPLES_PER_EPOCH,) for b in blocks)
    assert np.all(np.isfinite(np.concatenate(blocks)))
    assert float(np.std(blocks[-1])) > 0


@pytest.mark.usefixtures("no_data")
def test_without_data_a_real_hypnogram_cannot_be_asked_for() -> None:
    with pytest.raises(SimulationError, match="needs the real data folder"):
        NightSimulator(NightConfig(hours=0.2, hypnogram_id="hypnograms/mass/01-03-0001 PSG.json"))


@pytest.mark.usefixtures("no_data")
def test_synthetic_nights_are_deterministic_too() -> None:
    a = NightSimulator(NightConfig(hours=0.05, seed=3, snorer=True))
    b = NightSimulator(NightConfig(hours=0.05, seed=3, snorer=True))
    assert a.truth == b.truth
    assert all(np.array_equal(x, y) for x, y in zip(a.iter_epochs(), b.iter_epochs(), strict=True))

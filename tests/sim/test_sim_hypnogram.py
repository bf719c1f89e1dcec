"""Sleep architecture of simulated nights: real hypnograms warped and perturbed, or the packaged model.

Reference ranges are deliberately broad (healthy adults, Ohayon et al., SLEEP 2004; Carskadon & Dement,
Principles and Practice of Sleep Medicine): the sources include older sleepers (Sleep-EDF) and apnea
patients (DOD-O), and the simulator must keep their variety, not an idealised night.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from sleeptrack.sim import (
    NightConfig,
    NightSimulator,
    NightTruth,
    SimulationError,
    fit_hypnogram_model,
    packaged_model,
    packaged_model_path,
)

from ._nights import truths

NIGHTS = range(100, 124)


def _architecture(nights: list[NightTruth]) -> dict[str, float]:
    shares, rem_latency, deep_first_half = [], [], []
    for t in nights:
        stages = t.sleep_stages
        shares.append([np.mean(stages == k) for k in range(4)])
        asleep = np.flatnonzero(stages > 0)
        period = stages[asleep[0] : asleep[-1] + 1]
        rem = np.flatnonzero(period == 3)
        if rem.size:
            rem_latency.append(rem[0] / 2.0)
        deep = np.flatnonzero(period == 2)
        if deep.size:
            deep_first_half.append(np.mean(deep < period.size / 2))
    mean = np.mean(shares, axis=0)
    return {
        "wake": float(mean[0]),
        "light": float(mean[1]),
        "deep": float(mean[2]),
        "rem": float(mean[3]),
        "rem_latency_min": float(np.median(rem_latency)),
        "deep_first_half": float(np.mean(deep_first_half)),
    }


def _check(arch: dict[str, float]) -> None:
    assert 0.03 <= arch["wake"] <= 0.25, arch
    assert 0.45 <= arch["light"] <= 0.70, arch
    assert 0.05 <= arch["deep"] <= 0.25, arch
    assert 0.12 <= arch["rem"] <= 0.28, arch
    assert 60.0 <= arch["rem_latency_min"] <= 150.0, arch
    assert arch["deep_first_half"] >= 0.65, arch


def test_real_hypnogram_nights_have_plausible_architecture(shared_data: Path) -> None:
    nights = truths(NIGHTS, hours=8.0)
    assert all(t.source["hypnogram_kind"] == "real" for t in nights)
    _check(_architecture(nights))


def test_model_nights_have_plausible_architecture() -> None:
    _check(_architecture(truths(NIGHTS, hours=8.0, hypnogram_id="model")))


def test_sleep_latency_and_final_wake_bracket_the_night() -> None:
    for t in truths(range(10), hours=8.0):
        lat, final = t.source["sleep_latency_epochs"], t.source["final_wake_epochs"]
        assert 2 <= lat <= 120
        assert 1 <= final <= 60
        assert np.all(t.sleep_stages[:lat] == 0)
        assert t.sleep_stages[lat] > 0
        assert np.all(t.sleep_stages[t.n_epochs - final :] == 0)


def test_nights_from_one_hypnogram_do_not_repeat(shared_data: Path) -> None:
    hid = "hypnograms/mass/01-03-0001 PSG.json"
    nights = [NightSimulator(NightConfig(hours=8.0, seed=s, hypnogram_id=hid)).truth for s in range(4)]
    assert all(t.source["hypnograms"] == [hid] for t in nights)
    for a, b in itertools.pairwise(nights):
        assert np.mean(a.sleep_stages == b.sleep_stages) < 0.95
    # ... yet they stay recognisably the same night (warping keeps the order of its cycles)
    shares = np.array([[np.mean(t.sleep_stages == k) for k in range(4)] for t in nights])
    assert np.all(shares.std(axis=0) < 0.06)


def test_hours_are_honoured_by_warping_and_splicing(shared_data: Path) -> None:
    for hours in (0.5, 3.0, 12.0):
        t = NightSimulator(NightConfig(hours=hours, seed=3)).truth
        assert t.n_epochs == round(hours * 120)
        assert np.mean(t.sleep_stages > 0) > 0.4
    long_night = NightSimulator(NightConfig(hours=14.0, seed=3)).truth
    assert len(long_night.source["hypnograms"]) >= 2, "a 14-h night needs cycles of a second night"


def test_pinned_hypnogram_must_exist_and_match_the_split(shared_data: Path) -> None:
    with pytest.raises(SimulationError, match="unknown hypnogram"):
        NightSimulator(NightConfig(hours=1.0, hypnogram_id="hypnograms/mass/nope.json"))
    from sleeptrack._data import data_split
    from sleeptrack.sim._hypnograms import hypnogram_ids

    test_side = next(h for h in hypnogram_ids(shared_data) if data_split(h) == "test")
    with pytest.raises(SimulationError, match="test side of the data split"):
        NightSimulator(NightConfig(hours=1.0, split="train", hypnogram_id=test_side))
    short_id = test_side.removeprefix("hypnograms/")
    t = NightSimulator(NightConfig(hours=1.0, split="test", hypnogram_id=short_id)).truth
    assert t.source["hypnograms"] == [test_side]


def test_packaged_model_is_what_the_fit_command_rebuilds(shared_data: Path) -> None:
    model = fit_hypnogram_model(shared_data, "train")
    shipped = json.loads(packaged_model_path().read_text())
    assert model.to_dict() == shipped, "rebuild with `sleeptrack simulate --fit-hypnogram-model`"
    assert shipped["fitted_on"]["split"] == "train"


def test_model_rows_are_distributions_and_samples_have_the_asked_length() -> None:
    model = packaged_model()
    assert np.allclose(model.transitions.sum(axis=2), 1.0)
    assert np.all(np.diagonal(model.transitions, axis1=1, axis2=2) == 0.0)
    assert np.all(np.diff(model.run_quantiles, axis=2) >= 0)
    rng = np.random.default_rng(0)
    for n in (1, 50, 900):
        period = model.sample(n, rng)
        assert period.size == n
        assert period[0] == 1
        assert set(np.unique(period)) <= {0, 1, 2, 3}

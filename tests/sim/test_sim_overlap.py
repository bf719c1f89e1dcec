"""Not easier than reality: one epoch's true breathing does not tell its stage well, yet the stages
shift the averages and temporal context helps (as in real recordings; sound-based staging agrees with
polysomnography on about 70 % of epochs, Hong et al., Nat. Sci. Sleep 2022)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from sleeptrack.sim import NightConfig, NightTruth
from sleeptrack.sim._profile import draw_profile
from sleeptrack.sim._rng import stream

from ._nights import GaussianNB, accuracy, breathing_features, truths

TRAIN = range(200, 216)
TEST = range(300, 312)


def _nights() -> tuple[list[NightTruth], list[NightTruth]]:
    return truths(TRAIN, hours=8.0, split="train"), truths(TEST, hours=8.0, split="test")


def _xy(nights: list[NightTruth], normalise: bool = False, context: int = 0) -> tuple[np.ndarray, np.ndarray]:
    xs = []
    for t in nights:
        x = breathing_features(t)
        if normalise:  # per-night z-score: removes the sleeper's baseline and the microphone gain
            x = (x - x.mean(axis=0)) / x.std(axis=0)
        if context:
            x = uniform_filter1d(x, 2 * context + 1, axis=0, mode="nearest")
        xs.append(x)
    return np.concatenate(xs), np.concatenate([t.sleep_stages for t in nights])


def test_one_epoch_of_true_breathing_does_not_separate_the_stages() -> None:
    train, test = _nights()
    for normalise in (False, True):
        x_train, y_train = _xy(train, normalise)
        x_test, y_test = _xy(test, normalise)
        acc, balanced = accuracy(GaussianNB().fit(x_train, y_train).predict(x_test), y_test)
        majority = max(np.mean(y_test == k) for k in range(4))
        assert acc < 0.75, f"one epoch separates the stages too well ({acc:.2f}, normalise={normalise})"
        assert balanced < 0.65, f"balanced accuracy {balanced:.2f} is too high (normalise={normalise})"
        assert acc > majority - 0.05, "…but it is not pure noise either"


def test_stages_still_differ_on_average() -> None:
    train, _ = _nights()
    x, y = _xy(train, normalise=True)
    rate, log_cv, level = (np.array([x[y == k, j].mean() for k in range(4)]) for j in range(3))
    wake, light, deep, rem = range(4)
    assert rate[rem] > rate[light] > rate[deep], rate
    assert log_cv[deep] < log_cv[light] < log_cv[rem], "regularity: deep > light > REM"
    assert log_cv[wake] > log_cv[light]
    assert level[deep] > level[light] > level[rem], "deep breaths are deeper, REM breaths shallower"


def test_temporal_context_makes_the_task_learnable() -> None:
    train, test = _nights()
    x_train, y_train = _xy(train)
    x_test, y_test = _xy(test)
    alone, _ = accuracy(GaussianNB().fit(x_train, y_train).predict(x_test), y_test)
    x_train, y_train = _xy(train, normalise=True, context=4)
    x_test, y_test = _xy(test, normalise=True, context=4)
    with_context, balanced = accuracy(GaussianNB().fit(x_train, y_train).predict(x_test), y_test)
    assert with_context > alone + 0.08, (alone, with_context)
    assert balanced > 0.6, balanced


def test_people_and_rooms_differ() -> None:
    nights = [draw_profile(NightConfig(seed=s), stream(s, "profile"), real_sounds=True) for s in range(400, 500)]
    rates = np.array([p.base_rate_bpm for p in nights])
    snr = np.array([p.snr_db for p in nights])
    assert rates.std() > 1.2
    assert rates.min() >= 9.0
    assert rates.max() <= 22.0
    assert 0.15 < np.mean([p.snorer for p in nights]) < 0.6
    assert len({p.noise for p in nights}) == 5
    assert np.mean(snr < 0) > 0.03, "some nights have breathing below the noise"
    assert np.mean(snr > 5) > 0.6, "most nights have audible breathing"

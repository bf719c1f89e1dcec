"""Small helpers shared by the simulator tests: cached nights and audio, a Gaussian naive Bayes."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis import SAMPLES_PER_EPOCH
from sleeptrack.sim import NightConfig, NightSimulator, NightTruth

Floats = npt.NDArray[np.float64]


def config(**options: Any) -> NightConfig:
    return NightConfig(**options)


@cache
def _night(items: tuple[tuple[str, Any], ...]) -> NightSimulator:
    return NightSimulator(NightConfig(**dict(items)))


def night(**options: Any) -> NightSimulator:
    """A simulator for these options, built once per test session (the data folder must not change)."""
    return _night(tuple(sorted(options.items())))


@cache
def _audio(items: tuple[tuple[str, Any], ...]) -> npt.NDArray[np.float32]:
    sim = _night(items)
    out = np.empty(sim.n_epochs * SAMPLES_PER_EPOCH, dtype=np.float32)
    for i, block in enumerate(sim.iter_epochs()):
        out[i * SAMPLES_PER_EPOCH : (i + 1) * SAMPLES_PER_EPOCH] = block
    return out


def audio(**options: Any) -> npt.NDArray[np.float32]:
    """The whole night's audio for these options (rendered once per session)."""
    return _audio(tuple(sorted(options.items())))


def truths(seeds: range, **options: Any) -> list[NightTruth]:
    return [night(seed=s, **options).truth for s in seeds]


def breathing_features(truth: NightTruth) -> Floats:
    """Per-epoch true breathing parameters: rate (bpm), log interval CV, level (dBFS)."""
    lat = truth.latent
    return np.stack([lat.breath_rate_bpm, np.log(lat.breath_interval_cv), lat.breath_level_db], axis=1)


class GaussianNB:
    """Gaussian naive Bayes in numpy (the tests do not depend on scikit-learn)."""

    def fit(self, X: Floats, y: npt.NDArray[np.integer[Any]]) -> GaussianNB:
        classes = np.unique(y)
        self.classes = classes
        self.mean = np.array([X[y == c].mean(axis=0) for c in classes])
        self.var = np.array([X[y == c].var(axis=0) + 1e-9 for c in classes])
        self.log_prior = np.log(np.array([np.mean(y == c) for c in classes]))
        return self

    def predict(self, X: Floats) -> npt.NDArray[np.integer[Any]]:
        ll = -0.5 * (((X[:, None, :] - self.mean) ** 2) / self.var + np.log(2 * np.pi * self.var)).sum(axis=2)
        return np.asarray(self.classes[np.argmax(ll + self.log_prior, axis=1)])


def accuracy(pred: npt.NDArray[np.integer[Any]], truth: npt.NDArray[np.integer[Any]]) -> tuple[float, float]:
    """(accuracy, balanced accuracy = mean per-class recall)."""
    recalls = [float(np.mean(pred[truth == c] == c)) for c in np.unique(truth)]
    return float(np.mean(pred == truth)), float(np.mean(recalls))


Band = tuple[float, float]


@cache
def _envelopes(items: tuple[tuple[str, Any], ...], bands: tuple[Band, ...]) -> dict[Band, Floats]:
    from sleeptrack.analysis import SAMPLE_RATE

    window = np.hanning(160)
    freq = np.fft.rfftfreq(160, 1 / SAMPLE_RATE)
    masks = [(freq >= lo) & (freq <= hi) for lo, hi in bands]
    frames: list[list[Floats]] = [[] for _ in bands]
    for block in _night(items).iter_epochs():
        power = np.abs(np.fft.rfft(block.reshape(-1, 160) * window, axis=1)) ** 2
        for j, mask in enumerate(masks):
            frames[j].append(power[:, mask].sum(axis=1))
    return {
        band: np.sqrt(np.convolve(np.concatenate(f), np.ones(4) / 4, mode="same"))
        for band, f in zip(bands, frames, strict=True)
    }


def envelopes(bands: tuple[Band, ...], **options: Any) -> dict[Band, Floats]:
    """Band RMS envelopes at 100 Hz (10-ms frames, smoothed over 40 ms) of a night, computed while
    streaming its audio (the whole night is never held)."""
    return _envelopes(tuple(sorted(options.items())), bands)

"""Snoring evidence in 1-second windows of the mel spectrogram.

A snore is a low-pitched, harmonic burst of about one second on an inhalation. Each 1-second window
(100 frames) is described by its spectral shape, its spread over time and a few contrasts; a small network
trained on real snoring and non-snoring clips (Khan 2019, ``../shared/data/snoring_clips``) and on
simulated nights gives the probability that the window holds a snore. An epoch holds 30 windows.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from ._features import HIGH, LOW, LOW_MID, MID

__all__ = ["WINDOW_FEATURE_COUNT", "WINDOW_FRAMES", "window_features"]

_F32 = npt.NDArray[np.float32]

#: Frames per window (1 second at 100 frames per second).
WINDOW_FRAMES: Final = 100
WINDOW_FEATURE_COUNT: Final = 64 * 3 + 9


def window_features(mel: _F32) -> _F32:
    """Features of the consecutive 1-second windows of ``mel`` (``(n_frames, 64)``, dB).

    Returns ``(n_frames // 100, 201)``: relative spectrum (64), per-band spread (64), per-band peak over
    mean (64), level mean / spread / range, spectral flux mean / spread, low − mid, low − high,
    mid − high and the low/high correlation over time.
    """
    n = mel.shape[0] // WINDOW_FRAMES
    if n == 0:
        return np.zeros((0, WINDOW_FEATURE_COUNT), dtype=np.float32)
    w = mel[: n * WINDOW_FRAMES].reshape(n, WINDOW_FRAMES, 64)
    band_mean = w.mean(axis=1)
    band_std = w.std(axis=1)
    band_peak = w.max(axis=1) - band_mean
    level = w.mean(axis=2)  # (n, 100)
    overall = level.mean(axis=1)
    rel = band_mean - overall[:, None]
    flux = np.maximum(np.diff(w, axis=1), 0.0).mean(axis=2)  # (n, 99)
    low = w[:, :, LOW].mean(axis=2)
    low_mid = w[:, :, LOW_MID].mean(axis=2)
    mid = w[:, :, MID].mean(axis=2)
    high = w[:, :, HIGH].mean(axis=2)
    lows = 0.5 * (low + low_mid)
    lc = lows - lows.mean(axis=1, keepdims=True)
    hc = high - high.mean(axis=1, keepdims=True)
    denom = np.sqrt((lc**2).sum(axis=1) * (hc**2).sum(axis=1))
    corr = np.where(denom > 1e-6, (lc * hc).sum(axis=1) / np.maximum(denom, 1e-6), 0.0)
    scalars = np.stack(
        [
            overall,
            level.std(axis=1),
            level.max(axis=1) - level.min(axis=1),
            flux.mean(axis=1),
            flux.std(axis=1),
            (lows - mid).mean(axis=1),
            (lows - high).mean(axis=1),
            (mid - high).mean(axis=1),
            corr,
        ],
        axis=1,
    )
    out: _F32 = np.concatenate([rel, band_std, band_peak, scalars], axis=1).astype(np.float32)
    return out

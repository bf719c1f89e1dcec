"""Breath timing across epochs: regularity measured over 1.5 and 2.5 minutes of breath envelope.

One epoch holds 5–10 breaths, too few to tell regular (deep sleep) from irregular (REM, wake) breathing
reliably. Joining the breath envelopes of neighbouring epochs gives 20–40 breaths. The breathing period comes
from the autocorrelation of the joined envelope (its peak height is itself a regularity measure); each
breath is then timed by one landmark per cycle, found at least 0.6 periods apart, and the variability of the
intervals is measured. Three landmarks are used because breath sounds differ: the quiet pause between
breaths (trough), the loudest moment (peak) and the steepest rise (onset).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

__all__ = ["BREATH_WINDOW_HALVES", "breath_window_stat_count", "breath_window_stats"]

_F64 = npt.NDArray[np.float64]

#: Half-widths (in epochs) of the windows: ±1 (1.5 min) and ±2 (2.5 min); causal windows of 3 and 5 epochs.
BREATH_WINDOW_HALVES: Final = (1, 2)
_STATS_PER_WINDOW: Final = 5
_RATE: Final = 10.0  # envelope samples per second
_MIN_LAG: Final = 25  # 2.5 s: shorter lags would be the inhale–exhale half period
_MAX_LAG: Final = 100  # 10 s
#: Interval variability reported when too few breaths are found to measure it.
_NO_RHYTHM_CV: Final = 0.6


def breath_window_stat_count() -> int:
    return len(BREATH_WINDOW_HALVES) * _STATS_PER_WINDOW


def _autocorrelation(x: _F64) -> _F64:
    x = x - x.mean()
    n = x.size
    nfft = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(x, nfft)
    ac = np.fft.irfft(spectrum * np.conj(spectrum), nfft)[: _MAX_LAG + 1]
    if ac[0] <= 1e-12:
        return np.zeros(_MAX_LAG + 1)
    ac = ac / np.maximum(n - np.arange(_MAX_LAG + 1), 1)
    out: _F64 = ac / ac[0]
    return out


def _interval_cv(landmarks: npt.NDArray[np.intp]) -> float:
    intervals = np.diff(landmarks).astype(np.float64)
    if intervals.size < 3:
        return _NO_RHYTHM_CV
    return float(intervals.std() / intervals.mean())


def _stats(envelope: _F64) -> tuple[float, float, float, float, float]:
    """ACF peak, breaths per minute, interval CV by trough, peak and onset landmarks."""
    if envelope.size < 2 * _MAX_LAG or np.std(envelope) < 1e-6:
        return 0.0, 0.0, _NO_RHYTHM_CV, _NO_RHYTHM_CV, _NO_RHYTHM_CV
    ac = _autocorrelation(envelope)
    lag = _MIN_LAG + int(np.argmax(ac[_MIN_LAG:]))
    spread = float(np.std(envelope))
    distance = max(2, int(0.6 * lag))
    smooth = uniform_filter1d(envelope, max(3, int(0.25 * lag)), mode="nearest")
    troughs, _ = find_peaks(-smooth, distance=distance, prominence=0.2 * spread)
    broad = uniform_filter1d(envelope, max(3, int(0.4 * lag)), mode="nearest")
    peaks, _ = find_peaks(broad, distance=distance, prominence=0.2 * spread)
    slope = np.diff(uniform_filter1d(envelope, max(3, int(0.15 * lag)), mode="nearest"))
    onsets, _ = find_peaks(slope, distance=distance, prominence=0.1 * float(np.std(slope)))
    return float(ac[lag]), 60.0 * _RATE / lag, _interval_cv(troughs), _interval_cv(peaks), _interval_cv(onsets)


def breath_window_stats(envelopes: npt.ArrayLike, valid: npt.NDArray[np.bool_], causal: bool, start: int = 0) -> _F64:
    """Per epoch from ``start`` on, breath regularity over each window of :data:`BREATH_WINDOW_HALVES`.

    ``envelopes`` is ``(n, 300)``; invalid epochs contribute silence (no breaths). Causal windows end at the
    epoch (3 or 5 epochs); full-night windows are centred on it. Returns ``(n, 10)``, zero before ``start``.
    """
    env = np.where(np.asarray(valid, dtype=bool)[:, None], np.asarray(envelopes, dtype=np.float64), 0.0)
    n = env.shape[0]
    out = np.zeros((n, breath_window_stat_count()), dtype=np.float64)
    for w, half in enumerate(BREATH_WINDOW_HALVES):
        for i in range(start, n):
            lo, hi = (i - 2 * half, i + 1) if causal else (i - half, i + half + 1)
            segment = env[max(lo, 0) : min(hi, n)].ravel()
            out[i, w * _STATS_PER_WINDOW : (w + 1) * _STATS_PER_WINDOW] = _stats(segment)
    return out

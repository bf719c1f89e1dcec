"""Per-epoch acoustic features from one 30-second mel spectrogram (3001 frames × 64 bands, dB).

What bedroom sound says about sleep (Hong et al., Nature and Science of Sleep 2022; DESIGN.md §4):

* breathing: the envelope of breath noise (1–7.6 kHz) rises and falls with each breath; its rate,
  regularity (autocorrelation at the breathing period) and depth (size and variability of the swings);
* loudness and noise floor: percentiles of the frame level;
* movement and handling: sudden broadband bursts (positive spectral flux, high-band excess);
* snoring: low-frequency energy (46–930 Hz) in bursts locked to breaths;
* speech-like activity: syllable-rate (3–7 Hz) modulation of the 1–2 kHz band.

Everything works on the 0.5 dB-quantised mel of a MELSPECTROGRAM upload. One call costs about 2 ms.
Context across epochs and per-night normalisation are added by the staging model, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

__all__ = ["ACF_LAGS", "ACF_NAMES", "DSP_FEATURE_NAMES", "ENVELOPE_NAMES", "EpochDSP", "dsp_features"]

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]

#: Band groups (indices into the 64 mel bands of mel-1).
LOW: Final = slice(0, 7)  # 46–325 Hz
LOW_MID: Final = slice(7, 20)  # 370–930 Hz
MID: Final = slice(20, 36)  # 0.98–2 kHz
HIGH: Final = slice(36, 64)  # 2.1–7.6 kHz

_FRAME_RATE: Final = 100  # frames per second
_ENV_RATE: Final = 10  # envelope rate (Hz) after averaging 10 frames
_N_ENV: Final = 300  # 30 s at 10 Hz

# Breathing between 6 and 40 breaths per minute: autocorrelation lags of 1.5–10 s.
_MIN_LAG: Final = 15
_MAX_LAG: Final = 100
_NFFT_ENV: Final = 1024
#: Lags (in 0.1 s) of the breath-envelope autocorrelation kept per epoch, so that the staging model can
#: average it over neighbouring epochs: regular breathing reinforces at one lag, irregular averages out.
ACF_LAGS: Final = tuple(range(_MIN_LAG, _MAX_LAG + 1))
ACF_NAMES: Final = tuple(f"breath_acf_{lag}" for lag in ACF_LAGS)
#: The breath envelope itself (10 Hz, drift removed, dB), so that breaths can be timed across epochs.
ENVELOPE_NAMES: Final = tuple(f"breath_env_{i}" for i in range(_N_ENV))


def _group_matrix() -> _F32:
    """(64, 5) averaging weights: all bands, low, low-mid, mid, high."""
    w = np.zeros((64, 5), dtype=np.float32)
    w[:, 0] = 1.0 / 64
    for column, group in enumerate((LOW, LOW_MID, MID, HIGH), start=1):
        w[group, column] = 1.0 / (group.stop - group.start)
    return w


_GROUPS: Final = _group_matrix()
_ENV_WINDOW: Final = np.hanning(_N_ENV)
_ENV_FREQS: Final = np.fft.rfftfreq(_NFFT_ENV, 1.0 / _ENV_RATE)
_BREATH_BAND: Final = (_ENV_FREQS >= 0.1) & (_ENV_FREQS <= 0.7)
_RESP_TOTAL: Final = (_ENV_FREQS >= 0.05) & (_ENV_FREQS <= 2.0)
_SPEECH_FREQS: Final = np.fft.rfftfreq(3000, 1.0 / _FRAME_RATE)
_SYLLABLE_BAND: Final = (_SPEECH_FREQS >= 3.0) & (_SPEECH_FREQS <= 7.0)
_SLOW_BAND: Final = (_SPEECH_FREQS >= 0.3) & (_SPEECH_FREQS <= 2.0)

DSP_FEATURE_NAMES: Final = (
    # level
    "level_p10",
    "level_p50",
    "level_p90",
    "level_max",
    "level_range",
    "level_std",
    # band balance relative to the median level
    "low_rel",
    "lowmid_rel",
    "mid_rel",
    "high_rel",
    # coarse spectral shape: 8 groups of 8 bands relative to their mean
    *(f"shape_{i}" for i in range(8)),
    # breathing
    "breath_ac_peak",
    "breath_rate_ac",
    "breath_rate_psd",
    "breath_psd_ratio",
    "breath_depth",
    "breath_count",
    "breath_interval_cv",
    "breath_prominence",
    "breath_prominence_cv",
    "breath_env_std",
    # snoring-related low-frequency evidence
    "low_ac_peak",
    "low_depth",
    "low_breath_corr",
    "low_minus_high_p90",
    # movement / transients
    "flux_mean",
    "flux_p99",
    "flux_events",
    "burst_fraction",
    "burst_count",
    "burst_max",
    "level_jump_max",
    # speech-like activity
    "syllable_mod_ratio",
    "syllable_mod_level",
    "mid_contrast",
)


def _autocorr(x: _F64) -> _F64:
    x = x - x.mean()
    spectrum = np.fft.rfft(x, 2 * _NFFT_ENV)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:_NFFT_ENV]
    if ac[0] <= 1e-12:
        return np.zeros(_NFFT_ENV)
    # Unbiased normalisation: each lag is averaged over the overlap it has.
    overlap = np.maximum(x.size - np.arange(_NFFT_ENV), 1)
    ac = ac / overlap
    out: _F64 = ac / ac[0]
    return out


def _runs(mask: npt.NDArray[np.bool_]) -> int:
    if not mask.any():
        return 0
    return int(np.count_nonzero(np.diff(mask.astype(np.int8)) == 1) + int(mask[0]))


@dataclass(frozen=True)
class EpochDSP:
    """The acoustic description of one epoch.

    ``scalars`` follow :data:`DSP_FEATURE_NAMES`; ``acf`` is the breath-envelope autocorrelation at
    :data:`ACF_LAGS`; ``envelope`` is the breath envelope (300 values at 10 Hz, drift removed, dB).
    """

    scalars: _F32
    acf: _F32
    envelope: _F32


def dsp_features(mel: _F32) -> EpochDSP:
    """The acoustic description of one 30-second epoch (see :class:`EpochDSP`).

    Parameters
    ----------
    mel
        ``(n_frames, 64)`` log-mel spectrogram in dB (mel-1); 3001 frames for a 30-second chunk. Shorter
        input is padded with its own median level.
    """
    if mel.ndim != 2 or mel.shape[1] != 64:
        raise ValueError(f"expected a (n_frames, 64) mel spectrogram, got shape {mel.shape}")
    m = mel[:3000]
    if m.shape[0] < 3000:
        fill = np.full((3000 - m.shape[0], 64), np.median(m) if m.size else -100.0, dtype=np.float32)
        m = np.concatenate([m, fill]) if m.size else fill
    groups = m @ _GROUPS  # (3000, 5) dB means: all, low, lowmid, mid, high
    level = groups[:, 0]
    env10 = groups.reshape(_N_ENV, 10, 5).mean(axis=1).astype(np.float64)  # (300, 5) at 10 Hz

    p10, p50, p90, p99_level = np.percentile(level, (10, 50, 90, 99.5))
    level_feats = [p10, p50, p90, p99_level, p90 - p10, float(level.std())]

    band_medians = np.median(groups[:, 1:], axis=0)
    band_feats = list(band_medians - p50)

    spectrum = m.mean(axis=0)
    coarse = spectrum.reshape(8, 8).mean(axis=1)
    shape_feats = list(coarse - coarse.mean())

    # --- breathing: envelope of the breath-noise bands (mid + high), slow drift removed.
    breath = 0.5 * (env10[:, 3] + env10[:, 4])
    breath_hp = breath - uniform_filter1d(breath, size=100, mode="nearest")
    ac = _autocorr(breath_hp)
    lag = _MIN_LAG + int(np.argmax(ac[_MIN_LAG : _MAX_LAG + 1]))
    ac_peak = float(ac[lag])
    rate_ac = 60.0 * _ENV_RATE / lag
    psd = np.abs(np.fft.rfft(breath_hp * _ENV_WINDOW, _NFFT_ENV)) ** 2
    total = float(psd[_RESP_TOTAL].sum()) + 1e-12
    band_psd = psd[_BREATH_BAND]
    k = int(np.argmax(band_psd))
    rate_psd = 60.0 * float(_ENV_FREQS[_BREATH_BAND][k])
    psd_ratio = float(band_psd[max(0, k - 2) : k + 3].sum()) / total
    q10, q90 = np.percentile(breath_hp, (10, 90))
    depth = float(q90 - q10)
    smooth = uniform_filter1d(breath_hp, size=5, mode="nearest")
    peaks, props = find_peaks(smooth, distance=_MIN_LAG, prominence=max(0.4, 0.3 * depth))
    n_breaths = int(peaks.size)
    if n_breaths >= 3:
        intervals = np.diff(peaks).astype(np.float64)
        interval_cv = float(intervals.std() / intervals.mean())
    else:
        interval_cv = 1.0
    prominences = props.get("prominences", np.zeros(0))
    prom_mean = float(prominences.mean()) if prominences.size else 0.0
    prom_cv = float(prominences.std() / prom_mean) if prominences.size >= 2 and prom_mean > 0 else 1.0
    breath_feats = [
        ac_peak,
        rate_ac,
        rate_psd,
        psd_ratio,
        depth,
        float(n_breaths),
        interval_cv,
        prom_mean,
        prom_cv,
        float(breath_hp.std()),
    ]

    # --- snoring evidence: low-frequency bursts that follow the breathing rhythm.
    low = 0.5 * (env10[:, 1] + env10[:, 2])
    low_hp = low - uniform_filter1d(low, size=100, mode="nearest")
    low_ac = _autocorr(low_hp)
    low_ac_peak = float(np.max(low_ac[_MIN_LAG : _MAX_LAG + 1]))
    l10, l90 = np.percentile(low_hp, (10, 90))
    denom = float(low_hp.std() * breath_hp.std())
    low_breath_corr = float(np.mean(low_hp * breath_hp) / denom) if denom > 1e-9 else 0.0
    low_minus_high = float(np.percentile(env10[:, 1] - env10[:, 4], 90))
    snore_feats = [low_ac_peak, float(l90 - l10), low_breath_corr, low_minus_high]

    # --- movement and handling: broadband onsets and high-band bursts.
    flux = np.maximum(np.diff(m, axis=0), 0.0).mean(axis=1)
    flux_p99 = float(np.percentile(flux, 99))
    flux_events = float(_runs(flux > 3.0))
    high10 = env10[:, 4]
    excess = high10 - np.median(high10)
    burst = excess > 6.0
    level10 = env10[:, 0]
    jump = float(np.max(level10[5:] - level10[:-5])) if level10.size > 5 else 0.0
    move_feats = [
        float(flux.mean()),
        flux_p99,
        flux_events,
        float(burst.mean()),
        float(_runs(burst)),
        float(excess.max()),
        jump,
    ]

    # --- speech-like activity: syllable-rate modulation of the 1–2 kHz band.
    mid = groups[:, 3].astype(np.float64)
    mod = np.abs(np.fft.rfft(mid - mid.mean())) ** 2
    syllable = float(mod[_SYLLABLE_BAND].sum())
    slow = float(mod[_SLOW_BAND].sum())
    contrast = float(np.percentile(m[:, MID].std(axis=1), 90))
    speech_feats = [
        float(np.log10((syllable + 1e-6) / (slow + 1e-6))),
        float(np.log10(syllable + 1e-6)),
        contrast,
    ]

    scalars = np.asarray(
        level_feats + band_feats + shape_feats + breath_feats + snore_feats + move_feats + speech_feats,
        dtype=np.float32,
    )
    return EpochDSP(scalars, ac[_MIN_LAG : _MAX_LAG + 1].astype(np.float32), breath_hp.astype(np.float32))

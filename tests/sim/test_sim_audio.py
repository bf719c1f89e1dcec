"""The sound depends on the stage the way the truth says: snores on inhalations, loud broadband
movements, regular breathing in deep sleep, the asked signal-to-noise ratio, honest noise levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis import SAMPLE_RATE as SR
from sleeptrack.sim import NightTruth

from ._nights import audio, envelopes, night

Floats = npt.NDArray[np.float64]
#: A snorer in a quiet room with clearly audible breathing (real breaths and snores; seed chosen so
#: the 75 minutes hold deep, REM, snoring and quiet sleep).
SNORER = {"hours": 1.25, "seed": 14, "snorer": True, "noise": "quiet", "snr_db": 15.0}


#: Bands the tests look at: snore (low), whole, bright, breath.
LOW, FULL, HIGH, BREATH = (60.0, 400.0), (50.0, 7900.0), (2000.0, 7000.0), (300.0, 3000.0)
BANDS = (LOW, FULL, HIGH, BREATH)


def _inhale_over_gap_db(truth: NightTruth, env: Floats) -> Floats:
    """Per epoch: band power during inhalations over power in the pauses between breaths, dB."""
    b = truth.breaths
    epoch = (b.onset_s // 30).astype(int)
    out = np.full(truth.n_epochs, np.nan)
    for i in range(truth.n_epochs):
        ins, gaps = [], []
        for k in np.flatnonzero(epoch == i)[:-1]:
            a, z = int(b.onset_s[k] * 100), int((b.onset_s[k] + b.inhale_s[k]) * 100)
            g0, g1 = int((b.exhale_onset_s[k] + b.exhale_s[k]) * 100) + 5, int(b.onset_s[k + 1] * 100)
            ins.append(np.mean(env[a:z] ** 2))
            if g1 - g0 >= 3:
                gaps.append(np.mean(env[g0:g1] ** 2))
        if ins and gaps:
            out[i] = 10 * np.log10(np.mean(ins) / np.mean(gaps))
    return out


def test_snores_add_low_frequency_energy_locked_to_inhalations(shared_data: Path) -> None:
    truth = night(**SNORER).truth
    assert truth.profile.snore_source == "real"
    ratio = _inhale_over_gap_db(truth, envelopes(BANDS, **SNORER)[LOW])
    snoring = (truth.snoring_stages == 1) & np.isfinite(ratio)
    quiet_sleep = (truth.snoring_stages == 0) & (truth.sleep_stages > 0) & np.isfinite(ratio)
    assert snoring.sum() >= 5
    assert quiet_sleep.sum() >= 5
    locked, unlocked = np.median(ratio[snoring]), np.median(ratio[quiet_sleep])
    assert locked > unlocked + 10.0, (locked, unlocked)


def test_movements_are_louder_broadband_bursts(shared_data: Path) -> None:
    truth = night(**SNORER).truth
    env = envelopes(BANDS, **SNORER)
    full, high = env[FULL], env[HIGH]
    moves = [e for e in truth.events if e.type == "movement" and e.duration_s >= 1.0]
    assert len(moves) >= 3
    louder, brighter = [], []
    for e in moves:
        a, z = int(e.start_s * 100), int(e.stop_s * 100)
        before = slice(max(0, a - 1000), a)
        louder.append(10 * np.log10(np.mean(full[a:z] ** 2) / np.mean(full[before] ** 2)))
        brighter.append(10 * np.log10(np.mean(high[a:z] ** 2) / np.mean(high[before] ** 2)))
    assert np.median(louder) > 4.0
    assert np.median(brighter) > 8.0


def test_deep_sleep_breathing_is_more_regular_than_rem_in_the_audio(shared_data: Path) -> None:
    truth = night(**SNORER).truth
    assert truth.profile.breath_source == "real"
    env = envelopes(BANDS, **SNORER)[BREATH][::10]  # 10 Hz
    peaks: dict[int, list[float]] = {2: [], 3: []}
    for i in np.flatnonzero(np.isin(truth.sleep_stages, (2, 3)) & (truth.snoring_stages == 0)):
        e = env[i * 300 : (i + 1) * 300] - env[i * 300 : (i + 1) * 300].mean()
        ac = np.correlate(e, e, mode="full")[299:]
        peaks[int(truth.sleep_stages[i])].append(float(ac[20:100].max() / ac[0]))
    assert len(peaks[2]) >= 5
    assert len(peaks[3]) >= 5
    assert np.mean(peaks[2]) > np.mean(peaks[3]) + 0.05, (np.mean(peaks[2]), np.mean(peaks[3]))


def test_asked_snr_is_what_the_breaths_have() -> None:
    measured = {}
    for snr in (0.0, 20.0):
        options = {"hours": 0.15, "seed": 9, "snorer": False, "noise": "fan", "snr_db": snr}
        truth = night(**options).truth
        assert truth.profile.snr_db == snr
        ratio = _inhale_over_gap_db(truth, envelopes(((100.0, 7000.0),), **options)[(100.0, 7000.0)])
        measured[snr] = float(np.nanmedian(ratio[truth.sleep_stages > 0]))
    assert measured[20.0] > measured[0.0] + 8.0


def test_noise_kinds_sound_different_and_levels_are_honest() -> None:
    centroid = {}
    for kind in ("traffic", "fan", "rain"):
        options = {"hours": 0.05, "seed": 4, "noise": kind, "snr_db": -15.0, "snorer": False}
        truth = night(**options).truth
        x = audio(**options).astype(np.float64).reshape(truth.n_epochs, -1)
        spectrum = np.abs(np.fft.rfft(x[:, : 2**15], axis=1)) ** 2
        freq = np.fft.rfftfreq(2**15, 1 / SR)
        centroid[kind] = float(np.median((spectrum * freq).sum(axis=1) / spectrum.sum(axis=1)))
        measured_db = 10 * np.log10(np.mean(x**2, axis=1))
        assert np.median(np.abs(measured_db - truth.latent.noise_level_db)) < 1.5
    assert centroid["traffic"] < centroid["fan"] < centroid["rain"]

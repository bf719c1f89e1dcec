"""Stage-dependent breathing: per-epoch latent parameters, then every breath and every snore.

Published anchors (see ``docs/simulator.md``):

* breathing rate relative to REM sleep: wake 1.02, light 0.95, deep 0.92 (Penzel et al., Front.
  Physiol. 2016, table 1); breathing is deeper and most regular in deep sleep, shallower and more
  frequent in REM (Tobaldini et al. / Penzel 2016); tidal volume in REM falls to about 73 % of wake
  (Douglas et al., Thorax 1982) → about -2.5 dB of breath sound;
* breath-to-breath variability is lowest in N3 and highest in REM and wake (Gutierrez et al.,
  Physiol. Rep. 2016; Kantelhardt et al., Physica A 2003).

The size of the within-stage variation (slow drifts and epoch-to-epoch noise) is an engineering
choice made so that one epoch's breathing alone does not tell the stage well (as in real recordings)
while the stage still shifts the averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from sleeptrack.analysis import EPOCH_SECONDS

from ._profile import NightProfile

__all__ = [
    "STAGE_CV",
    "STAGE_DEPTH_DB",
    "STAGE_RATE_FACTOR",
    "BreathPlan",
    "EpochBreathing",
    "draw_breaths",
    "draw_epoch_breathing",
    "draw_snore_bouts",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Breathing rate of each stage relative to light sleep (wake, light, deep, REM) from Penzel 2016's
#: ratios to REM (1.02, 0.95, 0.92, 1.00).
STAGE_RATE_FACTOR: Final = np.array([1.02 / 0.95, 1.0, 0.92 / 0.95, 1.0 / 0.95])
#: Coefficient of variation of breath-to-breath intervals (engineering values, ordering as published).
STAGE_CV: Final = np.array([0.30, 0.13, 0.06, 0.27])
#: Breath sound level relative to light sleep, dB (deep: deeper; REM: 73 % tidal volume).
STAGE_DEPTH_DB: Final = np.array([0.5, 0.0, 2.0, -3.0])
#: Breath-to-breath level scatter, dB SD.
STAGE_LEVEL_SD_DB: Final = np.array([3.5, 1.8, 1.0, 3.0])
#: Epoch-to-epoch noise of the rate (bpm SD), of log CV, of level (dB SD) and of log level scatter.
_EPOCH_RATE_SD: Final = np.array([1.5, 0.9, 0.6, 1.3])
_EPOCH_LOGCV_SD: Final = 0.35
_EPOCH_LEVEL_SD: Final = 1.5
_EPOCH_LOG_LEVEL_SD: Final = 0.3
#: Slow drifts (AR(1) with these time constants and SDs).
_DRIFT_RATE: Final = (20.0 * 60, 0.5)
_DRIFT_LOGCV: Final = (20.0 * 60, 0.1)
_DRIFT_LEVEL: Final = (30.0 * 60, 1.0)
#: How fast breathing follows a stage change: share of the way covered per epoch.
_FOLLOW: Final = 0.6
#: Snoring bouts: relative onset chance by stage (engineering: snoring is mostly a NREM matter).
SNORE_STAGE_FACTOR: Final = np.array([0.0, 1.0, 1.6, 0.25])
_SNORE_BOUT_EPOCHS: Final = 10.0


def _ar1(rng: np.random.Generator, n: int, tau_s: float, sd: float) -> Floats:
    phi = float(np.exp(-EPOCH_SECONDS / tau_s))
    noise = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    noise[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -phi], noise), dtype=np.float64)


def _follow(target: Floats) -> Floats:
    """Exponential approach of each epoch's stage target (breathing lags the scored stage)."""
    if target.size == 0:
        return target
    out, _ = lfilter([_FOLLOW], [1.0, -(1.0 - _FOLLOW)], target, zi=[(1.0 - _FOLLOW) * target[0]])
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class EpochBreathing:
    """Per-epoch breathing targets."""

    rate_bpm: Floats
    interval_cv: Floats
    level_db: Floats
    level_sd_db: Floats


def draw_epoch_breathing(
    stages: npt.NDArray[np.int8], profile: NightProfile, posture_db: Floats, rng: np.random.Generator
) -> EpochBreathing:
    """Draw the breathing rate, irregularity and level of every epoch."""
    n = stages.size
    s = stages.astype(np.int64)
    k = profile.stage_effect
    rate_target = profile.base_rate_bpm * (1.0 + k * (STAGE_RATE_FACTOR[s] - 1.0))
    logcv_target = np.log(STAGE_CV[1]) + k * (np.log(STAGE_CV[s]) - np.log(STAGE_CV[1]))
    level_target = profile.breath_level_db + k * STAGE_DEPTH_DB[s]
    rate = _follow(rate_target) + _ar1(rng, n, *_DRIFT_RATE) + rng.normal(0.0, 1.0, n) * _EPOCH_RATE_SD[s]
    logcv = (
        _follow(logcv_target)
        + np.log(profile.irregularity)
        + _ar1(rng, n, *_DRIFT_LOGCV)
        + rng.normal(0.0, _EPOCH_LOGCV_SD, n)
    )
    level = _follow(level_target) + posture_db + _ar1(rng, n, *_DRIFT_LEVEL) + rng.normal(0.0, _EPOCH_LEVEL_SD, n)
    return EpochBreathing(
        rate_bpm=np.clip(rate, 6.0, 30.0),
        interval_cv=np.clip(np.exp(logcv), 0.02, 0.8),
        level_db=level,
        level_sd_db=_follow(STAGE_LEVEL_SD_DB[s]) * np.exp(rng.normal(0.0, _EPOCH_LOG_LEVEL_SD, n)),
    )


def draw_snore_bouts(
    stages: npt.NDArray[np.int8],
    profile: NightProfile,
    toggles: npt.NDArray[np.bool_],
    rng: np.random.Generator,
) -> npt.NDArray[np.bool_]:
    """Per epoch: is a snoring bout on? A two-state chain whose onset chance depends on the stage.

    ``toggles`` marks epochs with a body movement that changed position: the bout flips with chance
    0.4 there (snoring depends on body position).
    """
    n = stages.size
    on = np.zeros(n, dtype=np.bool_)
    u = rng.random((n, 2))
    if not profile.snorer:
        return on
    state = False
    p_off = 1.0 / _SNORE_BOUT_EPOCHS
    for i in range(n):
        p_on = min(0.9, profile.snore_propensity * SNORE_STAGE_FACTOR[stages[i]])
        if stages[i] == 0:
            state = False
        elif toggles[i] and u[i, 1] < 0.4:
            state = not state
        elif state:
            state = u[i, 0] >= p_off
        else:
            state = u[i, 0] < p_on
        on[i] = state
    return on


@dataclass(frozen=True)
class BreathPlan:
    """Every breath and snore of the night (times in seconds)."""

    onset: Floats
    inhale: Floats
    exhale_onset: Floats
    exhale: Floats
    level_db: Floats
    sigh: npt.NDArray[np.bool_]
    snore_breath: Ints
    snore_onset: Floats
    snore_duration: Floats
    snore_level_db: Floats


def draw_breaths(
    stages: npt.NDArray[np.int8],
    breathing: EpochBreathing,
    bouts: npt.NDArray[np.bool_],
    sigh_times: Floats,
    quiet_spans: list[tuple[float, float]],
    profile: NightProfile,
    rng: np.random.Generator,
) -> BreathPlan:
    """Draw breath onsets and lengths from the per-epoch targets, and the snores locked to them.

    Breath intervals are log-normal around ``60 / rate`` with the epoch's CV and a lag-1 correlation of
    0.3; the rate is interpolated between epoch centres so it changes smoothly. A sigh replaces the
    breath at or after each of ``sigh_times`` (1.8x longer, +6 dB; breaths it overlaps are dropped,
    a post-sigh pause). No breath sound is made during ``quiet_spans`` (the sleeper is talking).
    """
    n = stages.size
    total = n * EPOCH_SECONDS
    centres = (np.arange(n) + 0.5) * EPOCH_SECONDS
    onsets: list[float] = []
    t = float(rng.uniform(0.0, 60.0 / profile.base_rate_bpm))
    z_prev = 0.0
    while t < total:
        onsets.append(t)
        i = min(int(t // EPOCH_SECONDS), n - 1)
        rate = float(np.interp(t, centres, breathing.rate_bpm))
        cv = float(breathing.interval_cv[i])
        sigma = np.sqrt(np.log1p(cv * cv))
        z = 0.3 * z_prev + np.sqrt(1 - 0.09) * rng.standard_normal()
        z_prev = z
        t += float(np.clip(60.0 / rate * np.exp(sigma * z - sigma * sigma / 2), 1.2, 20.0))
    onset = np.asarray(onsets)
    m = onset.size
    epoch = np.minimum((onset // EPOCH_SECONDS).astype(np.int64), n - 1)
    period = np.diff(np.concatenate((onset, [onset[-1] + 60.0 / profile.base_rate_bpm]))) if m else onset
    inhale = period * profile.inhale_fraction * rng.uniform(0.85, 1.15, m)
    gap = rng.uniform(0.0, 0.12, m) * period / 4
    exhale = np.minimum(period * rng.uniform(0.42, 0.56, m), 0.97 * period - inhale - gap)
    exhale = np.maximum(exhale, 0.25 * period)
    level = breathing.level_db[epoch] + rng.normal(0.0, 1.0, m) * breathing.level_sd_db[epoch]
    sigh = np.zeros(m, dtype=np.bool_)
    if m and sigh_times.size:
        idx = np.clip(np.searchsorted(onset, sigh_times), 0, m - 1)
        sigh[idx] = True
        inhale[sigh] *= 1.8
        exhale[sigh] *= 1.8
        level[sigh] += 6.0
    keep = np.ones(m, dtype=np.bool_)
    for a, b in quiet_spans:
        keep &= ~((onset >= a - 1.0) & (onset < b))
    exhale_onset = onset + inhale + gap
    for k in np.flatnonzero(sigh):  # the breaths a sigh overlaps give way to it (a post-sigh pause)
        end = exhale_onset[k] + exhale[k] + 0.5
        keep[k + 1 :] &= ~((onset[k + 1 :] < end) & ~sigh[k + 1 :])
    # Snores: on inhalation, in bout epochs, for a share of breaths.
    u = rng.random(m)
    snore_len = rng.uniform(0.6, 0.95, m)
    snore_delay = rng.uniform(0.0, 0.15, m)
    snore_jitter = rng.normal(0.0, 2.5, m)
    snoring = keep & ~sigh & bouts[epoch] & (stages[epoch] > 0) & (u < profile.snore_breath_prob)
    deep_bonus = np.where(stages[epoch] == 2, 2.0, 0.0)
    snore_level = breathing.level_db[epoch] + profile.snore_rel_db + deep_bonus + snore_jitter
    kept = np.flatnonzero(keep)
    new_index = np.cumsum(keep) - 1
    snore_idx = np.flatnonzero(snoring)
    return BreathPlan(
        onset=onset[kept],
        inhale=inhale[kept],
        exhale_onset=exhale_onset[kept],
        exhale=exhale[kept],
        level_db=level[kept],
        sigh=sigh[kept],
        snore_breath=new_index[snore_idx].astype(np.int64),
        snore_onset=onset[snore_idx] + snore_delay[snore_idx],
        snore_duration=inhale[snore_idx] * snore_len[snore_idx],
        snore_level_db=snore_level[snore_idx],
    )

"""The sleeper and the room of one night: :class:`NightProfile`, drawn from the seed.

Every number below is either from a cited source or marked as an engineering choice; see
``docs/simulator.md`` for the table with sources.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import numpy as np

from ._config import NightConfig

__all__ = ["SNR_BASE_DB", "NightProfile", "draw_profile"]

#: Share of habitual snorers: 44 % of men and 28 % of women aged 30-60 (Young et al., NEJM 1993).
_SNORER_SHARE: Final = {"male": 0.44, "female": 0.28}
#: Room noise kinds drawn when ``noise`` is not given (engineering choice).
_NOISE_SHARE: Final = {"quiet": 0.35, "fan": 0.25, "traffic": 0.15, "rain": 0.10, "mixed": 0.15}
#: Breathing SNR of a night = base of its noise kind + the sleeper's loudness + microphone distance
#: (engineering choice: most nights have audible breathing, about one in eight is below 0 dB).
SNR_BASE_DB: Final = {"quiet": 17.0, "fan": 7.0, "traffic": 10.0, "rain": 6.0, "mixed": 9.0}
_SNR_LIMITS: Final = (-8.0, 35.0)


@dataclass(frozen=True)
class NightProfile:
    """Per-night person and room parameters (all drawn from the seed unless the config fixes them).

    Levels are dBFS (RMS, full scale = 0 dB); rates are breaths per minute.
    """

    sex: str
    #: breathing rate in light sleep (the other stages are relative to it)
    base_rate_bpm: float
    #: how strongly this sleeper's breathing changes with the stage (1 = the published average)
    stage_effect: float
    #: multiplies every stage's breath-to-breath interval variability
    irregularity: float
    #: RMS of a light-sleep exhalation as recorded (direct sound), dBFS
    breath_level_db: float
    #: inhalation level relative to exhalation, dB
    inhale_rel_db: float
    #: share of the breath cycle spent inhaling
    inhale_fraction: float
    #: "real" (templates cut from recorded breathing) or "synthetic" (filtered noise)
    breath_source: str
    snorer: bool
    #: chance per epoch that a snoring bout starts in light sleep (deep x1.6, REM x0.25, wake 0)
    snore_propensity: float
    #: share of breaths that snore inside a bout
    snore_breath_prob: float
    #: snore level relative to breath level, dB
    snore_rel_db: float
    snore_source: str
    #: fundamental frequency of synthetic snores, Hz
    snore_f0_hz: float
    #: multiplies the movement rates of every stage
    movement_propensity: float
    talkativeness: float
    phone_use: float
    noise: str
    #: RMS of the background noise bed, dBFS
    noise_level_db: float
    #: breath_level_db - noise_level_db
    snr_db: float
    mic_distance_m: float
    #: direct-to-reverberant ratio of the room at that distance, dB
    drr_db: float
    rt60_s: float
    #: microphone / phone colouring: spectral tilt in dB per octave around 1 kHz
    eq_tilt_db_per_octave: float
    room_events_per_hour: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NightProfile:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"profile lacks {', '.join(sorted(missing))}")
        return cls(**{k: data[k] for k in names})


def _round(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def draw_profile(cfg: NightConfig, rng: np.random.Generator, real_sounds: bool) -> NightProfile:
    """Draw the night's profile; options fixed in ``cfg`` win over the draw."""
    sex = "male" if rng.random() < 0.5 else "female"
    # Adults breathe 12-20 times a minute at rest; asleep the rate is a little lower and varies
    # between people (engineering choice: mean 14.5, SD 2 bpm, 9-22 bpm).
    base_rate = float(np.clip(rng.normal(14.5, 2.0), 9.0, 22.0))
    stage_effect = float(rng.uniform(0.7, 1.3))
    irregularity = float(np.exp(rng.normal(0.0, 0.25)))
    # Every draw happens whatever the options, so fixing one option leaves the others unchanged.
    real_breaths = rng.random() < 0.75
    snorer_draw = rng.random() < _SNORER_SHARE[sex]
    snorer = snorer_draw if cfg.snorer is None else cfg.snorer
    real_snores = rng.random() < 0.8
    breath_source = "real" if real_sounds and real_breaths else "synthetic"
    snore_source = "real" if real_sounds and real_snores else "synthetic"
    snore_propensity = float(np.exp(rng.normal(np.log(0.06), 0.5)))
    snore_breath_prob = float(rng.uniform(0.6, 0.95))
    f0_male = rng.uniform(35.0, 110.0)
    f0 = f0_male if sex == "male" else f0_male * 1.25
    kinds = list(_NOISE_SHARE)
    noise_draw = kinds[int(rng.choice(len(kinds), p=list(_NOISE_SHARE.values())))]
    noise = noise_draw if cfg.noise is None else cfg.noise
    # Microphone 0.3-2 m from the head (log-uniform): -6 dB per doubling of distance.
    distance = float(np.exp(rng.uniform(math.log(0.3), math.log(2.0))))
    loudness = rng.normal(0.0, 3.5)
    snr_draw = SNR_BASE_DB[noise] + loudness - 20.0 * math.log10(distance / 0.7)
    snr = float(np.clip(snr_draw, *_SNR_LIMITS)) if cfg.snr_db is None else float(cfg.snr_db)
    # Absolute level: phone input gain and distance leave light-sleep breaths at -56 to -38 dBFS.
    breath_level = float(rng.uniform(-56.0, -38.0))
    rt60 = float(rng.uniform(0.2, 0.6))
    # Reverberant energy grows relative to the direct sound with distance (critical distance ~1 m).
    drr = float(10.0 - 20.0 * math.log10(distance / 0.3) + rng.normal(0.0, 1.5))
    return NightProfile(
        sex=sex,
        base_rate_bpm=_round(base_rate),
        stage_effect=_round(stage_effect),
        irregularity=_round(irregularity),
        breath_level_db=_round(breath_level),
        inhale_rel_db=_round(rng.uniform(-8.0, 0.0)),
        inhale_fraction=_round(rng.uniform(0.36, 0.46)),
        breath_source=breath_source,
        snorer=bool(snorer),
        snore_propensity=_round(snore_propensity if snorer else 0.0),
        snore_breath_prob=_round(snore_breath_prob if snorer else 0.0),
        snore_rel_db=_round(rng.uniform(8.0, 22.0)),
        snore_source=snore_source,
        snore_f0_hz=_round(f0),
        movement_propensity=_round(np.exp(rng.normal(0.0, 0.5))),
        talkativeness=_round(np.exp(rng.normal(0.0, 0.8))),
        phone_use=_round(np.exp(rng.normal(0.0, 0.8))),
        noise=noise,
        noise_level_db=_round(breath_level - snr),
        snr_db=_round(snr),
        mic_distance_m=_round(distance),
        drr_db=_round(drr),
        rt60_s=_round(rt60),
        eq_tilt_db_per_octave=_round(rng.normal(0.0, 1.5)),
        room_events_per_hour=_round(rng.uniform(0.0, 1.5)),
    )

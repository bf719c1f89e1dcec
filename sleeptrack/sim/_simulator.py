"""The night simulator: :class:`NightSimulator` and :func:`simulate_night`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

import sleeptrack
from sleeptrack._data import data_split, shared_data_dir
from sleeptrack.analysis import EPOCH_SECONDS, SAMPLES_PER_EPOCH, Hypnogram, parse_timezone

from ._architecture import Architecture, build_architecture
from ._audio_io import audio_format, open_for_writing
from ._bank import SoundBank, build_bank
from ._config import NightConfig
from ._events import draw_events
from ._library import library
from ._noise import NoiseBed
from ._physiology import BreathPlan, draw_breaths, draw_epoch_breathing, draw_snore_bouts
from ._profile import NightProfile, draw_profile
from ._render import Renderer, RenderPlan, build_plan
from ._rng import stream
from ._truth import BreathTable, EpochLatent, NightTruth, SimEvent, SnoreTable

__all__ = ["NightSimulator", "ProgressCallback", "simulate_night"]

#: Called after every written epoch with (epochs done, epochs in the night).
ProgressCallback = Callable[[int, int], None]
#: An epoch is "snoring" when at least this many snores start in it.
SNORES_PER_SNORING_EPOCH: Final = 2


def _counts(times: npt.NDArray[np.float64], n_epochs: int) -> npt.NDArray[np.float64]:
    idx = np.minimum((times // EPOCH_SECONDS).astype(np.int64), n_epochs - 1)
    return np.bincount(idx, minlength=n_epochs).astype(np.float64)


def _snore_bouts(bouts: npt.NDArray[np.bool_], breaths: BreathPlan, n_epochs: int) -> list[SimEvent]:
    """One event per run of bout epochs that holds snores (level: mean snore level, dBFS)."""
    out: list[SimEvent] = []
    padded = np.concatenate(([False], bouts, [False])).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    stops = np.flatnonzero(np.diff(padded) == -1)
    epoch = np.minimum((breaths.snore_onset // EPOCH_SECONDS).astype(np.int64), n_epochs - 1)
    for a, b in zip(starts, stops, strict=True):
        inside = (epoch >= a) & (epoch < b)
        if inside.any():
            power = np.mean(10 ** (breaths.snore_level_db[inside] / 10))
            out.append(
                SimEvent(
                    "snore_bout",
                    float(a * EPOCH_SECONDS),
                    float((b - a) * EPOCH_SECONDS),
                    round(float(10 * np.log10(power)), 2),
                    {"snores": int(inside.sum())},
                )
            )
    return out


def _sighs(breaths: BreathPlan) -> list[SimEvent]:
    """One event per sigh (a long, deep breath), spanning its inhalation and exhalation."""
    out: list[SimEvent] = []
    for k in np.flatnonzero(breaths.sigh):
        start = float(breaths.onset[k])
        stop = float(breaths.exhale_onset[k] + breaths.exhale[k])
        out.append(SimEvent("sigh", round(start, 3), round(stop - start, 3), round(float(breaths.level_db[k]), 2), {}))
    return out


class NightSimulator:
    """One simulated night: its truth (built at once, small) and its audio (rendered on demand).

    Parameters
    ----------
    config
        What to simulate (:class:`NightConfig`). The real data folder is looked up with
        :func:`sleeptrack._data.shared_data_dir`; without it everything is synthesized and the
        hypnogram comes from the packaged model.

    Examples
    --------
    >>> sim = NightSimulator(NightConfig(hours=0.05, seed=1))
    >>> sim.truth.n_epochs, next(sim.iter_epochs()).shape
    (6, (480000,))
    """

    def __init__(self, config: NightConfig) -> None:
        self.config = config
        seed = config.seed
        data_dir = shared_data_dir()
        lib = library(data_dir, config.split) if data_dir is not None else None
        if lib is not None and lib.empty:
            lib = None
        profile = draw_profile(config, stream(seed, "profile"), real_sounds=lib is not None)
        arch = build_architecture(config, data_dir, stream(seed, "hypnogram"))
        stages = arch.stages
        n = stages.size
        bank = build_bank(profile, lib, stream(seed, "bank"))
        plan = draw_events(stages, arch, profile, bank, stream(seed, "events"))
        breathing = draw_epoch_breathing(stages, profile, plan.posture_db, stream(seed, "breathing"))
        bouts = draw_snore_bouts(stages, profile, plan.toggles, stream(seed, "snoring"))
        breaths = draw_breaths(
            stages,
            breathing,
            bouts,
            np.asarray(plan.sigh_times, dtype=np.float64),
            plan.quiet_spans,
            profile,
            stream(seed, "breaths"),
        )
        local = config.start.astimezone(parse_timezone(config.timezone))
        start_hour = local.hour + local.minute / 60.0
        bed = NoiseBed(profile, n, start_hour, stream(seed, "noise"), seed)
        self._bank = bank
        self._bed = bed
        self._breaths = breaths
        self._sounds = plan.sounds + bed.sounds
        breath_count = _counts(breaths.onset, n)
        snore_count = _counts(breaths.snore_onset, n)
        noise_db = bed.epoch_levels_db()
        latent = EpochLatent(
            breath_rate_bpm=breathing.rate_bpm,
            breath_interval_cv=breathing.interval_cv,
            breath_level_db=breathing.level_db,
            breath_count=breath_count,
            snore_count=snore_count,
            noise_level_db=noise_db,
            snr_db=breathing.level_db - noise_db,
            movement_s=plan.movement_s,
            activity_s=plan.activity_s,
        )
        snoring = (snore_count >= SNORES_PER_SNORING_EPOCH).astype(np.int8)
        hypnogram = Hypnogram(stages, config.start, config.timezone, snoring=snoring)
        events = sorted(
            [*plan.events, *bed.events, *_sighs(breaths), *_snore_bouts(bouts, breaths, n)],
            key=lambda e: (e.start_s, e.type),
        )
        self._truth = NightTruth(
            hypnogram=hypnogram,
            seed=seed,
            hours=float(config.hours),
            split=config.split,
            events=tuple(events),
            breaths=_breath_table(breaths),
            snores=SnoreTable(
                onset_s=breaths.snore_onset,
                duration_s=breaths.snore_duration,
                level_db=breaths.snore_level_db,
                breath=breaths.snore_breath.astype(np.float64),
            ),
            profile=profile,
            latent=latent,
            source=_source(arch, bank, bed, data_dir is not None, config.split),
            config=config.to_dict(),
            generator=f"sleeptrack.sim {sleeptrack.__version__}",
        )

    @property
    def truth(self) -> NightTruth:
        """The ground truth (hypnogram, snoring, events, profile, latent parameters, sources)."""
        return self._truth

    @property
    def profile(self) -> NightProfile:
        return self._truth.profile

    @property
    def n_epochs(self) -> int:
        return self._truth.n_epochs

    @cached_property
    def _plan(self) -> RenderPlan:
        """The render items (prepares the night's sounds on first use)."""
        return build_plan(
            self._bank,
            self._breaths,
            self.profile.inhale_rel_db,
            self._sounds,
            stream(self.config.seed, "render-plan"),
        )

    def _int16_blocks(self) -> Iterator[npt.NDArray[np.int16]]:
        return Renderer(self._bank, self._bed, self._plan, self.n_epochs).blocks()

    def iter_epochs(self) -> Iterator[npt.NDArray[np.float32]]:
        """The audio, one epoch at a time: float32 arrays of exactly 480 000 samples (30 s at 16 kHz).

        Values are 16-bit samples / 32768, so a FLAC or WAV written by :meth:`write` reads back to the
        very same arrays. Each call starts from the beginning; only one block is in memory at a time.
        """
        for block in self._int16_blocks():
            out = block.astype(np.float32)
            out *= np.float32(1.0 / 32768.0)  # a power of two: exact
            yield out

    def write(
        self,
        audio_path: str | os.PathLike[str],
        truth_path: str | os.PathLike[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> NightTruth:
        """Write the audio (format from the suffix: .flac, .wav, .ogg, .mp3) block by block, then
        the truth JSON (default: ``audio_path`` with suffix ``.json``). Returns the truth."""
        _, subtype = audio_format(audio_path)
        total = self.n_epochs
        with open_for_writing(audio_path) as fh:
            for i, block in enumerate(self._int16_blocks()):
                if subtype == "PCM_16":
                    fh.write(block)
                else:
                    fh.write(block.astype(np.float32) * np.float32(1.0 / 32768.0))
                if progress is not None:
                    progress(i + 1, total)
        self._truth.save(truth_path if truth_path is not None else Path(audio_path).with_suffix(".json"))
        return self._truth


def _breath_table(b: BreathPlan) -> BreathTable:
    return BreathTable(
        onset_s=b.onset,
        inhale_s=b.inhale,
        exhale_onset_s=b.exhale_onset,
        exhale_s=b.exhale,
        level_db=b.level_db,
        sigh=b.sigh.astype(np.float64),
    )


def _source(arch: Architecture, bank: SoundBank, bed: NoiseBed, data: bool, split: str) -> dict[str, Any]:
    real = arch.kind == "real"
    return {
        "split": split,
        "data_folder": data,
        "hypnogram_kind": arch.kind,
        "hypnograms": list(arch.sources),
        "hypnogram_splits": [data_split(h) for h in arch.sources] if real else [],
        "sleep_latency_epochs": arch.sleep_latency_epochs,
        "final_wake_epochs": arch.final_wake_epochs,
        "warp_factor": arch.warp_factor,
        "spliced": arch.spliced,
        "clips": bank.sources(),
        "noise_schedule": [
            {"kind": s.kind, "start_s": s.start_s, "stop_s": s.stop_s, "level_db": round(s.level_db, 2)}
            for s in bed.schedule
        ],
        "samples_per_epoch": SAMPLES_PER_EPOCH,
    }


def simulate_night(
    config: NightConfig,
    audio_path: str | os.PathLike[str],
    truth_path: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
) -> NightTruth:
    """Simulate one night and write its audio and truth (see :meth:`NightSimulator.write`)."""
    return NightSimulator(config).write(audio_path, truth_path, progress)

"""Training nights: simulated ones (features computed while the audio is rendered) and recordings."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis._audio import AudioFormatError, iter_audio_blocks
from sleeptrack.analysis._constants import SAMPLES_PER_EPOCH
from sleeptrack.analysis._features import EpochDSP, dsp_features
from sleeptrack.analysis._mel import mel_spectrogram, quantize_roundtrip
from sleeptrack.analysis._snore import window_features
from sleeptrack.analysis._threads import one_blas_thread
from sleeptrack.analysis._train import TrainingNight

__all__ = ["NightFiles", "find_night_pairs", "recording_night", "simulated_night", "simulated_nights"]

_WINDOWS_PER_EPOCH = 30
#: A window counts as snoring when a snore covers at least this much of it (seconds).
_SNORE_OVERLAP_S = 0.3
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


def _epoch_features(block: npt.NDArray[np.float32]) -> tuple[EpochDSP, npt.NDArray[np.float16]]:
    mel = quantize_roundtrip(mel_spectrogram(block))
    return dsp_features(mel), window_features(mel[:3000]).astype(np.float16)


def _night(
    name: str,
    parts: list[tuple[EpochDSP, npt.NDArray[np.float16]]],
    stages: npt.NDArray[np.int8],
    snoring: npt.NDArray[np.int8] | None,
    window_labels: npt.NDArray[np.int8] | None,
) -> TrainingNight:
    n = len(parts)
    return TrainingNight(
        name=name,
        dsp=np.stack([p[0].scalars for p in parts]),
        acf=np.stack([p[0].acf for p in parts]),
        envelope=np.stack([p[0].envelope for p in parts]),
        windows=np.stack([p[1] for p in parts]),
        valid=np.ones(n, dtype=bool),
        stages=stages[:n],
        snoring=None if snoring is None else snoring[:n],
        window_labels=None if window_labels is None else window_labels[:n],
    )


def _snore_window_labels(onsets: npt.ArrayLike, durations: npt.ArrayLike, n_epochs: int) -> npt.NDArray[np.int8]:
    """1 where a snore covers at least 0.3 s of the 1-second window."""
    n_windows = n_epochs * _WINDOWS_PER_EPOCH
    cover = np.zeros(n_windows, dtype=np.float64)
    for onset, duration in zip(np.asarray(onsets, float), np.asarray(durations, float), strict=True):
        stop = onset + duration
        for w in range(int(onset), min(int(np.ceil(stop)), n_windows)):
            cover[w] += max(0.0, min(stop, w + 1.0) - max(onset, float(w)))
    return (cover >= _SNORE_OVERLAP_S).astype(np.int8).reshape(n_epochs, _WINDOWS_PER_EPOCH)


def simulated_night(seed: int, split: str, hours: float) -> TrainingNight:
    """Simulate a night and compute its features and labels without writing any audio."""
    from sleeptrack.sim import NightConfig, NightSimulator

    sim = NightSimulator(NightConfig(hours=hours, seed=seed, split=split))
    truth = sim.truth
    parts = [_epoch_features(block) for block in sim.iter_epochs()]
    n = truth.hypnogram.n_epochs
    snoring = truth.hypnogram.snoring
    return _night(
        f"sim-{split}-{seed}",
        parts,
        truth.hypnogram.stages.copy(),
        None if snoring is None else snoring.copy(),
        _snore_window_labels(truth.snores.onset_s, truth.snores.duration_s, n),
    )


def _hours_for(seed: int) -> float:
    """Night lengths of 6 to 9 hours, fixed per seed."""
    return float(6.0 + 3.0 * np.random.default_rng([seed, 77]).random())


def _worker(args: tuple[int, str]) -> TrainingNight:
    seed, split = args
    return simulated_night(seed, split, _hours_for(seed))


def simulated_nights(
    seeds: list[int],
    split: str,
    workers: int = 2,
    on_done: Callable[[TrainingNight], None] | None = None,
) -> list[TrainingNight]:
    """Simulate nights in parallel processes, in seed order; ``on_done`` is called as each finishes."""
    jobs = [(seed, split) for seed in seeds]
    out: list[TrainingNight] = []
    if workers <= 1:
        for job in jobs:
            night = _worker(job)
            out.append(night)
            if on_done:
                on_done(night)
        return out
    # One BLAS thread per worker process: the processes already use every core.
    with ProcessPoolExecutor(max_workers=workers, initializer=one_blas_thread) as pool:
        for night in pool.map(_worker, jobs):
            out.append(night)
            if on_done:
                on_done(night)
    return out


# ------------------------------------------------------------------------------ recordings on disk
@dataclass(frozen=True)
class NightFiles:
    """A recording and its scored hypnogram (``X.flac`` + ``X.json``)."""

    name: str
    audio: Path
    labels: Path


def find_night_pairs(directory: Path) -> list[NightFiles]:
    """Every ``X.<audio>`` with an ``X.json`` beside it, sorted by name."""
    if not directory.is_dir():
        raise FileNotFoundError(f"not a folder: {directory}")
    pairs = []
    for audio in sorted(directory.iterdir()):
        if audio.suffix.lower() in AUDIO_SUFFIXES and audio.with_suffix(".json").is_file():
            pairs.append(NightFiles(audio.stem, audio, audio.with_suffix(".json")))
    return pairs


def read_labels(path: Path) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8] | None, dict[str, object]]:
    """Stages (and snoring, if given) from a truth file of ``sleeptrack simulate`` or a plain list."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return np.asarray(data, dtype=np.int8), None, {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a list of stage codes or an object with 'sleep_stages'")
    stages = data.get("sleep_stages", data.get("stages"))
    if stages is None:
        raise ValueError(f"{path}: no 'sleep_stages' list")
    snoring = data.get("snoring_stages", data.get("snoring"))
    return (
        np.asarray(stages, dtype=np.int8),
        None if snoring is None else np.asarray(snoring, dtype=np.int8),
        data,
    )


def iter_recording_features(audio: Path) -> Iterator[tuple[EpochDSP, npt.NDArray[np.float16]]]:
    for block in iter_audio_blocks(audio):
        if block.size == SAMPLES_PER_EPOCH:
            yield _epoch_features(block)


def recording_night(files: NightFiles) -> TrainingNight:
    """Features of a recording and its labels (stages beyond the audio, or audio beyond them, are cut)."""
    stages, snoring, _ = read_labels(files.labels)
    try:
        parts = list(iter_recording_features(files.audio))
    except AudioFormatError as exc:
        raise ValueError(f"{files.audio}: {exc}") from exc
    n = min(len(parts), stages.size)
    if n == 0:
        raise ValueError(f"{files.name}: no whole 30-second epoch of audio with a label")
    return _night(files.name, parts[:n], stages, snoring, None)

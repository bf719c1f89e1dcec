"""Real snoring and non-snoring clips (Khan 2019) as labelled 1-second windows, with augmentation.

Augmentation puts the clean clips into bedroom conditions: random gain and background noise (white, pink,
brown, a fan-like hum) at random signal-to-noise ratios, so the network does not learn "clean = snore".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from sleeptrack._data import data_split, shared_data_dir
from sleeptrack.analysis._mel import mel_spectrogram, quantize_roundtrip
from sleeptrack.analysis._snore import window_features
from sleeptrack.analysis._train import ClipSet

__all__ = ["Clip", "clip_set", "load_clips"]

_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Clip:
    key: str
    label: int
    samples: _F32


def load_clips(split: str, root: Path | None = None) -> list[Clip]:
    """The 1-second clips of one split (``train`` or ``test``) from ``snoring_clips/``."""
    root = root or shared_data_dir()
    if root is None or not (root / "snoring_clips").is_dir():
        return []
    clips = []
    for label, folder in ((1, "snoring"), (0, "not_snoring")):
        for path in sorted((root / "snoring_clips" / folder).glob("*.flac")):
            key = path.relative_to(root).as_posix()
            if data_split(key) != split:
                continue
            samples, rate = sf.read(path, dtype="float32", always_2d=True)
            if rate != 16_000:
                continue
            clips.append(Clip(key, label, samples.mean(axis=1)[:16_000]))
    return clips


def _noise(kind: int, n: int, rng: np.random.Generator) -> _F32:
    white = rng.standard_normal(n)
    if kind == 0:
        out = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1 / 16_000)
        freqs[0] = freqs[1]
        exponent = {1: 0.5, 2: 1.0, 3: 0.5}[kind]
        spectrum /= freqs**exponent
        if kind == 3:  # fan: pink noise plus a motor hum
            out = np.fft.irfft(spectrum, n)
            t = np.arange(n) / 16_000
            f0 = rng.uniform(45, 120)
            out = out / out.std() + 0.5 * np.sin(2 * np.pi * f0 * t) + 0.25 * np.sin(4 * np.pi * f0 * t)
            fan: _F32 = (out / out.std()).astype(np.float32)
            return fan
        out = np.fft.irfft(spectrum, n)
    result: _F32 = (out / (out.std() + 1e-12)).astype(np.float32)
    return result


def _features(samples: _F32) -> _F32:
    mel = quantize_roundtrip(mel_spectrogram(samples))
    return window_features(mel[:100])


def clip_set(clips: list[Clip], augment: int = 0, seed: int = 0) -> ClipSet:
    """Window features of the clips, plus ``augment`` noisy, re-levelled copies of each."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for clip in clips:
        x = clip.samples
        if x.size < 16_000:
            x = np.pad(x, (0, 16_000 - x.size))
        feats.append(_features(x))
        labels.append(clip.label)
        rms = float(np.sqrt(np.mean(x**2))) + 1e-9
        for _ in range(augment):
            gain = 10 ** (rng.uniform(-25, 10) / 20)
            snr = rng.uniform(0, 30)
            noise = _noise(int(rng.integers(0, 4)), x.size, rng) * rms * 10 ** (-snr / 20)
            y = np.clip((x + noise) * gain, -1.0, 1.0).astype(np.float32)
            feats.append(_features(y))
            labels.append(clip.label)
    if not feats:
        return ClipSet(np.zeros((0, 201), np.float32), np.zeros(0, np.int8))
    return ClipSet(np.concatenate(feats).astype(np.float32), np.asarray(labels, dtype=np.int8))

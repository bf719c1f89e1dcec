"""The real recordings of ``../shared/data`` the simulator mixes in, filtered by the data split.

* breath templates: the ``inhale`` / ``exhale`` segments listed in the ``.tsv`` files beside the
  recordings of ``breathing/train`` and ``breathing/validate``;
* snores: ``snoring_clips/snoring`` (one-second clips);
* voice-like sounds for wake activity: the ``snoring_clips/not_snoring`` clips that are strongly
  periodic with a speech-rate envelope (see :func:`_voice_like`), and ``misc_recordings/talk2.flac``;
* room sounds: the other ``not_snoring`` clips (door, clock, siren, rain, streetcar, TV ...).

Every item's split is :func:`sleeptrack._data.data_split` of its recording's path relative to the
data folder (segments inherit their recording's side).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from sleeptrack._data import data_split
from sleeptrack.analysis import SAMPLE_RATE

__all__ = ["ClipRef", "Library", "library", "read_clip"]

Floats = npt.NDArray[np.float64]

_MIN_SEGMENT_S: Final = 0.3
_MAX_SEGMENT_S: Final = 4.5
_SILENT_DBFS: Final = -55.0
_VOICE_MISC: Final = ("misc_recordings/talk2.flac",)


@dataclass(frozen=True)
class ClipRef:
    """One usable piece of a real recording: ``[start, stop)`` samples of the file ``recording``."""

    recording: str
    start: int
    stop: int

    @property
    def id(self) -> str:
        """``recording`` for whole files, ``recording#start_s-stop_s`` for segments."""
        if self.start == 0 and self.stop < 0:
            return self.recording
        return f"{self.recording}#{self.start / SAMPLE_RATE:.3f}-{self.stop / SAMPLE_RATE:.3f}"


@dataclass(frozen=True)
class Library:
    """What the data folder offers on one side of the split."""

    data_dir: Path
    inhale: tuple[ClipRef, ...]
    exhale: tuple[ClipRef, ...]
    snore: tuple[ClipRef, ...]
    voice: tuple[ClipRef, ...]
    room: tuple[ClipRef, ...]

    @property
    def empty(self) -> bool:
        return not (self.inhale or self.exhale or self.snore or self.voice or self.room)


def read_clip(data_dir: Path, ref: ClipRef) -> Floats:
    """The samples of ``ref`` (mono float64 at 16 kHz)."""
    audio, rate = sf.read(data_dir / ref.recording, dtype="float64", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{ref.recording} is {rate} Hz; the data folder holds 16 kHz recordings")
    mono = audio.mean(axis=1)
    return np.asarray(mono[ref.start : ref.stop if ref.stop >= 0 else None], dtype=np.float64)


def _breath_segments(data_dir: Path) -> list[tuple[str, ClipRef]]:
    out: list[tuple[str, ClipRef]] = []
    for tsv in sorted((data_dir / "breathing").glob("*/*.tsv")):
        audio = tsv.with_suffix(".flac")
        if not audio.is_file():
            continue
        rec = audio.relative_to(data_dir).as_posix()
        with tsv.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        frames = sf.info(audio).frames
        for row in rows:
            kind = (row.get("kind") or "").strip()
            try:
                a, b = float(row["start_s"]), float(row["end_s"])
            except (KeyError, TypeError, ValueError):
                continue
            if kind not in {"inhale", "exhale"} or not _MIN_SEGMENT_S <= b - a <= _MAX_SEGMENT_S:
                continue
            out.append((kind, ClipRef(rec, int(a * SAMPLE_RATE), min(int(b * SAMPLE_RATE), frames))))
    return out


def _voice_like(x: Floats) -> bool:
    """Speech-like: voiced (autocorrelation pitch 80-300 Hz) with moving pitch, a syllable-rate
    (2-8 Hz) envelope with pauses, and most energy below 800 Hz. Machine tones (steady pitch and
    level), sirens and crying (bright) fail it."""
    frames = x[: x.size // 640 * 640].reshape(-1, 640)
    frames = frames - frames.mean(axis=1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 1280, axis=1)) ** 2, axis=1)[:, :640]
    energy = np.maximum(ac[:, 0], 1e-20)
    strength = ac[:, 53:200].max(axis=1) / energy
    voiced = strength > 0.5
    lags = np.argmax(ac[:, 53:200], axis=1) + 53
    pitch_motion = float(np.std(np.log(lags[voiced]))) if voiced.sum() > 2 else 0.0
    power = np.convolve(x * x, np.ones(400) / 400, mode="valid")[::400]
    level_db = 10 * np.log10(power + 1e-12)
    level_range = float(np.percentile(level_db, 90) - np.percentile(level_db, 10))
    env = np.sqrt(np.convolve(x * x, np.ones(320) / 320, mode="same"))[::160]
    mod = np.abs(np.fft.rfft(env - env.mean())) ** 2
    freq = np.fft.rfftfreq(env.size, 0.01)
    modulation = mod[(freq > 2) & (freq < 8)].sum() / max(mod[freq > 0.5].sum(), 1e-20)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    centroid = float((np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE) * spectrum).sum() / spectrum.sum())
    return bool(
        np.median(strength) >= 0.45
        and pitch_motion >= 0.05
        and level_range >= 4.0
        and modulation >= 0.25
        and centroid < 800.0
    )


@lru_cache(maxsize=2)
def _classified_clips(data_dir: Path) -> tuple[tuple[str, str], ...]:
    """(path, "snore" | "voice" | "room") for every usable one-file clip, silent ones left out."""
    out: list[tuple[str, str]] = []
    for path in sorted((data_dir / "snoring_clips" / "snoring").glob("*.flac")):
        out.append((path.relative_to(data_dir).as_posix(), "snore"))
    for path in sorted((data_dir / "snoring_clips" / "not_snoring").glob("*.flac")):
        x, rate = sf.read(path, dtype="float64", always_2d=True)
        mono = x.mean(axis=1)
        if rate != SAMPLE_RATE or mono.size < SAMPLE_RATE // 2:
            continue
        if 20 * np.log10(np.sqrt(np.mean(mono * mono)) + 1e-12) < _SILENT_DBFS:
            continue
        kind = "voice" if _voice_like(mono) else "room"
        out.append((path.relative_to(data_dir).as_posix(), kind))
    for rel in _VOICE_MISC:
        if (data_dir / rel).is_file():
            out.append((rel, "voice"))
    return tuple(out)


@lru_cache(maxsize=6)
def library(data_dir: Path, split: str) -> Library:
    """The recordings usable on ``split`` ("train", "test" or "any")."""

    def allowed(rec: str) -> bool:
        return split == "any" or data_split(rec) == split

    segments = [(k, ref) for k, ref in _breath_segments(data_dir) if allowed(ref.recording)]
    clips = [(k, ClipRef(rec, 0, -1)) for rec, k in _classified_clips(data_dir) if allowed(rec)]
    return Library(
        data_dir=data_dir,
        inhale=tuple(r for k, r in segments if k == "inhale"),
        exhale=tuple(r for k, r in segments if k == "exhale"),
        snore=tuple(r for k, r in clips if k == "snore"),
        voice=tuple(r for k, r in clips if k == "voice"),
        room=tuple(r for k, r in clips if k == "room"),
    )

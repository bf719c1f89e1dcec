"""The sounds of one night: breath templates, snores, voices, room clips, and the room itself.

Which sounds a night uses is decided at once (cheap: ids, lengths, seeds); the audio is prepared only
when the night is rendered. Real recordings come from the :class:`~sleeptrack.sim._library.Library`
of the night's split when the profile asks for them; they are cleaned (high-pass, silence trimmed,
smooth onset and decay), coloured by the night's microphone tilt, normalised to unit RMS and passed
through the night's room (direct sound plus an exponentially decaying reverberant tail at the
profile's direct-to-reverberant ratio). Synthetic sounds stand in whenever the data folder (or the
split's share of it) has too few.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.fft import irfft, next_fast_len, rfft
from scipy.signal import butter, fftconvolve, sosfilt

from sleeptrack.analysis import SAMPLE_RATE

from . import _synth
from ._library import ClipRef, Library, read_clip
from ._profile import NightProfile

__all__ = ["SoundBank", "SoundSpec", "build_bank"]

Floats = npt.NDArray[np.float64]
SR: Final = SAMPLE_RATE
_N_BREATH: Final = 6
_N_SNORE: Final = 8
_N_VOICE_REAL: Final = 8
_N_VOICE_SYNTH: Final = 3
_N_ROOM: Final = 10
KINDS: Final = ("inhale", "exhale", "snore", "voice", "room")


@dataclass(frozen=True)
class SoundSpec:
    """How to make one bank sound: a real clip (``ref``) or a synthetic one (``synth`` kind)."""

    id: str
    seed: int
    ref: ClipRef | None = None
    synth: str = ""
    duration_s: float = 0.0
    f0: float = 0.0


def _room_ir(profile: NightProfile, rng: np.random.Generator) -> Floats:
    """Direct path + a few ms pre-delay + exponentially decaying, high-damped noise tail."""
    n = int(min(profile.rt60_s, 0.6) * SR)
    delay = int(rng.uniform(0.003, 0.012) * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / profile.rt60_s)
    tail = np.asarray(sosfilt(butter(1, rng.uniform(2500.0, 5000.0), fs=SR, output="sos"), tail))
    energy = float(np.sum(tail * tail))
    tail *= np.sqrt(10 ** (-profile.drr_db / 10) / energy) if energy > 0 else 0.0
    ir = np.zeros(delay + n)
    ir[0] = 1.0
    ir[delay:] += tail
    return ir


def _highpass(x: Floats, fc: float) -> Floats:
    return np.asarray(sosfilt(butter(2, fc, btype="highpass", fs=SR, output="sos"), x), dtype=np.float64)


def _trim(x: Floats, floor_db: float) -> Floats:
    """Keep the part whose 20-ms RMS is within ``floor_db`` of the loudest frame."""
    hop = SR // 50
    if x.size < 2 * hop:
        return x
    frames = x[: x.size // hop * hop].reshape(-1, hop)
    level = 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)
    active = np.flatnonzero(level >= level.max() - floor_db)
    return x[max(0, active[0] - 1) * hop : min(frames.shape[0], active[-1] + 2) * hop]


def _shape(x: Floats, rng: np.random.Generator) -> Floats:
    """Smooth onset and decay: the labelled segments are cut (and partly noise-gated) abruptly,
    while a breath heard from a pillow swells in and fades out."""
    n = x.size
    attack, release = int(rng.uniform(0.15, 0.4) * n), int(rng.uniform(0.25, 0.45) * n)
    env = np.ones(n)
    if attack > 1:
        env[:attack] = np.sin(np.linspace(0.0, np.pi / 2, attack)) ** 2
    if release > 1:
        env[n - release :] *= np.cos(np.linspace(0.0, np.pi / 2, release)) ** 2
    return x * env


def _fade(x: Floats, seconds: float = 0.015) -> Floats:
    n = min(int(seconds * SR), x.size // 2)
    if n > 0:
        ramp = np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _pick(rng: np.random.Generator, refs: tuple[ClipRef, ...], k: int) -> list[ClipRef]:
    if not refs:
        return []
    idx = rng.choice(len(refs), size=min(k, len(refs)), replace=False)
    return [refs[int(i)] for i in np.sort(idx)]


class SoundBank:
    """The night's sounds: specs now, prepared audio (unit-RMS direct sound, room applied) on demand."""

    def __init__(self, data_dir: Path | None, ir: Floats, tilt_db_per_octave: float) -> None:
        self.data_dir = data_dir
        self.ir = ir
        self.tilt_db_per_octave = tilt_db_per_octave
        self.specs: dict[str, list[SoundSpec]] = {k: [] for k in KINDS}

    def ids(self, kind: str) -> list[str]:
        return [s.id for s in self.specs[kind]]

    def count(self, kind: str) -> int:
        return len(self.specs[kind])

    def length_s(self, kind: str, index: int) -> float:
        """Length of a voice or room sound in seconds (before the room's tail)."""
        spec = self.specs[kind][index]
        if spec.ref is None:
            return spec.duration_s
        assert self.data_dir is not None
        frames = sf.info(self.data_dir / spec.ref.recording).frames
        stop = frames if spec.ref.stop < 0 else min(spec.ref.stop, frames)
        return float(stop - spec.ref.start) / SR

    def apply_room(self, x: Floats) -> Floats:
        """Convolve with the room (the result is longer by the reverberant tail)."""
        return np.asarray(fftconvolve(x, self.ir), dtype=np.float64)

    def colour(self, x: Floats) -> Floats:
        """The microphone's spectral tilt (dB per octave around 1 kHz, at most ±12 dB)."""
        if abs(self.tilt_db_per_octave) < 0.05 or x.size < 16:
            return x
        n = next_fast_len(x.size, real=True)
        spec = rfft(x, n)
        freq = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
        gain_db = np.clip(self.tilt_db_per_octave * np.log2(freq / 1000.0), -12.0, 12.0)
        return np.asarray(irfft(spec * 10 ** (gain_db / 20), n)[: x.size], dtype=np.float64)

    def prepare(self, x: Floats) -> Floats:
        """Colour, normalise and place a dry sound in the room."""
        return self.apply_room(_synth.unit_rms(self.colour(x)))

    def _make(self, kind: str, spec: SoundSpec, files: dict[str, Floats]) -> Floats:
        rng = np.random.default_rng(spec.seed)
        if spec.ref is not None:
            assert self.data_dir is not None
            whole = files.get(spec.ref.recording)
            if whole is None:
                whole = read_clip(self.data_dir, ClipRef(spec.ref.recording, 0, -1))
                files[spec.ref.recording] = whole
            raw = whole[spec.ref.start : spec.ref.stop if spec.ref.stop >= 0 else None]
            if kind in ("inhale", "exhale"):
                return self.prepare(_shape(_trim(_highpass(raw, 80.0), 30.0), rng))
            if kind == "snore":
                return self.prepare(_fade(_trim(_highpass(raw, 40.0), 20.0)))
            return self.prepare(_fade(_highpass(raw, 60.0 if kind == "voice" else 30.0)))
        if spec.synth == "snore":
            return self.prepare(_synth.snore(rng, spec.f0, spec.duration_s))
        if spec.synth == "voice":
            return self.prepare(_synth.voice(rng, spec.f0, spec.duration_s))
        return self.prepare(_synth.breath(rng, spec.synth == "inhale", spec.duration_s))

    @cached_property
    def audio(self) -> dict[str, list[Floats]]:
        """Prepared audio of every sound, by kind (made on first use)."""
        files: dict[str, Floats] = {}
        return {kind: [self._make(kind, s, files) for s in self.specs[kind]] for kind in KINDS}

    def sources(self) -> dict[str, list[str]]:
        """Ids of the recordings used (``synthetic:...`` for synthetic sounds)."""
        return {
            "breath_templates": sorted(set(self.ids("inhale") + self.ids("exhale"))),
            "snores": sorted(set(self.ids("snore"))),
            "voices": sorted(set(self.ids("voice"))),
            "room_sounds": sorted(set(self.ids("room"))),
        }


def build_bank(profile: NightProfile, lib: Library | None, rng: np.random.Generator) -> SoundBank:
    """Choose the night's sounds (``lib`` is ``None`` without a data folder)."""
    bank = SoundBank(lib.data_dir if lib else None, _room_ir(profile, rng), profile.eq_tilt_db_per_octave)
    # Every choice below is drawn whether or not it is used, so the streams stay aligned.
    picks = {
        "inhale": _pick(rng, lib.inhale, _N_BREATH) if lib else [],
        "exhale": _pick(rng, lib.exhale, _N_BREATH) if lib else [],
        "snore": _pick(rng, lib.snore, _N_SNORE) if lib else [],
        "voice": _pick(rng, lib.voice, _N_VOICE_REAL) if lib else [],
        "room": _pick(rng, lib.room, _N_ROOM) if lib else [],
    }
    seeds = iter(rng.integers(2**63, size=64).tolist())

    def real(kind: str) -> None:
        bank.specs[kind] += [SoundSpec(r.id, next(seeds), ref=r) for r in picks[kind]]

    def synthetic(kind: str, count: int, lo: float, hi: float, f0: float = 0.0) -> None:
        for _ in range(count):
            duration = float(rng.uniform(lo, hi))
            bank.specs[kind].append(SoundSpec(f"synthetic:{kind}", next(seeds), synth=kind, duration_s=duration, f0=f0))

    if profile.breath_source == "real" and len(picks["inhale"]) >= 2 and len(picks["exhale"]) >= 2:
        real("inhale")
        real("exhale")
    else:
        synthetic("inhale", _N_BREATH, 1.0, 2.6)
        synthetic("exhale", _N_BREATH, 1.0, 2.6)
    if profile.snorer:
        if profile.snore_source == "real" and len(picks["snore"]) >= 3:
            real("snore")
        else:
            for _ in range(_N_SNORE):
                f0 = profile.snore_f0_hz * float(rng.uniform(0.9, 1.1))
                synthetic("snore", 1, 0.8, 1.6, f0)
    real("voice")
    real("room")
    f0_voice = float(rng.uniform(95.0, 140.0) if profile.sex == "male" else rng.uniform(170.0, 230.0))
    synthetic("voice", _N_VOICE_SYNTH, 1.5, 4.0, f0_voice)
    return bank

"""Render a night block by block: overlap-add the sounds that start in each 30-s block onto the noise bed.

The whole night is a list of small items (a few per breath, one per event) sorted by start. Each block
renders the items that start inside it into a buffer one block plus the longest item long; what spills
past the block is carried into the next one, so nothing is ever rendered twice and memory stays at a
few megabytes whatever the night's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from sleeptrack.analysis import SAMPLE_RATE, SAMPLES_PER_EPOCH

from . import _synth
from ._bank import KINDS, SoundBank
from ._events import Sound
from ._noise import NoiseBed, render_event
from ._physiology import BreathPlan

__all__ = ["RenderPlan", "Renderer", "build_plan", "quantize"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
SR: Final = SAMPLE_RATE
#: Limits of the pitch/time perturbation of a template (resampling factor), and its grid: factors are
#: rounded to steps of 6 % so each stretched template is computed once per night and reused.
_STRETCH: Final = (0.7, 1.45)
_STEP: Final = float(np.log(1.06))
_FADE: Final = int(0.02 * SR)
#: Soft limiter: above this magnitude samples are compressed smoothly towards full scale.
_KNEE: Final = 0.85
_SYNTH: Final = len(KINDS)


@dataclass(frozen=True)
class RenderPlan:
    """Items sorted by start: sample offset, source (index in ``KINDS``, or ``len(KINDS)`` for
    synthetic), bank index, resampling factor, output length, linear gain, and the :class:`Sound` of
    synthetic items."""

    start: Ints
    code: Ints
    index: Ints
    factor: Floats
    length: Ints
    gain: Floats
    synth: tuple[Sound | None, ...]

    @property
    def longest(self) -> int:
        return int(self.length.max()) if self.length.size else 0


def _templates(
    code: int,
    sizes: Ints,
    tail: int,
    start: Floats,
    duration: Floats,
    level: Floats,
    rng: np.random.Generator,
) -> tuple[Ints, ...] | tuple[Ints, Ints, Ints, Floats, Ints, Floats]:
    m = start.size
    idx = rng.integers(sizes.size, size=m) if sizes.size else np.zeros(m, dtype=np.int64)
    size = sizes[idx] if sizes.size else np.ones(m, dtype=np.int64)
    target = np.maximum(duration * SR, 1.0)
    factor = np.clip(np.maximum(size - tail, 1) / target, *_STRETCH)
    factor = np.exp(np.round(np.log(factor) / _STEP) * _STEP)
    length = np.maximum(np.minimum(((size - 1) / factor).astype(np.int64), target.astype(np.int64) + tail), 1)
    gain = 10 ** (level / 20)
    return (start * SR).astype(np.int64), np.full(m, code, dtype=np.int64), idx, factor, length, gain


def build_plan(
    bank: SoundBank,
    breaths: BreathPlan,
    inhale_rel_db: float,
    sounds: list[Sound],
    rng: np.random.Generator,
) -> RenderPlan:
    """Turn breaths, snores and event sounds into render items (template choice drawn from ``rng``)."""
    audio = bank.audio
    tail = bank.ir.size - 1
    sizes = {k: np.array([x.size for x in audio[k]], dtype=np.int64) for k in KINDS}
    parts = [
        _templates(0, sizes["inhale"], tail, breaths.onset, breaths.inhale, breaths.level_db + inhale_rel_db, rng),
        _templates(1, sizes["exhale"], tail, breaths.exhale_onset, breaths.exhale, breaths.level_db, rng),
    ]
    if sizes["snore"].size:
        parts.append(
            _templates(
                2,
                sizes["snore"],
                tail,
                breaths.snore_onset,
                breaths.snore_duration,
                breaths.snore_level_db,
                rng,
            )
        )
    rows = []
    for s in sounds:
        if s.source in ("voice", "room"):
            code = KINDS.index(s.source)
            length = min(int(sizes[s.source][s.index]), int(s.duration_s * SR) + tail)
        else:
            code, length = _SYNTH, int(s.duration_s * SR) + tail
        rows.append((int(s.start_s * SR), code, s.index, 1.0, max(length, 1), 10 ** (s.level_db / 20)))
    columns = [np.concatenate([p[j] for p in parts] + [np.array([r[j] for r in rows])]) for j in range(6)]
    synth_all: list[Sound | None] = [None] * sum(p[0].size for p in parts)
    synth_all += [s if r[1] == _SYNTH else None for s, r in zip(sounds, rows, strict=True)]
    order = np.argsort(columns[0], kind="stable")
    return RenderPlan(
        start=columns[0].astype(np.int64)[order],
        code=columns[1].astype(np.int64)[order],
        index=columns[2].astype(np.int64)[order],
        factor=columns[3].astype(np.float64)[order],
        length=columns[4].astype(np.int64)[order],
        gain=columns[5].astype(np.float64)[order],
        synth=tuple(synth_all[i] for i in order),
    )


def quantize(block: Floats) -> npt.NDArray[np.int16]:
    """Soft-limit peaks above 0.85 full scale, then round to 16-bit integers (``block`` is reused)."""
    peak = max(float(block.max()), -float(block.min())) if block.size else 0.0
    if peak > _KNEE:
        over = np.abs(block) > _KNEE
        mag = np.abs(block[over])
        block[over] = np.sign(block[over]) * (_KNEE + (1 - _KNEE) * np.tanh((mag - _KNEE) / (1 - _KNEE)))
    block *= 32768.0
    np.round(block, out=block)
    np.clip(block, -32768, 32767, out=block)
    return block.astype(np.int16)


class Renderer:
    """Renders a :class:`RenderPlan` on a :class:`NoiseBed`, one epoch at a time."""

    def __init__(self, bank: SoundBank, bed: NoiseBed, plan: RenderPlan, n_epochs: int) -> None:
        self.bank = bank
        self.bed = bed
        self.plan = plan
        self.n_epochs = n_epochs
        audio = bank.audio
        self.sources = [audio[k] for k in KINDS]
        self.stretched: dict[tuple[int, int, float], npt.NDArray[np.float32]] = {}

    def _stretch(self, code: int, index: int, factor: float) -> npt.NDArray[np.float32]:
        """Template ``index`` of ``code`` resampled by ``factor`` (pitch and time together), cached."""
        key = (code, index, factor)
        y = self.stretched.get(key)
        if y is None:
            src = self.sources[code][index]
            if factor == 1.0:
                y = src.astype(np.float32)
            else:
                pos = np.arange(int((src.size - 1) / factor), dtype=np.float64) * factor
                y = np.interp(pos, np.arange(src.size), src).astype(np.float32)
            self.stretched[key] = y
        return y

    def _synthesize(self, s: Sound) -> Floats:
        rng = np.random.default_rng(s.seed)
        if s.source == "rustle":
            dry = _synth.rustle(rng, s.duration_s)
        elif s.source == "phone":
            audio = self.bank.audio["voice"][s.index] if s.index >= 0 else None
            dry = _synth.phone(rng, s.duration_s, audio)
        elif s.source == "cough":
            dry = _synth.cough(rng, s.duration_s)
        elif s.source.startswith("room:"):
            dry = _synth.room(rng, s.source.split(":", 1)[1], s.duration_s)
        elif s.source in ("car", "thunder"):
            dry = render_event(s)
        else:
            raise ValueError(f"unknown synthetic sound {s.source!r}")
        return self.bank.apply_room(self.bank.colour(dry))

    def _item(self, k: int) -> Floats | npt.NDArray[np.float32]:
        p = self.plan
        n = int(p.length[k])
        code = int(p.code[k])
        y: Floats | npt.NDArray[np.float32]
        if code == _SYNTH:
            synth = p.synth[k]
            assert synth is not None
            y = self._synthesize(synth)[:n]
        else:
            full = self._stretch(code, int(p.index[k]), float(p.factor[k]))
            y = full[:n]
            if n < full.size:
                y = y.copy()
                f = min(_FADE, y.size)
                y[-f:] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
        return y * float(p.gain[k])

    def blocks(self) -> Iterator[npt.NDArray[np.int16]]:
        """The night as 16-bit blocks of exactly one epoch."""
        p = self.plan
        tail = max(p.longest, 1)
        buf = np.zeros(SAMPLES_PER_EPOCH + tail)
        k, count = 0, p.start.size
        for b, bed in enumerate(self.bed.blocks()):
            lo = b * SAMPLES_PER_EPOCH
            hi = lo + SAMPLES_PER_EPOCH
            while k < count and p.start[k] < hi:
                y = self._item(k)
                off = int(p.start[k]) - lo
                buf[off : off + y.size] += y
                k += 1
            bed += buf[:SAMPLES_PER_EPOCH]
            yield quantize(bed)
            buf[:tail] = buf[SAMPLES_PER_EPOCH : SAMPLES_PER_EPOCH + tail].copy()
            buf[tail:] = 0.0

"""The background noise bed of a night, rendered block by block with filter state carried across.

Components (each unit RMS before its gain curve): a room-tone / microphone floor that is always there,
and the night's noise kinds: a fan (broadband with blade-pass hum), traffic (low rumble that quietens
in the small hours, plus passing cars as events), rain (bright hiss with droplet crackle, slowly
changing intensity, thunder on stormy nights). ``mixed`` nights switch between kinds during the night
(a fan switched off, rain starting). Gains are 1-Hz control curves in dB (slow random drifts), linearly
interpolated per sample, so the bed is non-stationary yet seamless across blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, iirpeak, lfilter, sos2tf, sosfilt, tf2sos

from sleeptrack.analysis import EPOCH_SECONDS, SAMPLE_RATE, SAMPLES_PER_EPOCH

from . import _synth
from ._events import Sound
from ._profile import NightProfile
from ._rng import stream
from ._truth import SimEvent

__all__ = ["NoiseBed", "NoiseSegment"]

Floats = npt.NDArray[np.float64]
SR: Final = SAMPLE_RATE
_RAMP_S: Final = {"fan": 1.0, "traffic": 120.0, "rain": 180.0}
#: (time constant s, SD dB) of the slow level drift of each kind.
_DRIFT: Final = {"floor": (600.0, 0.3), "fan": (300.0, 0.3), "traffic": (600.0, 2.0), "rain": (900.0, 3.0)}
_MIXABLE: Final = ("fan", "traffic", "rain", "quiet")
_SECOND: Final = np.arange(SR, dtype=np.float64) / SR


@dataclass(frozen=True)
class NoiseSegment:
    """A stretch of the night with one noise kind at one level."""

    kind: str
    start_s: float
    stop_s: float
    level_db: float


def _quiet_hours(hour: Floats) -> Floats:
    """1 at 03:30 local time, falling to 0 five hours either side (the quietest traffic)."""
    d = np.abs((hour - 3.5 + 12.0) % 24.0 - 12.0)
    return np.asarray(np.where(d < 5.0, np.cos(np.pi * d / 10.0), 0.0), dtype=np.float64)


def _ar1_seconds(rng: np.random.Generator, n: int, tau: float, sd: float) -> Floats:
    phi = float(np.exp(-1.0 / tau))
    e = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), n)
    e[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -phi], e), dtype=np.float64)


def _impulse_energy(sos: Floats) -> float:
    imp = np.zeros(4 * SR)
    imp[0] = 1.0
    h = sosfilt(sos, imp)
    return float(np.sum(h * h))


def _parallel(parts: list[tuple[Floats, Floats, float]]) -> Floats:
    """One second-order-section cascade equal to the weighted sum of filters ``(b, a, weight)``.

    One ``sosfilt`` call costs the same for one section or four, so parallel branches are merged
    into a single rational transfer function (exact up to ~1e-9 for these filters)."""
    den: Floats = np.array([1.0])
    for _, a, _ in parts:
        den = np.asarray(np.polymul(den, a), dtype=np.float64)
    num: Floats = np.zeros(1)
    for j, (b, _, w) in enumerate(parts):
        term = w * np.asarray(b, dtype=np.float64)
        for i, (_, a, _) in enumerate(parts):
            if i != j:
                term = np.asarray(np.polymul(term, a), dtype=np.float64)
        num = np.asarray(np.polyadd(num, term), dtype=np.float64)
    return np.asarray(tf2sos(num, den), dtype=np.float64)


def _tf(sos: Floats) -> tuple[Floats, Floats]:
    b, a = sos2tf(sos)
    return np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)


class _Component:
    """One noise source: white noise (plus droplet impulses for rain) through one filter cascade."""

    def __init__(self, kind: str, rng: np.random.Generator) -> None:
        self.kind = kind
        parts: list[tuple[Floats, Floats, float]] = []
        self.drop_density = 0.0
        self.drop_scale = 0.0
        if kind == "floor":
            # pink noise (the J. O. Smith / Kellet 1/f filter) plus a little white microphone hiss
            b = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
            a = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])
            parts.append((b * 8.0, a, 1.0))
            parts.append((*_tf(butter(1, 4000.0, btype="highpass", fs=SR, output="sos")), rng.uniform(0.2, 0.5)))
        elif kind == "fan":
            parts.append((*_tf(butter(1, rng.uniform(800.0, 3000.0), fs=SR, output="sos")), 1.0))
            blade = rng.uniform(40.0, 150.0)
            for k, rel_db in ((1, rng.uniform(-14.0, -4.0)), (2, rng.uniform(-20.0, -8.0))):
                b, a = iirpeak(blade * k, rng.uniform(15.0, 40.0), fs=SR)
                energy = _impulse_energy(np.asarray(tf2sos(b, a), dtype=np.float64))
                parts.append((np.asarray(b), np.asarray(a), 10 ** (rel_db / 20) / np.sqrt(energy)))
        elif kind == "traffic":
            parts.append((*_tf(butter(2, rng.uniform(120.0, 400.0), fs=SR, output="sos")), 1.0))
            parts.append((*_tf(butter(2, 2000.0, fs=SR, output="sos")), rng.uniform(0.05, 0.2)))
        elif kind == "rain":
            band = [rng.uniform(400.0, 1200.0), rng.uniform(5000.0, 7500.0)]
            parts.append((*_tf(butter(2, band, btype="bandpass", fs=SR, output="sos")), 1.0))
            # droplets: sparse impulses added to the white input (crackle inside the hiss band)
            self.drop_density = rng.uniform(20.0, 150.0) / SR
            weight = 10 ** (rng.uniform(-3.0, 3.0) / 20)
            self.drop_scale = weight / np.sqrt(2.0 * self.drop_density)
        else:
            raise ValueError(f"unknown noise component {kind!r}")
        self.sos = _parallel(parts)
        input_power = 1.0 + (self.drop_scale**2 * 2.0 * self.drop_density)
        self.norm = 1.0 / np.sqrt(_impulse_energy(self.sos) * input_power)
        self.sos32 = self.sos.astype(np.float32)
        self.state = np.zeros((self.sos.shape[0], 2), dtype=np.float32)

    def reset(self) -> None:
        self.state = np.zeros_like(self.state)

    def render(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
        """``n`` more samples (float32: plenty for noise, and half the memory traffic)."""
        x = rng.random(n, dtype=np.float32)
        x -= np.float32(0.5)
        x *= np.float32(np.sqrt(12.0) * self.norm)
        if self.drop_density:
            count = rng.poisson(self.drop_density * n)
            signs = rng.choice([-1.0, 1.0], count)
            x[rng.integers(0, n, count)] += rng.exponential(1.0, count) * signs * self.drop_scale * self.norm
        y, self.state = sosfilt(self.sos32, x, zi=self.state)
        return np.asarray(y, dtype=np.float32)


class NoiseBed:
    """Plan and render a night's background noise.

    Parameters
    ----------
    profile
        Gives the kind and the nominal level (``noise_level_db``) of the bed.
    n_epochs
        Length of the night.
    start_hour
        Local clock time of the start in hours (23.0 = 23:00), for traffic's night-time lull.
    plan_rng
        The plan (schedule, filters, level curves, cars, thunder) is drawn from it.
    seed
        Night seed: every call of :meth:`blocks` starts the same fresh render stream from it.
    """

    def __init__(
        self,
        profile: NightProfile,
        n_epochs: int,
        start_hour: float,
        plan_rng: np.random.Generator,
        seed: int,
    ) -> None:
        rng = plan_rng
        self.n_epochs = n_epochs
        self.total = n_epochs * EPOCH_SECONDS
        self.seed = seed
        self.schedule = self._schedule(profile, rng)
        seconds = np.arange(self.total + 1, dtype=np.float64)
        hours = (start_hour + seconds / 3600.0) % 24.0
        quiet = profile.noise == "quiet"
        floor_db = profile.noise_level_db - (0.0 if quiet else rng.uniform(10.0, 18.0))
        floor = _Component("floor", rng)
        self.components: list[tuple[_Component, Floats]] = [
            (floor, self._gain(floor_db + _ar1_seconds(rng, seconds.size, *_DRIFT["floor"])))
        ]
        self.events: list[SimEvent] = []
        self.sounds: list[Sound] = []
        for kind in ("fan", "traffic", "rain"):
            segs = [s for s in self.schedule if s.kind == kind]
            comp = _Component(kind, rng)
            if not segs:
                continue
            level = np.full(seconds.size, -np.inf)
            for seg in segs:
                level = np.maximum(level, self._segment_curve(seconds, seg))
            level = level + _ar1_seconds(rng, seconds.size, *_DRIFT[kind])
            if kind == "traffic":
                level -= 6.0 * _quiet_hours(hours)
            self.components.append((comp, self._gain(level)))
            self._noise_events(kind, segs, level, hours, rng)
        for prev, seg in zip(self.schedule, self.schedule[1:], strict=False):
            ramp = _RAMP_S.get(seg.kind, _RAMP_S.get(prev.kind, 1.0))
            self.events.append(
                SimEvent(
                    "noise_change",
                    round(max(0.0, seg.start_s - ramp / 2), 3),
                    round(ramp, 3),
                    round(seg.level_db, 2),
                    {"from": prev.kind, "to": seg.kind},
                )
            )

    @staticmethod
    def _gain(level_db: Floats) -> Floats:
        return np.asarray(np.where(np.isfinite(level_db), 10 ** (level_db / 20), 0.0), dtype=np.float64)

    def _schedule(self, profile: NightProfile, rng: np.random.Generator) -> list[NoiseSegment]:
        count = int(rng.integers(2, 4))
        cuts = np.sort(rng.uniform(0.15, 0.85, count - 1)) * self.total
        kinds: list[str] = []
        for _ in range(count):
            options = [k for k in _MIXABLE if not kinds or k != kinds[-1]]
            kinds.append(options[int(rng.integers(len(options)))])
        if all(k == "quiet" for k in kinds):
            kinds[0] = "fan"
        offsets = rng.uniform(-4.0, 4.0, count)
        if profile.noise != "mixed":
            return [NoiseSegment(profile.noise, 0.0, float(self.total), profile.noise_level_db)]
        edges = np.concatenate(([0.0], cuts, [float(self.total)]))
        return [
            NoiseSegment(k, round(float(a), 3), round(float(b), 3), round(profile.noise_level_db + o, 2))
            for k, a, b, o in zip(kinds, edges[:-1], edges[1:], offsets, strict=True)
        ]

    def _segment_curve(self, seconds: Floats, seg: NoiseSegment) -> Floats:
        ramp = _RAMP_S[seg.kind]
        rise = np.clip((seconds - seg.start_s + ramp / 2) / ramp, 0.0, 1.0) if seg.start_s > 0 else 1.0
        fall = np.clip((seg.stop_s - seconds + ramp / 2) / ramp, 0.0, 1.0) if seg.stop_s < self.total else 1.0
        amp = np.minimum(rise, fall) * np.ones_like(seconds)
        with np.errstate(divide="ignore"):
            return np.asarray(seg.level_db + 20 * np.log10(amp), dtype=np.float64)

    def _noise_events(
        self, kind: str, segs: list[NoiseSegment], level: Floats, hours: Floats, rng: np.random.Generator
    ) -> None:
        on = np.zeros(level.size, dtype=np.bool_)
        for seg in segs:
            on[int(seg.start_s) : int(seg.stop_s)] = True
        if kind == "traffic":
            per_hour = 3.0 + 25.0 * (1.0 - _quiet_hours(hours)) ** 2
            sound, durations, above = "car", (5.0, 14.0), (0.0, 10.0)
        elif kind == "rain":
            stormy = rng.random() < 0.3
            per_hour = np.full(level.size, rng.uniform(1.0, 4.0) if stormy else 0.0)
            sound, durations, above = "thunder", (3.0, 9.0), (4.0, 14.0)
        else:
            return
        hits = np.flatnonzero(on & (rng.random(level.size) < per_hour / 3600.0))
        for t in hits:
            duration = min(rng.uniform(*durations), self.total - float(t))
            lvl = float(level[t] + rng.uniform(*above))
            seed = int(rng.integers(2**31))
            if duration < 0.5 or not np.isfinite(lvl):
                continue
            self.events.append(SimEvent(sound, float(t), round(duration, 3), round(lvl, 2), {}))
            self.sounds.append(Sound(float(t), duration, lvl, sound, seed=seed))

    def epoch_levels_db(self) -> Floats:
        """Nominal RMS of the bed in every epoch, dBFS (events such as cars not included)."""
        power = np.zeros(self.n_epochs)
        for _, gain in self.components:
            g2 = gain[: self.n_epochs * EPOCH_SECONDS] ** 2
            power += g2.reshape(self.n_epochs, EPOCH_SECONDS).mean(axis=1)
        return np.asarray(10 * np.log10(np.maximum(power, 1e-20)), dtype=np.float64)

    def blocks(self) -> Iterator[Floats]:
        """The bed, one epoch (480 000 samples) at a time, from a fresh state."""
        rng = stream(self.seed, "noise-render")
        for comp, _ in self.components:
            comp.reset()
        gain = np.empty((EPOCH_SECONDS, SR))
        for b in range(self.n_epochs):
            out = np.zeros(SAMPLES_PER_EPOCH)
            lo = b * EPOCH_SECONDS
            for comp, curve in self.components:
                ctrl = curve[lo : lo + EPOCH_SECONDS + 1]
                if not ctrl.any():
                    continue
                y = comp.render(rng, SAMPLES_PER_EPOCH)
                if np.ptp(ctrl) <= 1e-4 * ctrl.max():
                    out += y * ctrl[0]
                else:
                    np.multiply.outer(np.diff(ctrl), _SECOND, out=gain)
                    gain += ctrl[:-1, None]
                    gain *= y.reshape(EPOCH_SECONDS, SR)
                    out += gain.reshape(-1)
            yield out


def render_event(sound: Sound) -> Floats:
    """Synthesize a car pass or thunder (unit RMS)."""
    rng = np.random.default_rng(sound.seed)
    if sound.source == "car":
        return _synth.car(rng, sound.duration_s)
    return _synth.thunder(rng, sound.duration_s)

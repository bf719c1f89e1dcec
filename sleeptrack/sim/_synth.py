"""Synthetic sounds: used when no real recording is available (or for variety).

Every function returns float64 audio at 16 kHz with unit RMS over the sound, so callers set the level
with one gain. They are simple physical caricatures, not recordings: filtered-noise breaths, harmonic
snores through vocal-tract formants, syllable babble, bedding rustle, ...
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, iirpeak, lfilter, sosfilt

from sleeptrack.analysis import SAMPLE_RATE

__all__ = [
    "ROOM_DURATIONS",
    "ROOM_SOUNDS",
    "breath",
    "car",
    "cough",
    "phone",
    "room",
    "rustle",
    "snore",
    "thunder",
    "unit_rms",
    "voice",
]

Floats = npt.NDArray[np.float64]
SR: Final = SAMPLE_RATE
NYQ: Final = SR / 2
#: Synthetic room sounds (used when no real room recording is drawn).
ROOM_SOUNDS: Final = ("door", "knock", "dog", "siren", "water", "clock")


def unit_rms(x: Floats) -> Floats:
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return x / rms if rms > 0 else x


def _bandpass(x: Floats, lo: float, hi: float, order: int = 2) -> Floats:
    hi = min(hi, 0.95 * NYQ)
    sos = butter(order, [lo, hi], btype="bandpass", fs=SR, output="sos")
    return np.asarray(sosfilt(sos, x), dtype=np.float64)


def _lowpass(x: Floats, fc: float, order: int = 2) -> Floats:
    sos = butter(order, min(fc, 0.95 * NYQ), btype="lowpass", fs=SR, output="sos")
    return np.asarray(sosfilt(sos, x), dtype=np.float64)


def _highpass(x: Floats, fc: float, order: int = 2) -> Floats:
    sos = butter(order, fc, btype="highpass", fs=SR, output="sos")
    return np.asarray(sosfilt(sos, x), dtype=np.float64)


def _resonate(x: Floats, freq: float, q: float) -> Floats:
    b, a = iirpeak(min(freq, 0.9 * NYQ), q, fs=SR)
    return np.asarray(lfilter(b, a, x), dtype=np.float64)


def _fades(x: Floats, seconds: float = 0.01) -> Floats:
    n = min(int(seconds * SR), x.size // 2)
    if n > 0:
        ramp = np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _swell(n: int, attack: float, power: float = 1.5) -> Floats:
    """Rise over ``attack`` of the length, then fall: the envelope of a breath or a snore."""
    t = np.linspace(0.0, 1.0, n)
    a = float(np.clip(attack, 0.05, 0.95))
    rise = np.sin(np.pi / 2 * np.clip(t / a, 0, 1)) ** power
    fall = np.cos(np.pi / 2 * np.clip((t - a) / (1 - a), 0, 1)) ** power
    return np.asarray(np.where(t < a, rise, fall), dtype=np.float64)


def _slow_noise(rng: np.random.Generator, n: int, fc: float) -> Floats:
    return unit_rms(_lowpass(rng.standard_normal(n), fc, order=1))


def breath(rng: np.random.Generator, inhale: bool, duration: float) -> Floats:
    """A breath as turbulent noise: band-limited, one or two airway resonances, a swelling envelope."""
    n = max(int(duration * SR), 64)
    x = rng.standard_normal(n)
    nasal = rng.random() < 0.5
    lo = rng.uniform(400.0, 900.0) if nasal else rng.uniform(150.0, 400.0)
    hi = rng.uniform(5000.0, 7500.0) if nasal else rng.uniform(2500.0, 5000.0)
    y = _bandpass(x, lo, hi)
    y = y + 0.8 * unit_rms(_resonate(x, rng.uniform(500.0, 2200.0), rng.uniform(1.5, 4.0))) * np.std(y)
    attack = rng.uniform(0.3, 0.5) if inhale else rng.uniform(0.1, 0.3)
    env = _swell(n, attack) * (1.0 + 0.15 * _slow_noise(rng, n, 8.0))
    return unit_rms(_fades(y * np.maximum(env, 0.0)))


def snore(rng: np.random.Generator, f0: float, duration: float) -> Floats:
    """A snore: a flapping soft palate (harmonic source at ``f0`` with jitter) through two formants."""
    n = max(int(duration * SR), 64)
    t = np.arange(n) / SR
    contour = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 6.3)))
    contour *= 1.0 + 0.04 * _slow_noise(rng, n, 30.0)
    phase = 2 * np.pi * np.cumsum(contour) / SR
    source = np.zeros(n)
    for k in range(1, max(2, int(2000.0 / f0))):
        source += np.sin(k * phase + rng.uniform(0, 6.3)) / k**1.1
    source = unit_rms(source) + rng.uniform(0.1, 0.4) * rng.standard_normal(n)
    y = _resonate(source, rng.uniform(250.0, 650.0), rng.uniform(2.0, 5.0))
    y += 0.6 * _resonate(source, rng.uniform(900.0, 1700.0), rng.uniform(2.0, 5.0))
    y = _lowpass(y + 0.2 * source, rng.uniform(2000.0, 3500.0))
    return unit_rms(_fades(y * _swell(n, rng.uniform(0.2, 0.45), 1.2)))


def voice(rng: np.random.Generator, f0: float, duration: float) -> Floats:
    """Speech-like babble: voiced syllables at 4-5 per second with moving vowel formants."""
    n = max(int(duration * SR), 64)
    out = np.zeros(n)
    pos = 0
    while pos < n:
        syl = int(rng.uniform(0.12, 0.3) * SR)
        seg = min(syl, n - pos)
        t = np.arange(seg) / SR
        declination = 1.0 - 0.15 * t / max(float(t[-1]), 1e-3)
        pitch = f0 * (1.0 + rng.uniform(-0.15, 0.15)) * declination
        phase = 2 * np.pi * np.cumsum(pitch) / SR
        src = np.zeros(seg)
        for k in range(1, max(2, int(3500.0 / f0))):
            src += np.sin(k * phase) / k
        vowel = _resonate(src, rng.uniform(300.0, 850.0), 6.0) + 0.7 * _resonate(src, rng.uniform(900.0, 2400.0), 8.0)
        burst = int(min(seg, rng.uniform(0.02, 0.07) * SR))
        if rng.random() < 0.6 and burst > 8:
            vowel[:burst] += 0.5 * np.std(vowel) * _highpass(rng.standard_normal(burst), 2500.0)
        out[pos : pos + seg] = vowel * _swell(seg, 0.3, 1.0)
        pos += seg + int(rng.uniform(0.0, 0.05) * SR)
        if rng.random() < 0.15:
            pos += int(rng.uniform(0.1, 0.4) * SR)
    return unit_rms(_fades(out))


def rustle(rng: np.random.Generator, duration: float) -> Floats:
    """A body movement: crackling bedding noise in a few sub-bursts, sometimes a bed creak or thump."""
    n = max(int(duration * SR), 64)
    x = _bandpass(rng.standard_normal(n), rng.uniform(100.0, 300.0), rng.uniform(5000.0, 7800.0))
    crackle = np.abs(_lowpass(rng.standard_normal(n), rng.uniform(15.0, 40.0), order=1))
    crackle = (crackle / (np.max(crackle) + 1e-12)) ** rng.uniform(1.0, 2.5)
    bursts = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        centre, width = rng.uniform(0.1, 0.9) * n, rng.uniform(0.15, 0.5) * n
        bursts += np.exp(-0.5 * ((np.arange(n) - centre) / (width / 2.5)) ** 2)
    y = x * (0.3 + crackle) * bursts
    if rng.random() < 0.4:
        m = min(n, int(0.3 * SR))
        tt = np.arange(m) / SR
        thump = np.sin(2 * np.pi * rng.uniform(60.0, 150.0) * tt) * np.exp(-tt * rng.uniform(10.0, 30.0))
        start = int(rng.uniform(0, max(1, n - m)))
        y[start : start + m] += 2.0 * np.std(y) * thump
    return unit_rms(_fades(y))


def _clicks(rng: np.random.Generator, n: int, times: Floats, freq: tuple[float, float], decay: float) -> Floats:
    out = np.zeros(n)
    m = int(0.03 * SR)
    tt = np.arange(m) / SR
    for t in times:
        i = int(t * SR)
        if i >= n:
            continue
        click = np.sin(2 * np.pi * rng.uniform(*freq) * tt) * np.exp(-tt * decay) * rng.uniform(0.5, 1.0)
        out[i : i + m] += click[: n - i]
    return out


def phone(rng: np.random.Generator, duration: float, audio: Floats | None = None) -> Floats:
    """Handling a phone: screen taps, light rustle, sometimes the phone's own speaker (``audio``)."""
    n = max(int(duration * SR), 64)
    taps = np.sort(rng.uniform(0, duration, rng.poisson(2.5 * duration) + 1))
    y = _clicks(rng, n, taps, (1800.0, 4500.0), 900.0)
    y = unit_rms(y) + 0.35 * rustle(rng, duration)[:n]
    if audio is not None and audio.size:
        speaker = _bandpass(np.resize(audio, n), 500.0, 5000.0)
        y += 0.6 * unit_rms(speaker)
    return unit_rms(_fades(y))


def cough(rng: np.random.Generator, duration: float) -> Floats:
    """One to three coughs: sharp broadband bursts with a vowel-like formant and a decay."""
    n = max(int(duration * SR), 64)
    y = np.zeros(n)
    count = int(rng.integers(1, 4))
    starts = np.sort(rng.uniform(0, max(duration - 0.35, 0.01), count))
    for s in starts:
        i = int(s * SR)
        m = min(int(rng.uniform(0.25, 0.45) * SR), n - i)
        if m <= 8:
            continue
        tt = np.arange(m) / SR
        burst = _bandpass(rng.standard_normal(m), 200.0, 6000.0)
        burst += 1.5 * _resonate(rng.standard_normal(m), rng.uniform(450.0, 800.0), 3.0)
        env = (1 - np.exp(-tt / 0.004)) * np.exp(-tt / rng.uniform(0.06, 0.15))
        y[i : i + m] += burst * env
    return unit_rms(_fades(y, 0.003))


#: Typical length of each synthetic room sound, seconds.
ROOM_DURATIONS: Final = {
    "door": (0.5, 0.9),
    "knock": (0.8, 1.6),
    "dog": (0.8, 2.0),
    "siren": (3.0, 8.0),
    "water": (3.0, 8.0),
    "clock": (4.0, 10.0),
}


def room(rng: np.random.Generator, kind: str, duration: float) -> Floats:
    """A sound from elsewhere in the home or outside (``kind`` in :data:`ROOM_SOUNDS`)."""
    n = max(int(duration * SR), 64)
    tt = np.arange(n) / SR
    if kind == "door":
        y = _lowpass(rng.standard_normal(n), rng.uniform(150.0, 400.0)) * np.exp(-tt / 0.12) * 4
        y += _clicks(rng, n, np.array([0.0, rng.uniform(0.1, 0.3)]), (2000.0, 4000.0), 600.0)
    elif kind == "knock":
        times = np.cumsum(rng.uniform(0.15, 0.3, int(rng.integers(2, 5)))) - 0.1
        y = _clicks(rng, n, times, (150.0, 320.0), 60.0)
    elif kind == "dog":
        y = np.zeros(n)
        for s in np.sort(rng.uniform(0, max(duration - 0.3, 0.01), int(rng.integers(1, 4)))):
            b = voice(rng, rng.uniform(400.0, 700.0), rng.uniform(0.15, 0.25))
            i = int(s * SR)
            y[i : i + b.size] += b[: n - i]
    elif kind == "siren":
        freq = 950 + 320 * np.sin(2 * np.pi * tt / rng.uniform(0.8, 2.0))
        phase = 2 * np.pi * np.cumsum(freq) / SR
        y = _lowpass(np.sin(phase) + 0.3 * np.sin(2 * phase), 1500.0) * _swell(n, 0.5, 1.0)
    elif kind == "water":
        y = _bandpass(rng.standard_normal(n), 300.0, 3000.0) * (1 + 0.5 * _slow_noise(rng, n, 12.0))
        y *= _swell(n, 0.2, 1.0)
    elif kind == "clock":
        y = _clicks(rng, n, np.arange(0.0, duration, 1.0), (2500.0, 3500.0), 1500.0)
    else:
        raise ValueError(f"unknown room sound {kind!r}")
    return unit_rms(_fades(np.asarray(y, dtype=np.float64)))


def car(rng: np.random.Generator, duration: float) -> Floats:
    """A car passing: tyre and engine rumble rising and falling, brighter as it passes closest."""
    n = max(int(duration * SR), 64)
    x = rng.standard_normal(n)
    t = np.arange(n) / n
    width = rng.uniform(0.12, 0.2)
    low = _lowpass(x, rng.uniform(300.0, 700.0)) * np.exp(-0.5 * ((t - 0.5) / width) ** 2)
    high = _bandpass(x, 500.0, 3000.0) * np.exp(-0.5 * ((t - 0.5) / (width / 2)) ** 2)
    return unit_rms(_fades(unit_rms(low) + 0.4 * unit_rms(high), 0.2))


def thunder(rng: np.random.Generator, duration: float) -> Floats:
    """Distant thunder: a crack then a low rumble with slow, irregular decay."""
    n = max(int(duration * SR), 64)
    tt = np.arange(n) / SR
    brown = _highpass(np.cumsum(rng.standard_normal(n)), 20.0, order=1)
    rumble = _lowpass(brown, rng.uniform(150.0, 350.0)) * np.exp(-tt / rng.uniform(1.0, 3.0))
    rumble = unit_rms(rumble) * (1 + 0.6 * _slow_noise(rng, n, 3.0))
    m = min(n, int(0.25 * SR))
    crack = np.zeros(n)
    crack[:m] = _highpass(rng.standard_normal(m), 800.0) * np.exp(-np.arange(m) / SR / 0.05)
    return unit_rms(_fades(rumble + 0.5 * crack, 0.02))

"""Audio input: WAV, MP3, FLAC and OGG at 16 / 44.1 / 48 kHz, mono or stereo → 16 kHz mono float32.

Two entry points:

* :func:`decode_chunk` for one uploaded 30-second chunk (bytes), strict about length;
* :func:`iter_audio_blocks` for a whole recording, streamed in 30-second blocks so memory stays flat for
  any length. Resampling is seamless across blocks: each block is resampled with a little context from
  its neighbours, so the result equals resampling the whole file at once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.signal import resample_poly

from ._constants import EPOCH_SECONDS, SAMPLE_RATE, SAMPLES_PER_EPOCH

__all__ = [
    "SUPPORTED_FORMATS",
    "SUPPORTED_RATES",
    "AudioFormatError",
    "AudioInfo",
    "audio_info",
    "decode_chunk",
    "iter_audio_blocks",
    "resample_to_16k",
]

SUPPORTED_RATES = (16_000, 44_100, 48_000)
SUPPORTED_FORMATS = ("WAV", "MP3", "FLAC", "OGG")
#: Decoders of compressed formats may add or drop a few milliseconds (MP3 encoder delay); chunks within
#: this tolerance of 30 s are padded or trimmed to exactly 30 s.
LENGTH_TOLERANCE_SECONDS = 0.25

_F32 = npt.NDArray[np.float32]


class AudioFormatError(ValueError):
    """Audio that sleeptrack cannot use: corrupt, wrong format, rate, channel count or length."""


@dataclass(frozen=True)
class AudioInfo:
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(source: str | Path | bytes | BinaryIO) -> sf.SoundFile:
    handle: str | BinaryIO
    if isinstance(source, bytes):
        if not source:
            raise AudioFormatError("the audio file is empty")
        handle = io.BytesIO(source)
    elif isinstance(source, str | Path):
        if not Path(source).is_file():
            raise AudioFormatError(f"audio file not found: {source}")
        handle = str(source)
    else:
        handle = source
    try:
        return sf.SoundFile(handle)
    except sf.LibsndfileError as exc:
        raise AudioFormatError(
            f"could not decode the audio ({exc.error_string.strip().rstrip('.')}); "
            f"use {', '.join(SUPPORTED_FORMATS)} at 16, 44.1 or 48 kHz"
        ) from exc


def _check(f: sf.SoundFile) -> AudioInfo:
    fmt = str(f.format)
    if fmt not in SUPPORTED_FORMATS:
        raise AudioFormatError(f"unsupported audio format {fmt}: use {', '.join(SUPPORTED_FORMATS)}")
    if f.samplerate not in SUPPORTED_RATES:
        raise AudioFormatError(f"unsupported sample rate {f.samplerate} Hz: use 16000, 44100 or 48000 Hz")
    if f.channels not in (1, 2):
        raise AudioFormatError(f"{f.channels} audio channels: use mono or stereo")
    return AudioInfo(fmt, int(f.samplerate), int(f.channels), int(f.frames))


def audio_info(source: str | Path | bytes) -> AudioInfo:
    """Format, rate, channels and length of an audio file, validated (raises :class:`AudioFormatError`)."""
    with _open(source) as f:
        return _check(f)


def _read(f: sf.SoundFile, frames: int) -> _F32:
    try:
        data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFormatError(f"the audio data is corrupt ({exc})") from exc
    mono: _F32 = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return mono


def _ratio(rate: int) -> tuple[int, int]:
    frac = Fraction(SAMPLE_RATE, rate)
    return frac.numerator, frac.denominator


def resample_to_16k(samples: _F32, rate: int) -> _F32:
    """Resample a whole signal to 16 kHz with a polyphase anti-aliasing filter."""
    if rate == SAMPLE_RATE:
        return samples.astype(np.float32, copy=False)
    up, down = _ratio(rate)
    out: _F32 = resample_poly(samples, up, down).astype(np.float32)
    return out


def decode_chunk(data: bytes, seconds: float = EPOCH_SECONDS) -> _F32:
    """Decode one uploaded chunk to exactly ``seconds`` of 16 kHz mono float32 samples.

    Raises
    ------
    AudioFormatError
        If the bytes are not audio sleeptrack accepts, or not ``seconds`` long (within 0.25 s).
    """
    with _open(data) as f:
        info = _check(f)
        samples = _read(f, -1)
    length = samples.size / info.sample_rate
    if abs(length - seconds) > LENGTH_TOLERANCE_SECONDS:
        raise AudioFormatError(
            f"audio format should be {seconds:g} sec (16khz, 44.1khz, 48khz) (mp3, wav, flac, ogg) "
            f"under 10MB; got {length:.2f} sec"
        )
    out = resample_to_16k(samples, info.sample_rate)
    target = round(seconds * SAMPLE_RATE)
    if out.size < target:
        out = np.pad(out, (0, target - out.size))
    return np.ascontiguousarray(out[:target], dtype=np.float32)


def iter_audio_blocks(source: str | Path | BinaryIO, block_seconds: float = EPOCH_SECONDS) -> Iterator[_F32]:
    """Stream a recording as 16 kHz mono blocks of ``block_seconds`` (the last one may be shorter).

    Memory holds one block and a few milliseconds of context, whatever the length of the file.
    """
    with _open(source) as f:
        info = _check(f)
        rate = info.sample_rate
        block_in = round(block_seconds * rate)
        if rate == SAMPLE_RATE:
            while True:
                block = _read(f, block_in)
                if block.size == 0:
                    return
                yield block
                if block.size < block_in:
                    return
        up, down = _ratio(rate)
        # Context on each side: a whole multiple of `down` input samples (~2048), far longer than the
        # anti-aliasing filter (10 * max(up, down) taps in the upsampled domain).
        pad = down * -(-2048 // down)
        pad_out = pad * up // down
        previous = np.zeros(pad, dtype=np.float32)
        current = _read(f, block_in)
        while current.size:
            following = _read(f, block_in) if current.size == block_in else np.zeros(0, np.float32)
            ahead = following[:pad]
            if ahead.size < pad:
                ahead = np.pad(ahead, (0, pad - ahead.size))
            joined = np.concatenate((previous, current, ahead))
            resampled = resample_poly(joined, up, down).astype(np.float32)
            n_out = -(-current.size * up // down)  # ceil, as resample_poly sizes its output
            yield np.ascontiguousarray(resampled[pad_out : pad_out + n_out])
            previous = current[-pad:] if current.size >= pad else np.pad(current, (pad - current.size, 0))
            current = following


def epoch_blocks(source: str | Path | BinaryIO) -> Iterator[_F32]:
    """Whole 30-second epochs of a recording; a final partial epoch is dropped."""
    for block in iter_audio_blocks(source):
        if block.size == SAMPLES_PER_EPOCH:
            yield block

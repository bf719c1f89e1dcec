"""Audio input: every accepted format, rate and channel count; clear errors for everything else."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from sleeptrack.analysis._audio import (
    AudioFormatError,
    audio_info,
    decode_chunk,
    iter_audio_blocks,
    resample_to_16k,
)

FORMATS = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}


def tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> npt.NDArray[np.float32]:
    t = np.arange(int(rate * seconds)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, mono * 0.5], axis=1)


def encode(samples: npt.NDArray[np.float32], rate: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=FORMATS[fmt])
    return buf.getvalue()


def peak_frequency(samples: npt.NDArray[np.float32], rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_every_accepted_format_rate_and_channel_count(fmt: str, rate: int, channels: int) -> None:
    data = encode(tone(rate, 30.0, 440.0, channels), rate, fmt)
    samples = decode_chunk(data)
    assert samples.dtype == np.float32
    assert samples.shape == (480_000,)
    assert peak_frequency(samples) == pytest.approx(440.0, abs=1.0)
    expected_rms = 0.3 / np.sqrt(2) * (0.75 if channels == 2 else 1.0)  # stereo is averaged to mono
    middle = samples[16_000:-16_000]
    assert float(np.sqrt(np.mean(middle**2))) == pytest.approx(expected_rms, rel=0.08)


def test_silence_is_not_an_error() -> None:
    samples = decode_chunk(encode(np.zeros(480_000, np.float32), 16_000, "WAV"))
    assert samples.shape == (480_000,)
    assert not samples.any()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not audio at all" * 100, "could not decode"),
        (encode(tone(16_000, 30.0), 16_000, "WAV")[:5000] + b"\x00" * 3, "30 sec"),
        (encode(tone(16_000, 10.0), 16_000, "WAV"), "should be 30 sec"),
        (encode(tone(16_000, 45.0), 16_000, "FLAC"), "got 45.00 sec"),
    ],
)
def test_bad_chunks_are_rejected_clearly(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        decode_chunk(data)


def test_unsupported_rate_and_channel_count() -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(22_050, 30.0), 22_050, format="WAV")
    with pytest.raises(AudioFormatError, match="unsupported sample rate 22050 Hz"):
        decode_chunk(buf.getvalue())
    buf = io.BytesIO()
    sf.write(buf, np.zeros((16_000 * 30, 3), np.float32), 16_000, format="WAV")
    with pytest.raises(AudioFormatError, match="3 audio channels"):
        decode_chunk(buf.getvalue())
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16_000 * 30, np.float32), 16_000, format="AIFF")
    with pytest.raises(AudioFormatError, match="unsupported audio format AIFF"):
        decode_chunk(buf.getvalue())


def test_truncated_compressed_file_is_rejected() -> None:
    data = encode(tone(44_100, 30.0), 44_100, "FLAC")
    with pytest.raises(AudioFormatError):
        decode_chunk(data[: len(data) // 3])


@pytest.mark.parametrize("rate", [16_000, 44_100, 48_000])
def test_streaming_equals_whole_file_resampling(tmp_path: Path, rate: int) -> None:
    rng = np.random.default_rng(rate)
    seconds = 95.5  # three whole blocks and a partial one
    samples = (rng.standard_normal(int(rate * seconds)) * 0.1).astype(np.float32)
    path = tmp_path / "night.flac"
    sf.write(path, samples, rate, subtype="PCM_24")
    whole, _ = sf.read(path, dtype="float32")
    expected = resample_to_16k(whole, rate)
    blocks = list(iter_audio_blocks(path))
    assert [b.size for b in blocks[:3]] == [480_000] * 3
    streamed = np.concatenate(blocks)
    assert abs(streamed.size - expected.size) <= 1
    n = min(streamed.size, expected.size)
    assert np.max(np.abs(streamed[:n] - expected[:n])) < 1e-5
    assert audio_info(path).sample_rate == rate


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="not found"):
        list(iter_audio_blocks(tmp_path / "nope.wav"))

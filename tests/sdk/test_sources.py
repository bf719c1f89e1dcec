"""Audio sources: chunking, streaming resampling, files, iterators, simulated nights, a fake microphone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from sleeptrack.analysis import SAMPLES_PER_EPOCH, iter_audio_blocks
from sleeptrack.sdk import (
    AsleepErrorCode,
    AudioSourceError,
    Chunker,
    FileSource,
    IteratorSource,
    MicrophoneSource,
    SimulatedNightSource,
    SourceInterruptedError,
    StreamResampler,
)

from ._fake_sounddevice import FakeSoundDevice, tone


def _collect(blocks: object) -> np.ndarray:
    return np.concatenate(list(blocks))  # type: ignore[call-overload]


def test_chunker_makes_exact_30s_chunks() -> None:
    chunker = Chunker()
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(SAMPLES_PER_EPOCH * 3 + 1234).astype(np.float32)
    chunks = []
    pos = 0
    while pos < signal.size:
        size = int(rng.integers(1, 70_000))
        chunks += chunker.push(signal[pos : pos + size])
        pos += size
    assert len(chunks) == 3 and chunker.buffered == 1234
    assert np.array_equal(np.concatenate(chunks), signal[: 3 * SAMPLES_PER_EPOCH])
    chunker.clear()
    assert chunker.buffered == 0


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000, 11_025])
def test_stream_resampler_equals_whole_signal_resampling(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate * 7 + 321).astype(np.float32)
    expected = resample_poly(x, *_ratio(rate)).astype(np.float32)
    r = StreamResampler(rate)
    out = []
    pos = 0
    while pos < x.size:
        size = int(rng.integers(100, 30_000))
        out.append(r.push(x[pos : pos + size]))
        pos += size
    out.append(r.flush())
    got = np.concatenate(out)
    assert got.size == expected.size
    np.testing.assert_allclose(got, expected, atol=2e-5)


def _ratio(rate: int) -> tuple[int, int]:
    from fractions import Fraction

    f = Fraction(16_000, rate)
    return f.numerator, f.denominator


def test_iterator_source_accepts_int16_stereo_at_any_rate() -> None:
    rate = 44_100
    t = np.arange(rate * 2) / rate
    left = (0.2 * np.sin(2 * np.pi * 300 * t) * 32767).astype(np.int16)
    stereo = np.stack([left, left], axis=1)
    blocks = [stereo[i : i + 4410] for i in range(0, stereo.shape[0], 4410)]
    out = _collect(IteratorSource(blocks, sample_rate=rate).blocks())
    assert out.dtype == np.float32 and out.size == 32_000
    assert abs(float(np.max(np.abs(out[1000:-1000]))) - 0.2) < 0.01
    with pytest.raises(ValueError):
        list(IteratorSource([np.zeros((2, 2, 2))]).blocks())


def test_iterator_source_stops() -> None:
    def endless() -> object:
        while True:
            yield np.zeros(1600, np.float32)

    src = IteratorSource(endless())  # type: ignore[arg-type]
    got = 0
    for _ in src.blocks():
        got += 1
        if got == 5:
            src.stop()
    assert got == 5


def _write(path: Path, seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    sf.write(path, data, rate, subtype="PCM_16")
    return data


@pytest.mark.parametrize(("name", "rate", "channels"), [("a.wav", 16_000, 1), ("b.flac", 44_100, 2)])
def test_file_source_reads_what_the_engine_reads(tmp_path: Path, name: str, rate: int, channels: int) -> None:
    path = tmp_path / name
    _write(path, 65, rate, channels)
    src = FileSource(path, speed=0)
    assert src.epochs == 2 and not src.live
    got = _collect(src.blocks())
    np.testing.assert_array_equal(got, _collect(iter_audio_blocks(path)))
    # continuing at epoch 1 gives exactly the rest
    np.testing.assert_array_equal(_collect(src.blocks(start_epoch=1)), got[SAMPLES_PER_EPOCH:])


def test_file_source_other_rates_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "c.aiff"
    data = _write(path, 31, 22_050)
    got = _collect(FileSource(path, speed=0).blocks())
    pcm = sf.read(path, dtype="float32")[0]
    expected = resample_poly(pcm, 320, 441).astype(np.float32)
    assert got.size == expected.size and data.shape[0] == 31 * 22_050
    np.testing.assert_allclose(got, expected, atol=2e-5)


def test_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioSourceError) as info:
        FileSource(tmp_path / "missing.wav")
    assert info.value.code is AsleepErrorCode.ERR_AUDIO
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioSourceError):
        FileSource(bad)
    with pytest.raises(ValueError):
        FileSource(tmp_path / "x.wav", speed=-1)


def test_pacing(tmp_path: Path) -> None:
    path = tmp_path / "p.wav"
    _write(path, 90, 16_000)
    src = FileSource(path, speed=300.0)  # an epoch every 0.1 s
    started = time.monotonic()
    stamps = [time.monotonic() - started for _ in src.blocks()]
    assert len(stamps) == 3
    assert stamps[0] < 0.09 and 0.18 <= stamps[2] < 0.6
    src2 = FileSource(path, speed=1.0)
    timer = threading.Timer(0.2, src2.stop)
    timer.start()
    started = time.monotonic()
    assert len(list(src2.blocks())) == 1  # the first epoch, then stopped while waiting for the second
    assert time.monotonic() - started < 2.0


def test_simulated_night_source() -> None:
    src = SimulatedNightSource(hours=2 / 60, seed=3, speed=0)
    assert src.epochs == 4 and src.truth.hypnogram.n_epochs == 4 and not src.live
    epochs = list(src.blocks())
    assert [e.size for e in epochs] == [SAMPLES_PER_EPOCH] * 4
    rest = list(src.blocks(start_epoch=2))
    assert len(rest) == 2 and np.array_equal(rest[0], epochs[2])
    assert src.describe()["config"]["seed"] == 3


# ------------------------------------------------------------------------------------------ microphone
def test_microphone_at_16k() -> None:
    sd = FakeSoundDevice(tone(440), native_rate=16_000)
    mic = MicrophoneSource(sd=sd, block_seconds=0.25)
    got = []
    for block in mic.blocks():
        got.append(block)
        if sum(b.size for b in got) >= SAMPLES_PER_EPOCH:
            mic.stop()
    audio = np.concatenate(got)
    expected = tone(440)(16_000, 0, audio.size)
    np.testing.assert_allclose(audio, expected, atol=1e-6)
    assert sd.opened[0].samplerate == 16_000 and sd.opened[0].closed and not sd.opened[0].active
    assert mic.overflows == 1


def test_microphone_falls_back_to_the_device_rate() -> None:
    sd = FakeSoundDevice(tone(1000), native_rate=48_000, refuse_16k=True)
    mic = MicrophoneSource(sd=sd)
    got = []
    for block in mic.blocks():
        got.append(block)
        if sum(b.size for b in got) >= 16_000 * 3:
            mic.stop()
    audio = np.concatenate(got)[2000:40_000]
    assert sd.opened[0].samplerate == 48_000 and mic.sample_rate == 48_000
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * 16_000 / audio.size
    assert abs(peak_hz - 1000) < 5


def test_microphone_stall_is_an_interruption() -> None:
    sd = FakeSoundDevice(tone(), native_rate=16_000, stall_after=4)
    mic = MicrophoneSource(sd=sd, stall_seconds=0.3)
    got = 0

    def drain() -> None:
        nonlocal got
        for block in mic.blocks():
            got += block.size

    with pytest.raises(SourceInterruptedError):
        drain()
    assert got == 4 * 8000 and sd.opened[0].closed


def test_microphone_errors() -> None:
    with pytest.raises(AudioSourceError) as info:
        list(MicrophoneSource(sd=FakeSoundDevice(tone(), query_error="Error querying device -1")).blocks())
    assert info.value.code is AsleepErrorCode.ERR_AUDIO
    with pytest.raises(AudioSourceError) as info:
        list(MicrophoneSource(sd=FakeSoundDevice(tone(), query_error="Permission denied")).blocks())
    assert info.value.code is AsleepErrorCode.ERR_MIC_PERMISSION


def test_microphone_without_portaudio_is_a_clear_error() -> None:
    mic = MicrophoneSource()
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        with pytest.raises(AudioSourceError, match=r"mic|PortAudio|audio system"):
            next(iter(mic.blocks()))
    else:
        pytest.skip("a real sounddevice with PortAudio is installed")

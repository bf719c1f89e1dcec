"""The one mel-spectrogram definition agrees with librosa on the same parameters."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import zstandard

from sleeptrack.analysis._mel import (
    MEL,
    MelFormatError,
    check_mel_chunk,
    decode_mel_chunk,
    encode_mel_chunk,
    mel_filterbank,
    mel_spectrogram,
    quantize_roundtrip,
)


def assert_matches(ours: npt.NDArray[np.float32], ref: npt.NDArray[np.float32]) -> None:
    """Equal within float32 FFT precision: exact to 0.005 dB within 80 dB of each frame's peak; far below
    the peak (a pure tone's empty bands, > 100 dB down) both libraries only resolve float32 rounding."""
    near_peak = ref > ref.max(axis=1, keepdims=True) - 80.0
    assert np.max(np.abs(ours - ref)[near_peak]) < 5e-3
    assert np.max(np.abs(ours - ref)) < 0.5


def librosa_mel(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    power = librosa.feature.melspectrogram(
        y=samples,
        sr=MEL.sample_rate,
        n_fft=MEL.n_fft,
        win_length=MEL.win_length,
        hop_length=MEL.hop_length,
        n_mels=MEL.n_mels,
        fmin=MEL.fmin,
        fmax=MEL.fmax,
        center=True,
        pad_mode="constant",
        power=2.0,
    )
    db: npt.NDArray[np.float32] = librosa.power_to_db(power, ref=1.0, amin=MEL.amin, top_db=None).T
    return db


def signals() -> dict[str, npt.NDArray[np.float32]]:
    rng = np.random.default_rng(0)
    t = np.arange(480_000) / 16_000
    return {
        "noise": (rng.standard_normal(480_000) * 0.05).astype(np.float32),
        "chirp": (0.5 * np.sin(2 * np.pi * (50 + 120 * t) * t)).astype(np.float32),
        "silence": np.zeros(480_000, np.float32),
        "short": (rng.standard_normal(12_345) * 0.2).astype(np.float32),
    }


def test_filterbank_matches_librosa() -> None:
    ref = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=64, fmin=0.0, fmax=8000.0)
    assert np.allclose(mel_filterbank(), ref, atol=1e-7)


@pytest.mark.parametrize("name", ["noise", "chirp", "silence", "short"])
def test_mel_spectrogram_matches_librosa(name: str) -> None:
    samples = signals()[name]
    ours = mel_spectrogram(samples)
    ref = librosa_mel(samples)
    assert ours.shape == ref.shape == (1 + samples.size // 160, 64)
    assert ours.dtype == np.float32
    assert_matches(ours, ref)


def test_mel_of_a_real_recording_matches_librosa(shared_data: Path) -> None:
    samples, rate = sf.read(shared_data / "misc_recordings" / "snoring.flac", dtype="float32")
    assert rate == 16_000
    samples = samples[: 30 * rate]
    assert_matches(mel_spectrogram(samples), librosa_mel(samples))


def test_chunk_shape_is_3001_frames() -> None:
    assert MEL.chunk_frames == 3001
    assert mel_spectrogram(np.zeros(480_000, np.float32)).shape == (3001, 64)


def test_mel_rejects_multichannel_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        mel_spectrogram(np.zeros((100, 2), np.float32))


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
def test_wire_format_round_trip_is_the_quantised_mel(codec: Literal["zstd", "zlib"]) -> None:
    mel = mel_spectrogram(signals()["noise"])
    data = encode_mel_chunk(mel, codec=codec)
    assert data[12] == {"zlib": 1, "zstd": 2}[codec]  # the header's codec byte
    assert len(data) < 200_000  # vs 960 044 bytes of 16-bit WAV
    back = decode_mel_chunk(data)
    assert back.shape == mel.shape
    assert np.max(np.abs(back - mel)) <= MEL.db_step / 2 + 1e-4
    assert np.array_equal(back, quantize_roundtrip(mel))
    assert np.array_equal(quantize_roundtrip(back), back)  # idempotent


def test_the_sdk_codec_is_zstandard_by_default() -> None:
    mel = np.full((3001, MEL.n_mels), -60.0, np.float32)
    assert encode_mel_chunk(mel)[12] == 2
    with pytest.raises(ValueError, match="unknown codec"):
        encode_mel_chunk(mel, codec="lz4")  # type: ignore[arg-type]


def _zstd(data: bytes, *, size: bool = True, checksum: bool = True) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=size, write_checksum=checksum).compress(data)


def _header(magic: bytes = b"STMEL", version: int = 1, bands: int = 64, frames: int = 3001, codec: int = 1) -> bytes:
    return struct.pack("<5sBHIB", magic, version, bands, frames, codec)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"abc", "too short"),
        (_header(magic=b"RIFF!") + b"x" * 10, "bad magic"),
        (_header(version=9), "version 9"),
        (_header(codec=7), "codec 7"),
        (_header(bands=40), "40 bands"),
        (_header(frames=1000), "1000 frames"),
        (_header() + b"not zlib at all", "corrupt"),
        (_header() + zlib.compress(b"\x00" * 100), "holds 100 values"),
        (_header(codec=2) + b"not zstd at all", "corrupt"),
        (_header(codec=2) + _zstd(b"\x00" * 100), "holds 100 values"),
        # a frame that would inflate to far more than a chunk is refused from its header, before any work
        (_header(codec=2) + _zstd(b"\x00" * 50_000_000), "holds 50000000 values"),
        (_header(codec=2) + _zstd(b"\x00" * 192_064, size=False), "does not give its size"),
        (_header(codec=2) + _zstd(b"\x00" * 192_064, checksum=False), "no checksum"),
        (_header(codec=2) + _zstd(b"\x00" * 192_064)[:-30], "corrupt"),  # truncated
        (_header(codec=2) + _zstd(b"\x00" * 192_064) + b"trailing", "corrupt"),
    ],
)
def test_bad_mel_uploads_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(MelFormatError, match=message):
        decode_mel_chunk(data)
    with pytest.raises(MelFormatError, match=message):  # the server's check refuses exactly the same
        check_mel_chunk(data)


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
def test_the_check_accepts_what_decodes(codec: Literal["zstd", "zlib"]) -> None:
    rng = np.random.default_rng(3)
    mel = (rng.normal(-60, 12, (3001, MEL.n_mels))).astype(np.float32)
    data = encode_mel_chunk(mel, codec=codec)
    check_mel_chunk(data)
    with pytest.raises(MelFormatError, match="corrupt"):  # one flipped bit in the codec's checksum
        check_mel_chunk(data[:-1] + bytes([data[-1] ^ 1]))
    middle = len(data) // 2
    with pytest.raises(MelFormatError, match="corrupt"):  # one flipped bit in the compressed quanta
        check_mel_chunk(data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :])
    assert decode_mel_chunk(data).shape == (3001, MEL.n_mels)


def test_the_server_inflates_with_isal_and_reads_what_zlib_reads() -> None:
    # ISA-L (the `server` extra) replaces zlib for inflating uploads: same bytes out, same checksum refusal.
    from isal import isal_zlib

    from sleeptrack.analysis import _mel

    assert _mel._inflate is isal_zlib.decompress
    rng = np.random.default_rng(4)
    data = encode_mel_chunk(rng.normal(-50, 15, (3001, MEL.n_mels)).astype(np.float32), codec="zlib")
    payload = data[struct.calcsize("<5sBHIB") :]
    assert isal_zlib.decompress(payload) == zlib.decompress(payload)
    for bad in (payload[:-1] + bytes([payload[-1] ^ 1]), payload[: len(payload) // 2]):
        with pytest.raises(_mel._inflate_errors):
            _mel._inflate(bad)
        with pytest.raises(zlib.error):
            zlib.decompress(bad)

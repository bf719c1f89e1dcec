"""The one mel-spectrogram definition, shared by the SDK (on the device) and the server.

``mel-1``: 16 kHz mono, 25 ms Hann window (400 samples) in a 512-point FFT, 10 ms hop (160 samples),
centred frames with zero padding, 64 Slaney mel bands from 0 to 8 kHz with Slaney area normalisation,
power spectrum, ``10 · log10(max(mel, 1e-10))`` (dB, floor −100 dB). This is librosa's
``power_to_db(melspectrogram(y, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64),
ref=1.0, amin=1e-10, top_db=None)``, computed with numpy and scipy only.

A 30-second chunk gives 3001 frames × 64 bands. On the wire (MELSPECTROGRAM uploads) it is quantised to
0.5 dB steps over −100…+27.5 dB (uint8) and compressed (Zstandard with its content checksum; zlib in
chunks from earlier SDKs, still read) behind a small versioned header; the engine
always computes its features from the quantised values, so an AUDIO upload and a MELSPECTROGRAM upload
of the same sound give the same result.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, cast

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.sparse
import zstandard

from ._constants import SAMPLE_RATE, SAMPLES_PER_EPOCH

# Decompressing is most of what checking an upload costs the server. Zstandard (the codec the SDK writes)
# decodes a chunk, checksum included, 2-5x faster than ISA-L inflates the same chunk as zlib, and the
# device compresses it about 6x faster, for 2.5 % more bytes (benchmarks/bench_sdk.py). zlib chunks (the
# SDK's codec before) are still read: ISA-L (python-isal, installed with the `server` extra) inflates them
# about twice as fast as zlib.
_inflate: Callable[..., bytes]
_inflate_errors: tuple[type[Exception], ...]
try:
    from isal import isal_zlib

    # (its stubs declare `error` as an instance; it is the exception class)
    _inflate, _inflate_errors = isal_zlib.decompress, (cast(type[Exception], isal_zlib.error),)
except ImportError:  # pragma: no cover - depends on the install
    _inflate, _inflate_errors = zlib.decompress, (zlib.error,)

__all__ = [
    "MEL",
    "MEL_VERSION",
    "MelFormatError",
    "MelSpec",
    "check_mel_chunk",
    "decode_mel_chunk",
    "encode_mel_chunk",
    "mel_filterbank",
    "mel_spectrogram",
    "quantize_roundtrip",
]

MEL_VERSION: Final = 1

_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MelSpec:
    """Parameters of a mel-spectrogram definition."""

    version: int = MEL_VERSION
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = SAMPLE_RATE / 2
    amin: float = 1e-10
    db_min: float = -100.0
    db_step: float = 0.5

    @property
    def frame_rate(self) -> float:
        """Frames per second (100)."""
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames for a signal of ``n_samples`` (centred framing)."""
        return 1 + n_samples // self.hop_length

    @property
    def chunk_frames(self) -> int:
        """Frames of one 30-second chunk (3001)."""
        return self.n_frames(SAMPLES_PER_EPOCH)

    @property
    def db_max(self) -> float:
        return self.db_min + 255 * self.db_step


MEL: Final = MelSpec()


class MelFormatError(ValueError):
    """A MELSPECTROGRAM upload that is not in the SDK's format (bad header, version, shape or data)."""


# ------------------------------------------------------------------------------------------ filterbank
def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    mel = hz / f_sp
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = hz >= 1000.0
    mel[log_region] = min_log_mel + np.log(hz[log_region] / 1000.0) / logstep
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp = 200.0 / 3
    hz = mel * f_sp
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = mel >= min_log_mel
    hz[log_region] = 1000.0 * np.exp(logstep * (mel[log_region] - min_log_mel))
    return hz


def mel_filterbank(spec: MelSpec = MEL) -> _F32:
    """Triangular Slaney-normalised mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fft_freqs = np.fft.rfftfreq(spec.n_fft, d=1.0 / spec.sample_rate)
    edges_mel = np.linspace(_hz_to_mel(np.array([spec.fmin]))[0], _hz_to_mel(np.array([spec.fmax]))[0], spec.n_mels + 2)
    edges = _mel_to_hz(edges_mel)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2 : spec.n_mels + 2] - edges[: spec.n_mels]))[:, None]
    return weights.astype(np.float32)


def _hann(length: int) -> _F32:
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


#: The filterbank as a sparse matrix (each FFT bin feeds at most two bands): the product is as fast as a
#: dense one and never starts BLAS threads, which on a busy or single-core device cost more than they save.
_FILTERS: Final = scipy.sparse.csr_array(mel_filterbank(MEL))
_WINDOW: Final = _hann(MEL.win_length)


# ------------------------------------------------------------------------------------- spectrogram
#: Frames processed together: small enough that the windowed frames, spectrum and power of a block stay
#: in a 1 MB L2 cache, which makes the whole computation about twice as fast as one big batch.
_BLOCK_FRAMES: Final = 256


class _Workspace(threading.local):
    """Per-thread scratch buffers for one block of frames."""

    def __init__(self) -> None:
        bins = MEL.n_fft // 2 + 1
        self.windowed = np.empty((_BLOCK_FRAMES, MEL.win_length), dtype=np.float32)
        self.power = np.empty((_BLOCK_FRAMES, bins), dtype=np.float32)
        self.scratch = np.empty((_BLOCK_FRAMES, bins), dtype=np.float32)


_WORK: Final = _Workspace()


def mel_spectrogram(samples: npt.ArrayLike) -> _F32:
    """Log-mel spectrogram (dB) of 16 kHz mono samples, shape ``(n_frames, 64)``, float32.

    Frame ``t`` is centred on sample ``160 · t``; a 30-second chunk (480 000 samples) gives 3001 frames.
    """
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {x.shape}")
    spec = MEL
    padded = np.pad(x, spec.n_fft // 2)
    n_frames = spec.n_frames(x.size)
    # Only the centre 400 samples of each 512-sample frame are windowed; the FFT magnitude does not
    # depend on where the zeros sit, so frames start 56 samples in and are zero-padded at the end.
    offset = (spec.n_fft - spec.win_length) // 2
    step = padded.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        padded[offset:],
        shape=(n_frames, spec.win_length),
        strides=(step * spec.hop_length, step),
        writeable=False,
    )
    mel = np.empty((n_frames, spec.n_mels), dtype=np.float32)
    work = _WORK
    for start in range(0, n_frames, _BLOCK_FRAMES):
        stop = min(n_frames, start + _BLOCK_FRAMES)
        count = stop - start
        windowed = work.windowed[:count]
        np.multiply(frames[start:stop], _WINDOW, out=windowed)
        spectrum = scipy.fft.rfft(windowed, n=spec.n_fft, axis=1)
        power = work.power[:count]
        scratch = work.scratch[:count]
        np.square(spectrum.real, out=power)
        np.square(spectrum.imag, out=scratch)
        power += scratch
        mel[start:stop] = (_FILTERS @ power.T).T
    np.maximum(mel, spec.amin, out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    return mel


# ------------------------------------------------------------------------------------ wire format
_MAGIC: Final = b"STMEL"
_HEADER: Final = struct.Struct("<5sBHIB")  # magic, version, n_mels, n_frames, codec
_CODEC_U8_ZLIB: Final = 1
_CODEC_U8_ZSTD: Final = 2
_CODECS: Final = {"zlib": _CODEC_U8_ZLIB, "zstd": _CODEC_U8_ZSTD}
#: Zstandard level 1: as small as higher levels on quantised night sound (it barely compresses), and fast.
ZSTD_LEVEL: Final = 1
_ZLIB_LEVEL: Final = 1


class _Zstd(threading.local):
    """One Zstandard (de)compression context per thread: they are not thread-safe, and costly to make."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, write_content_size=True)
        self.decompressor = zstandard.ZstdDecompressor()


_ZSTD = _Zstd()


def _quantize(mel: _F32) -> npt.NDArray[np.uint8]:
    q = np.rint((mel - MEL.db_min) / MEL.db_step)
    out: npt.NDArray[np.uint8] = np.clip(q, 0, 255).astype(np.uint8)
    return out


def _dequantize(q: npt.NDArray[np.uint8]) -> _F32:
    return (q.astype(np.float32) * np.float32(MEL.db_step) + np.float32(MEL.db_min)).astype(np.float32)


def quantize_roundtrip(mel: _F32) -> _F32:
    """The values a MELSPECTROGRAM upload carries (0.5 dB steps); the engine always works on these."""
    return _dequantize(_quantize(mel))


def encode_mel_chunk(mel: _F32, codec: Literal["zstd", "zlib"] = "zstd") -> bytes:
    """Serialise a mel spectrogram for upload: versioned header + compressed 0.5 dB quanta.

    ``codec``: ``"zstd"`` (Zstandard level 1 with its content checksum, what the SDK sends) or ``"zlib"``
    (level 1, what SDKs before it sent; every server still reads both).
    """
    if mel.ndim != 2 or mel.shape[1] != MEL.n_mels:
        raise ValueError(f"expected shape (n_frames, {MEL.n_mels}), got {mel.shape}")
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {sorted(_CODECS)}")
    header = _HEADER.pack(_MAGIC, MEL_VERSION, MEL.n_mels, mel.shape[0], _CODECS[codec])
    quanta = _quantize(mel).tobytes()
    if codec == "zstd":
        return header + _ZSTD.compressor.compress(quanta)
    return header + zlib.compress(quanta, _ZLIB_LEVEL)


def decode_mel_chunk(data: bytes, n_frames: int | None = MEL.chunk_frames) -> _F32:
    """Read a MELSPECTROGRAM upload back into dB values, validating it strictly.

    Raises
    ------
    MelFormatError
        For a wrong magic, unsupported version or codec, another band count, another frame count than
        ``n_frames`` (3001 for a 30-second chunk; ``None`` accepts any), or a corrupt payload.
    """
    return _dequantize(_read_quanta(data, n_frames))


def check_mel_chunk(data: bytes, n_frames: int | None = MEL.chunk_frames) -> None:
    """Validate a MELSPECTROGRAM upload as :func:`decode_mel_chunk` does, without making the dB values.

    The server checks every upload before answering; decompressing the payload (and checking the codec's
    checksum) is what proves it whole, the conversion to float32 is left to the analysis.
    """
    _read_quanta(data, n_frames)


def _read_quanta(data: bytes, n_frames: int | None) -> npt.NDArray[np.uint8]:
    if len(data) < _HEADER.size:
        raise MelFormatError("not a sleeptrack mel spectrogram: the file is too short")
    magic, version, n_mels, frames, codec = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise MelFormatError("not a sleeptrack mel spectrogram (bad magic bytes); upload AUDIO instead")
    if version != MEL_VERSION:
        raise MelFormatError(f"mel spectrogram version {version} is not supported (this server reads {MEL_VERSION})")
    if codec not in _CODECS.values():
        raise MelFormatError(f"unknown mel spectrogram codec {codec}")
    if n_mels != MEL.n_mels:
        raise MelFormatError(f"mel spectrogram has {n_mels} bands, expected {MEL.n_mels}")
    if n_frames is not None and frames != n_frames:
        raise MelFormatError(f"mel spectrogram has {frames} frames, expected {n_frames} (30 seconds)")
    size = frames * n_mels
    compressed = memoryview(data)[_HEADER.size :]
    payload = _unzstd(compressed, size) if codec == _CODEC_U8_ZSTD else _unzlib(compressed, size)
    if len(payload) != size:
        raise MelFormatError(f"mel spectrogram payload holds {len(payload)} values, expected {size}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(frames, n_mels)


def _unzlib(compressed: memoryview, size: int) -> bytes:
    try:
        return _inflate(compressed, bufsize=size)
    except _inflate_errors as exc:
        raise MelFormatError(f"corrupt mel spectrogram payload ({exc})") from exc


def _unzstd(compressed: memoryview, size: int) -> bytes:
    """One Zstandard frame that says it holds ``size`` bytes and carries its checksum, and nothing after it."""
    try:
        frame = zstandard.get_frame_parameters(compressed)
    except zstandard.ZstdError as exc:
        raise MelFormatError(f"corrupt mel spectrogram payload ({exc})") from exc
    if frame.content_size != size:
        raise MelFormatError(
            f"mel spectrogram payload holds {frame.content_size} values, expected {size}"
            if frame.content_size != zstandard.CONTENTSIZE_UNKNOWN
            else "corrupt mel spectrogram payload (the Zstandard frame does not give its size)"
        )
    if not frame.has_checksum:
        raise MelFormatError("corrupt mel spectrogram payload (the Zstandard frame carries no checksum)")
    try:
        return _ZSTD.decompressor.decompress(compressed, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise MelFormatError(f"corrupt mel spectrogram payload ({exc})") from exc

"""Upload preparation: a 30-s chunk of samples → the bytes of one upload (mel spectrogram or audio file)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from sleeptrack.analysis import SAMPLE_RATE, SAMPLES_PER_EPOCH, encode_mel_chunk, mel_spectrogram

from ._models import InferenceType

__all__ = ["AUDIO_FORMATS", "UploadFormat", "encode_chunk", "upload_format"]

#: Containers for AUDIO uploads: WAV (what every AsleepTrack-compatible server takes) or FLAC (fewer bytes).
AUDIO_FORMATS: Final = ("wav", "flac")
#: Codec of MELSPECTROGRAM uploads: Zstandard, 2.5 % larger than zlib on night sound but ~6x faster to
#: compress here and 2-5x faster for the server to check (see benchmarks/bench_sdk.py); servers also read
#: zlib chunks.
MEL_CODEC: Final = "zstd"


@dataclass(frozen=True)
class UploadFormat:
    filename: str
    content_type: str


def upload_format(inference_type: InferenceType | str, audio_format: str = "wav") -> UploadFormat:
    """File name and content type of the multipart ``file`` part."""
    if InferenceType(inference_type) is InferenceType.MELSPECTROGRAM:
        return UploadFormat("chunk.mel", "application/octet-stream")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {', '.join(AUDIO_FORMATS)}")
    return UploadFormat(f"chunk.{audio_format}", f"audio/{audio_format}")


def encode_chunk(
    samples: npt.NDArray[np.float32], inference_type: InferenceType | str, audio_format: str = "wav"
) -> bytes:
    """The upload body of one 30-s chunk of 16 kHz mono samples.

    MELSPECTROGRAM: the engine's mel spectrogram, quantised and compressed (``encode_mel_chunk``), computed
    here on the device; AUDIO: 16-bit PCM in a WAV or FLAC file.
    """
    if samples.shape != (SAMPLES_PER_EPOCH,):
        raise ValueError(f"a chunk is {SAMPLES_PER_EPOCH} samples (30 s at 16 kHz), got shape {samples.shape}")
    if InferenceType(inference_type) is InferenceType.MELSPECTROGRAM:
        return encode_mel_chunk(mel_spectrogram(samples), codec=MEL_CODEC)
    upload_format(inference_type, audio_format)
    buffer = io.BytesIO()
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(buffer, pcm, SAMPLE_RATE, format=audio_format.upper(), subtype="PCM_16")
    return buffer.getvalue()

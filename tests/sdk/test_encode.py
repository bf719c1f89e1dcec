"""Upload preparation: the mel spectrogram on the device is the server's; audio chunks decode back."""

from __future__ import annotations

import numpy as np
import pytest

from sleeptrack.analysis import SAMPLES_PER_EPOCH, decode_chunk, decode_mel_chunk, mel_spectrogram
from sleeptrack.analysis._mel import quantize_roundtrip
from sleeptrack.sdk import InferenceType, encode_chunk, upload_format


@pytest.fixture
def chunk() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (0.05 * rng.standard_normal(SAMPLES_PER_EPOCH)).astype(np.float32)


def test_mel_upload_is_the_engines_mel(chunk: np.ndarray) -> None:
    body = encode_chunk(chunk, InferenceType.MELSPECTROGRAM)
    np.testing.assert_array_equal(decode_mel_chunk(body), quantize_roundtrip(mel_spectrogram(chunk)))
    assert upload_format("MELSPECTROGRAM").filename == "chunk.mel"


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_audio_upload_decodes_back(chunk: np.ndarray, fmt: str) -> None:
    body = encode_chunk(chunk, InferenceType.AUDIO, fmt)
    np.testing.assert_allclose(decode_chunk(body), chunk, atol=1 / 32768 + 1e-7)
    assert upload_format("AUDIO", fmt).content_type == f"audio/{fmt}"


def test_bad_input(chunk: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_chunk(chunk[:100], InferenceType.MELSPECTROGRAM)
    with pytest.raises(ValueError):
        encode_chunk(chunk, InferenceType.AUDIO, "mp3")

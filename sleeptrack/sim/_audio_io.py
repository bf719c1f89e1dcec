"""Audio file formats of the simulator, chosen from the file name's suffix."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import soundfile as sf

from sleeptrack.analysis import SAMPLE_RATE

from ._config import SimulationError

__all__ = ["AUDIO_SUFFIXES", "audio_format", "open_for_writing"]

#: suffix → (libsndfile format, subtype). FLAC and WAV are 16-bit PCM and hold exactly the samples
#: that :meth:`NightSimulator.iter_epochs` yields; OGG (Vorbis) and MP3 are lossy.
_FORMATS: Final = {
    ".flac": ("FLAC", "PCM_16"),
    ".wav": ("WAV", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
AUDIO_SUFFIXES: Final = tuple(_FORMATS)


def audio_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(format, subtype) for ``path``'s suffix, or a :class:`SimulationError` saying what is allowed."""
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise SimulationError(
            f"cannot tell the audio format of {os.fspath(path)!r}: use a .flac, .wav, .ogg or .mp3 name"
        )
    fmt, subtype = _FORMATS[suffix]
    if fmt not in sf.available_formats():
        raise SimulationError(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}")
    return fmt, subtype


@contextmanager
def open_for_writing(path: str | os.PathLike[str]) -> Iterator[sf.SoundFile]:
    """A mono 16 kHz :class:`soundfile.SoundFile` that appears at ``path`` only once complete."""
    target = Path(path)
    fmt, subtype = audio_format(target)
    if not target.parent.is_dir():
        raise SimulationError(f"folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        with sf.SoundFile(tmp, "w", SAMPLE_RATE, 1, subtype=subtype, format=fmt) as fh:
            yield fh
        os.replace(tmp, target)
    except sf.LibsndfileError as exc:
        Path(tmp).unlink(missing_ok=True)
        free_mb = shutil.disk_usage(target.parent).free / 2**20
        raise SimulationError(
            f"could not write {target} ({exc.error_string.strip().rstrip('.')}); "
            f"{free_mb:,.0f} MB are free on that disk"
        ) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Audio sources for tracking: the microphone, an audio file, any iterator of sample blocks, a simulated night.

A source yields 16 kHz mono float32 blocks of any length; the tracking manager cuts them into 30-s
chunks. *Replayable* sources (a file, a simulated night) can start at any epoch, which is how a tracking
process that was killed continues exactly where its spool ends; *live* sources (the microphone, an
iterator) cannot, and a gap in them leaves missing epochs.

``speed`` paces replayable sources: 1 = real time (a 30-s chunk every 30 s), 60 = a minute of audio per
second, 0 = as fast as they can be read.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.signal import resample_poly

from sleeptrack.analysis import (
    EPOCH_SECONDS,
    SAMPLE_RATE,
    SAMPLES_PER_EPOCH,
    SUPPORTED_RATES,
    AudioFormatError,
    iter_audio_blocks,
)

from ._errors import AsleepErrorCode, AudioSourceError

__all__ = [
    "AudioSource",
    "Chunker",
    "FileSource",
    "IteratorSource",
    "MicrophoneSource",
    "SimulatedNightSource",
    "SourceInterruptedError",
    "StreamResampler",
]

_F32 = npt.NDArray[np.float32]


class SourceInterruptedError(Exception):
    """A live source stopped delivering audio (device lost, stream stalled); it may come back."""


class AudioSource:
    """Base class of audio sources.

    Subclasses implement :meth:`blocks`; :meth:`stop` makes a running :meth:`blocks` return soon.
    """

    #: ``False`` for sources that can start at any epoch (files, simulations).
    live: bool = True

    def __init__(self) -> None:
        self._stop = threading.Event()

    def blocks(self, start_epoch: int = 0) -> Iterator[_F32]:
        """16 kHz mono float32 blocks, from epoch ``start_epoch`` on for replayable sources."""
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        """Ready to be started again after :meth:`stop` (for resuming)."""
        self._stop.clear()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def describe(self) -> dict[str, Any]:
        """What the source is (kept in the spool journal, to continue only with the same source)."""
        return {"kind": type(self).__name__}

    @property
    def epochs(self) -> int | None:
        """Number of whole epochs the source holds, if known."""
        return None


class _Pacer:
    """Releases epoch ``k`` (0-based, counted from the start epoch) no earlier than ``(k + 1) · 30 / speed`` s."""

    def __init__(self, speed: float, stop: threading.Event) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        self.speed = speed
        self._stop = stop
        self._t0 = time.monotonic()

    def wait(self, epochs_done: float) -> bool:
        """Wait until ``epochs_done`` epochs of audio are due; ``False`` if stopped meanwhile."""
        if self.speed == 0:
            return not self._stop.is_set()
        due = self._t0 + epochs_done * EPOCH_SECONDS / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()


# -------------------------------------------------------------------------------------- resampling
class StreamResampler:
    """Polyphase resampling of a stream to 16 kHz, block by block, equal to resampling it whole.

    Input is processed in runs whose length is a multiple of the rate ratio's denominator (so every run
    starts on the output grid), each with ~2048 input samples of context on both sides; output therefore
    lags the input by that context (:meth:`flush` returns the rest at the end).
    """

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError("sample rate must be positive")
        frac = Fraction(SAMPLE_RATE, int(rate))
        self.up, self.down = frac.numerator, frac.denominator
        self.identity = self.up == self.down
        self._pad = self.down * -(-2048 // self.down)
        self._pad_out = self._pad * self.up // self.down
        self._min_run = self.down * -(-8192 // self.down)
        self._previous = np.zeros(self._pad, dtype=np.float32)
        self._buf = np.zeros(0, dtype=np.float32)

    def _process(self, n: int, final: bool) -> _F32:
        current = self._buf[:n]
        ahead = self._buf[n : n + self._pad]
        if ahead.size < self._pad:
            ahead = np.pad(ahead, (0, self._pad - ahead.size))
        joined = np.concatenate((self._previous, current, ahead))
        out = resample_poly(joined, self.up, self.down)
        n_out = -(-n * self.up // self.down) if final else n * self.up // self.down
        result = np.ascontiguousarray(out[self._pad_out : self._pad_out + n_out], dtype=np.float32)
        self._previous = np.concatenate((self._previous, current))[-self._pad :]
        self._buf = self._buf[n:]
        return result

    def push(self, block: _F32) -> _F32:
        """Feed a block; returns the output that no longer depends on input still to come."""
        if self.identity:
            return block
        self._buf = np.concatenate((self._buf, block.astype(np.float32, copy=False)))
        n = (self._buf.size - self._pad) // self.down * self.down
        if n < self._min_run:
            return np.zeros(0, dtype=np.float32)
        return self._process(n, final=False)

    def flush(self) -> _F32:
        """The remaining output at the end of the stream."""
        if self.identity or self._buf.size == 0:
            return np.zeros(0, dtype=np.float32)
        return self._process(self._buf.size, final=True)


def _mono(block: npt.ArrayLike) -> _F32:
    """Float32 mono from 1-D or (frames × channels) float or integer PCM (integers scaled to ±1)."""
    arr = np.asarray(block)
    if arr.ndim not in (1, 2):
        raise ValueError(f"audio blocks must be 1-D (mono) or 2-D (frames × channels), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        arr = arr.astype(np.float32) / np.float32(max(abs(int(info.min)), int(info.max)))
    if arr.ndim == 2:
        arr = arr.mean(axis=1, dtype=np.float32) if arr.shape[1] > 1 else arr[:, 0]
    return np.ascontiguousarray(arr, dtype=np.float32)


# ------------------------------------------------------------------------------------------ chunker
class Chunker:
    """Cuts a stream of blocks into 30-s chunks of exactly 480 000 samples."""

    def __init__(self, size: int = SAMPLES_PER_EPOCH) -> None:
        self.size = size
        self._buffer = np.empty(size, dtype=np.float32)
        self._fill = 0

    def push(self, block: _F32) -> list[_F32]:
        out: list[_F32] = []
        pos = 0
        while pos < block.size:
            take = min(self.size - self._fill, block.size - pos)
            self._buffer[self._fill : self._fill + take] = block[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.size:
                out.append(self._buffer.copy())
                self._fill = 0
        return out

    @property
    def buffered(self) -> int:
        """Samples waiting for the next chunk (dropped if the stream ends: a chunk is always 30 s)."""
        return self._fill

    def clear(self) -> None:
        self._fill = 0


# ------------------------------------------------------------------------------------------ sources
class IteratorSource(AudioSource):
    """Any iterable of sample blocks: 1-D (mono) or 2-D (frames × channels), float or integer PCM.

    Parameters
    ----------
    blocks
        The blocks, at ``sample_rate``; any lengths.
    sample_rate
        Hz; resampled to 16 kHz when different.
    """

    live = True

    def __init__(self, blocks: Iterable[npt.ArrayLike], sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self._blocks = blocks
        self.sample_rate = int(sample_rate)

    def blocks(self, start_epoch: int = 0) -> Iterator[_F32]:
        resampler = StreamResampler(self.sample_rate)
        for block in self._blocks:
            if self.stopped:
                return
            out = resampler.push(_mono(block))
            if out.size:
                yield out
        tail = resampler.flush()
        if tail.size:
            yield tail

    def describe(self) -> dict[str, Any]:
        return {"kind": "iterator", "sample_rate": self.sample_rate}


class FileSource(AudioSource):
    """An audio file (anything libsndfile reads: WAV, FLAC, OGG, MP3, AIFF …, any rate and channel count).

    WAV / MP3 / FLAC / OGG at 16, 44.1 or 48 kHz are decoded with the engine's own streaming decoder
    (:func:`sleeptrack.analysis.iter_audio_blocks`), so tracking a file gives the very samples that
    ``sleeptrack analyze`` reads; other formats and rates are resampled here the same way.
    """

    live = False

    def __init__(self, path: str | Path, speed: float = 1.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.speed = float(speed)
        _Pacer(self.speed, self._stop)  # validates speed
        try:
            info = sf.info(str(self.path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioSourceError(AsleepErrorCode.ERR_AUDIO, f"cannot read audio file {self.path}: {exc}") from exc
        self.sample_rate = int(info.samplerate)
        self.channels = int(info.channels)
        self.frames = int(info.frames)
        self.format = str(info.format)

    @property
    def epochs(self) -> int:
        return int(self.frames / self.sample_rate // EPOCH_SECONDS)

    def describe(self) -> dict[str, Any]:
        st = self.path.stat()
        return {
            "kind": "file",
            "path": str(self.path.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }

    def _engine_blocks(self) -> Iterator[_F32]:
        yield from iter_audio_blocks(self.path)

    def _generic_blocks(self) -> Iterator[_F32]:
        resampler = StreamResampler(self.sample_rate)
        with sf.SoundFile(str(self.path)) as f:
            while True:
                data = f.read(self.sample_rate * EPOCH_SECONDS, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                out = resampler.push(_mono(data))
                if out.size:
                    yield out
        tail = resampler.flush()
        if tail.size:
            yield tail

    def blocks(self, start_epoch: int = 0) -> Iterator[_F32]:
        engine = self.format in ("WAV", "MP3", "FLAC", "OGG") and self.sample_rate in SUPPORTED_RATES
        stream = self._engine_blocks() if engine else self._generic_blocks()
        pacer = _Pacer(self.speed, self._stop)
        skip = start_epoch * SAMPLES_PER_EPOCH
        delivered = 0
        try:
            for block in stream:
                if skip >= block.size:
                    skip -= block.size
                    continue
                if skip:
                    block = block[skip:]
                    skip = 0
                if not pacer.wait(delivered / SAMPLES_PER_EPOCH):
                    return
                delivered += block.size
                yield block
        except (AudioFormatError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioSourceError(AsleepErrorCode.ERR_AUDIO, f"cannot decode {self.path}: {exc}") from exc


class SimulatedNightSource(AudioSource):
    """A night from :mod:`sleeptrack.sim` (its truth in :attr:`truth`), paced by ``speed``.

    Parameters
    ----------
    config
        A :class:`sleeptrack.sim.NightConfig`, or keyword arguments for one (``hours``, ``seed`` …).
    """

    live = False

    def __init__(self, config: Any = None, speed: float = 1.0, **options: Any) -> None:
        super().__init__()
        from sleeptrack.sim import NightConfig, NightSimulator

        cfg = config if config is not None else NightConfig(**options)
        self.config = cfg
        self.speed = float(speed)
        _Pacer(self.speed, self._stop)
        self.simulator = NightSimulator(cfg)

    @property
    def truth(self) -> Any:
        return self.simulator.truth

    @property
    def epochs(self) -> int:
        return int(self.simulator.n_epochs)

    def describe(self) -> dict[str, Any]:
        return {"kind": "simulation", "config": self.config.to_dict()}

    def _render(self, start_epoch: int, out: queue.Queue[_F32 | BaseException | None], done: threading.Event) -> None:
        try:
            for i, epoch in enumerate(self.simulator.iter_epochs()):
                if done.is_set():
                    return
                if i >= start_epoch:
                    while not done.is_set():
                        try:
                            out.put(epoch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            out.put(None)
        except BaseException as exc:  # handed to the consumer
            out.put(exc)

    def blocks(self, start_epoch: int = 0) -> Iterator[_F32]:
        """The night's epochs; rendered a few epochs ahead in a thread, so rendering overlaps the caller's
        work (the mel spectrogram) on another core."""
        pacer = _Pacer(self.speed, self._stop)
        ahead: queue.Queue[_F32 | BaseException | None] = queue.Queue(maxsize=4)
        done = threading.Event()
        worker = threading.Thread(target=self._render, args=(start_epoch, ahead, done), daemon=True)
        worker.start()
        try:
            k = 0
            while True:
                item = ahead.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                if not pacer.wait(k):
                    return
                k += 1
                yield item
        finally:
            done.set()
            worker.join(timeout=10)


class MicrophoneSource(AudioSource):
    """The microphone through ``sounddevice`` (``pip install 'sleeptrack[mic]'``), 16 kHz mono.

    The device is asked for 16 kHz; if it refuses, its own rate is used and resampled. Audio arrives in a
    PortAudio callback and is handed over through a queue; no data for ``stall_seconds`` raises
    :class:`SourceInterruptedError` (the manager reports ``on_interrupt`` and reopens the device).

    Parameters
    ----------
    device
        A sounddevice device index or name substring; ``None`` = the default input.
    block_seconds
        Length of the callback blocks.
    sd
        The ``sounddevice`` module (tests pass a fake one).
    """

    live = True
    _SENTINEL: Final = None

    def __init__(
        self,
        device: int | str | None = None,
        block_seconds: float = 0.5,
        stall_seconds: float = 10.0,
        sd: ModuleType | Any = None,
    ) -> None:
        super().__init__()
        self.device = device
        self.block_seconds = block_seconds
        self.stall_seconds = stall_seconds
        self._sd = sd
        self.overflows = 0
        self.sample_rate = SAMPLE_RATE

    def _module(self) -> Any:
        if self._sd is not None:
            return self._sd
        try:
            import sounddevice
        except ImportError as exc:
            raise AudioSourceError(
                AsleepErrorCode.ERR_AUDIO,
                "the microphone needs the 'mic' extra: pip install 'sleeptrack[mic]'",
            ) from exc
        except OSError as exc:  # sounddevice imports fine but PortAudio is missing
            raise AudioSourceError(
                AsleepErrorCode.ERR_AUDIO,
                f"no audio system: {exc} (install PortAudio, e.g. apt-get install libportaudio2)",
            ) from exc
        self._sd = sounddevice
        return sounddevice

    def describe(self) -> dict[str, Any]:
        return {"kind": "microphone", "device": self.device}

    def _open(self, sd: Any, q: queue.Queue[_F32 | None]) -> tuple[Any, int]:
        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            if status:
                self.overflows += 1
            q.put(np.array(indata[:, 0] if getattr(indata, "ndim", 1) == 2 else indata, dtype=np.float32))

        errors: list[str] = []
        rates: list[int] = [SAMPLE_RATE]
        try:
            default = int(sd.query_devices(self.device, "input")["default_samplerate"])
            if default != SAMPLE_RATE:
                rates.append(default)
        except Exception as exc:  # any failure to query means "no usable input device"
            raise self._error(exc) from exc
        for rate in rates:
            try:
                stream = sd.InputStream(
                    samplerate=rate,
                    channels=1,
                    dtype="float32",
                    device=self.device,
                    blocksize=max(1, int(rate * self.block_seconds)),
                    callback=callback,
                )
                stream.start()
                return stream, rate
            except Exception as exc:  # PortAudioError and friends
                errors.append(f"{rate} Hz: {exc}")
        raise AudioSourceError(AsleepErrorCode.ERR_AUDIO, "cannot open the microphone (" + "; ".join(errors) + ")")

    @staticmethod
    def _error(exc: Exception) -> AudioSourceError:
        text = str(exc)
        if "permission" in text.lower() or "denied" in text.lower():
            return AudioSourceError(AsleepErrorCode.ERR_MIC_PERMISSION, f"no permission to use the microphone: {text}")
        return AudioSourceError(AsleepErrorCode.ERR_AUDIO, f"no usable microphone: {text}")

    def blocks(self, start_epoch: int = 0) -> Iterator[_F32]:
        sd = self._module()
        q: queue.Queue[_F32 | None] = queue.Queue()
        stream, rate = self._open(sd, q)
        self.sample_rate = rate
        resampler = StreamResampler(rate)
        last = time.monotonic()
        try:
            while not self.stopped:
                try:
                    block = q.get(timeout=0.2)
                except queue.Empty:
                    if time.monotonic() - last > self.stall_seconds or not getattr(stream, "active", True):
                        raise SourceInterruptedError(
                            f"the microphone delivered nothing for {self.stall_seconds:g} s"
                        ) from None
                    continue
                if block is None:
                    break
                last = time.monotonic()
                out = resampler.push(block)
                if out.size:
                    yield out
        finally:
            for method in ("stop", "close"):
                fn: Callable[[], Any] | None = getattr(stream, method, None)
                if fn is not None:
                    with contextlib.suppress(Exception):  # closing a dead device must not mask the real error
                        fn()

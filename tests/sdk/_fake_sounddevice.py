"""A stand-in for the ``sounddevice`` module: an ``InputStream`` whose PortAudio-style callback is fed from a
thread with a known signal, so the microphone source can be tested without audio hardware."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt


class PortAudioError(Exception):
    pass


class FakeSoundDevice:
    """``sd`` for :class:`sleeptrack.sdk.MicrophoneSource`.

    Parameters
    ----------
    signal
        ``signal(rate, start_frame, frames)`` → float32 samples of the "room".
    native_rate
        The device's default rate; 16 kHz is refused when ``refuse_16k``.
    stall_after
        Stop delivering after this many callback blocks (the device "hangs"); ``None`` = never.
    realtime
        Deliver blocks at their real duration divided by this factor (``0`` = as fast as possible).
    """

    PortAudioError = PortAudioError

    def __init__(
        self,
        signal: Callable[[int, int, int], npt.NDArray[np.float32]],
        native_rate: int = 48_000,
        refuse_16k: bool = False,
        stall_after: int | None = None,
        query_error: str | None = None,
        realtime: float = 0.0,
        max_blocks: int | None = None,
    ) -> None:
        self.signal = signal
        self.native_rate = native_rate
        self.refuse_16k = refuse_16k
        self.stall_after = stall_after
        self.query_error = query_error
        self.realtime = realtime
        self.max_blocks = max_blocks
        self.opened: list[FakeInputStream] = []

    def query_devices(self, device: Any = None, kind: str | None = None) -> dict[str, Any]:
        if self.query_error:
            raise PortAudioError(self.query_error)
        return {"name": "fake mic", "default_samplerate": float(self.native_rate), "max_input_channels": 1}

    def InputStream(self, **kwargs: Any) -> FakeInputStream:
        if self.refuse_16k and kwargs["samplerate"] == 16_000:
            raise PortAudioError("Invalid sample rate [PaErrorCode -9997]")
        stream = FakeInputStream(self, **kwargs)
        self.opened.append(stream)
        return stream


class FakeInputStream:
    def __init__(
        self,
        sd: FakeSoundDevice,
        samplerate: int,
        channels: int,
        dtype: str,
        device: Any,
        blocksize: int,
        callback: Callable[..., None],
    ) -> None:
        assert channels == 1 and dtype == "float32"
        self.sd = sd
        self.samplerate = int(samplerate)
        self.blocksize = blocksize
        self.callback = callback
        self.active = False
        self.closed = False
        self.delivered = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        blocks = 0
        while self.active:
            if self.sd.stall_after is not None and blocks >= self.sd.stall_after:
                time.sleep(0.01)
                continue
            if self.sd.max_blocks is not None and blocks >= self.sd.max_blocks:
                time.sleep(0.01)
                continue
            data = self.sd.signal(self.samplerate, self.delivered, self.blocksize).reshape(-1, 1)
            self.callback(data, self.blocksize, None, "input overflow" if blocks == 3 else None)
            self.delivered += self.blocksize
            blocks += 1
            if self.sd.realtime:
                time.sleep(self.blocksize / self.samplerate / self.sd.realtime)
            elif blocks % 8 == 0:
                time.sleep(0.001)  # let the consumer run

    def stop(self) -> None:
        self.active = False
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        self.closed = True


def tone(freq: float = 440.0, amplitude: float = 0.1) -> Callable[[int, int, int], npt.NDArray[np.float32]]:
    def signal(rate: int, start: int, frames: int) -> npt.NDArray[np.float32]:
        t = (start + np.arange(frames)) / rate
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return signal

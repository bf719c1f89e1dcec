"""A daemon thread calling a function at a fixed interval (housekeeping, job pollers and sweepers)."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls ``tick`` every ``interval`` seconds until :meth:`stop`. A tick that raises is handed to
    ``on_error`` (called inside the ``except`` block, so ``log.exception`` works) and the next tick comes
    on time."""

    def __init__(
        self, name: str, interval: float, tick: Callable[[], object], on_error: Callable[[Exception], None]
    ) -> None:
        self.interval = interval
        self._tick = tick
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._tick()
            except Exception as exc:
                self._on_error(exc)

"""The tracking manager for asyncio programs: the same threads underneath (audio capture and uploads must
not wait for an event loop), with awaitable verbs and listener callbacks delivered on the caller's loop —
plain functions or coroutines."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from ._config import AsleepConfig
from ._errors import Operation
from ._models import Session
from ._tracking import SleepTrackingManager, TrackingListener, TrackingStatus, UnfinishedSession

__all__ = ["AsyncSleepTrackingManager"]

log = logging.getLogger("sleeptrack.sdk")


class _LoopListener(TrackingListener):
    """Forwards every callback to ``listener`` on ``loop`` (coroutines are scheduled as tasks)."""

    def __init__(self, listener: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._listener = listener
        self._loop = loop
        for name in (
            "on_create",
            "on_start",
            "on_spool",
            "on_upload",
            "on_close",
            "on_fail",
            "on_interrupt",
            "on_resume",
            "on_analysis",
        ):
            setattr(self, name, self._forward(name))

    def _forward(self, name: str) -> Any:
        def call(*args: Any) -> None:
            fn = getattr(self._listener, name, None)
            if fn is None or self._loop.is_closed():
                return
            if inspect.iscoroutinefunction(fn):
                asyncio.run_coroutine_threadsafe(fn(*args), self._loop)
            else:
                self._loop.call_soon_threadsafe(fn, *args)

        return call


class AsyncSleepTrackingManager:
    """:class:`SleepTrackingManager` for asyncio: ``await manager.start()``, ``await manager.stop()`` …

    ``listener`` may define its callbacks as ``async def``; they run on the loop that called
    :meth:`start`.
    """

    def __init__(self, config: AsleepConfig, listener: Any = None, **options: Any) -> None:
        self.config = config
        self._listener = listener
        self._options = options
        self._transport = options.pop("async_transport", None)
        self.manager = SleepTrackingManager(config, None, **options)

    def _bind(self) -> None:
        if self._listener is not None:
            self.manager.listener = _LoopListener(self._listener, asyncio.get_running_loop())

    async def start(self) -> str:
        self._bind()
        return await asyncio.to_thread(self.manager.start)

    async def continue_session(self, session_id: str | None = None) -> str:
        self._bind()
        return await asyncio.to_thread(self.manager.continue_session, session_id)

    async def close_unfinished_session(self, session_id: str | None = None, timeout: float | None = None) -> str | None:
        self._bind()
        return await asyncio.to_thread(self.manager.close_unfinished_session, session_id, True, timeout)

    async def has_unfinished_session(self, check_server: bool = True) -> bool:
        return await asyncio.to_thread(self.manager.has_unfinished_session, check_server)

    async def unfinished_sessions(self, check_server: bool = True) -> list[UnfinishedSession]:
        return await asyncio.to_thread(self.manager.unfinished_sessions, check_server)

    async def stop(self, timeout: float | None = None) -> str | None:
        return await asyncio.to_thread(self.manager.stop, True, timeout)

    async def wait(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.manager.wait, timeout)

    async def request_analysis(self) -> Session:
        """The latest real-time result, fetched with ``httpx.AsyncClient``."""
        session_id = self.manager.session_id
        if session_id is None:
            raise RuntimeError("not tracking")
        async with self.config.async_client(transport=self._transport) as api:
            return (await api.get_report(session_id, Operation.ANALYSE)).session

    def get_tracking_status(self) -> TrackingStatus:
        return self.manager.get_tracking_status()

    def resume_tracking(self) -> None:
        self.manager.resume_tracking()

    def abort(self) -> None:
        self.manager.abort()

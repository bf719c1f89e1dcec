"""Reports (``Asleep.createReports``): one report, the list of sessions, average statistics, deletion, and
a polling helper for sessions the server is still analysing."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

from ._config import AsleepConfig
from ._errors import AsleepError, AsleepErrorCode, Operation
from ._models import AverageReport, Report, SleepSession

__all__ = ["AsyncReports", "ReportTimeoutError", "Reports"]


class ReportTimeoutError(AsleepError, TimeoutError):
    """:meth:`Reports.wait_until_complete` ran out of time; ``last`` holds the latest report seen."""

    def __init__(self, session_id: str, timeout: float, last: Report | None) -> None:
        state = last.session.state.value if last is not None else "unknown"
        super().__init__(
            AsleepErrorCode.ERR_REPORT_FAILED,
            f"session {session_id} not COMPLETE after {timeout:g} s (state {state})",
            operation=Operation.REPORT,
        )
        self.last = last


class Reports:
    """Sleep reports of the config's user.

    Examples
    --------
    >>> reports = Reports(config)  # doctest: +SKIP
    >>> report = reports.wait_until_complete(session_id, timeout=120)  # doctest: +SKIP
    >>> report.stat.sleep_efficiency, report.hypnogram.n_epochs  # doctest: +SKIP
    """

    def __init__(self, config: AsleepConfig, transport: Any = None) -> None:
        self.config = config
        self._api = config.client(transport=transport)

    def __enter__(self) -> Reports:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()

    def get_report(self, session_id: str) -> Report:
        """One session's report (``GET /data/v3/sessions/{id}``); ``ERR_REPORT_NOT_FOUND`` if unknown."""
        return self._api.get_report(session_id)

    def get_reports(
        self,
        from_date: date | str | None = None,
        to_date: date | str | None = None,
        order_by: str = "DESC",
        offset: int = 0,
        limit: int = 20,
    ) -> list[SleepSession]:
        """Sessions started between ``from_date`` and ``to_date`` (YYYY-MM-DD, in the config's time zone)."""
        return self._api.list_sessions(from_date, to_date, order_by, offset, limit)

    def get_average_report(self, from_date: date | str, to_date: date | str) -> AverageReport:
        """Average statistics of the user's sessions in the period (at most 100 days)."""
        return self._api.average_report(self.config.user_id, from_date, to_date)

    def delete_report(self, session_id: str) -> str:
        """Delete a session and all its data; returns its id."""
        self._api.delete_session(session_id)
        return session_id

    def delete_all_reports(self) -> None:
        """Delete every session of the user."""
        self._api.delete_sessions()

    def wait_until_complete(self, session_id: str, timeout: float = 600.0, poll_interval: float = 2.0) -> Report:
        """Poll until the session is COMPLETE (analysed after close) and return its report.

        Raises
        ------
        ReportTimeoutError
            Not complete within ``timeout`` seconds.
        AsleepError
            The report cannot be read (unknown session, no access …).
        """
        deadline = time.monotonic() + timeout
        last: Report | None = None
        while True:
            last = self.get_report(session_id)
            if last.is_complete:
                return last
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReportTimeoutError(session_id, timeout, last)
            time.sleep(min(poll_interval, left))


class AsyncReports:
    """:class:`Reports` with awaited calls (``httpx.AsyncClient``)."""

    def __init__(self, config: AsleepConfig, transport: Any = None) -> None:
        self.config = config
        self._api = config.async_client(transport=transport)

    async def __aenter__(self) -> AsyncReports:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()

    async def get_report(self, session_id: str) -> Report:
        return await self._api.get_report(session_id)

    async def get_reports(
        self,
        from_date: date | str | None = None,
        to_date: date | str | None = None,
        order_by: str = "DESC",
        offset: int = 0,
        limit: int = 20,
    ) -> list[SleepSession]:
        return await self._api.list_sessions(from_date, to_date, order_by, offset, limit)

    async def get_average_report(self, from_date: date | str, to_date: date | str) -> AverageReport:
        return await self._api.average_report(self.config.user_id, from_date, to_date)

    async def delete_report(self, session_id: str) -> str:
        await self._api.delete_session(session_id)
        return session_id

    async def delete_all_reports(self) -> None:
        await self._api.delete_sessions()

    async def wait_until_complete(self, session_id: str, timeout: float = 600.0, poll_interval: float = 2.0) -> Report:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            last = await self.get_report(session_id)
            if last.is_complete:
                return last
            left = deadline - loop.time()
            if left <= 0:
                raise ReportTimeoutError(session_id, timeout, last)
            await asyncio.sleep(min(poll_interval, left))

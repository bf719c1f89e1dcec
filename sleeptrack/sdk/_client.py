"""HTTP clients for the sleeptrack (AsleepTrack-compatible) API: one request builder and one answer
reader without I/O, a sync client on ``httpx.Client`` and an async one on ``httpx.AsyncClient``.

Every call names its :class:`~sleeptrack.sdk.Operation`, so a failure becomes the documented
:class:`~sleeptrack.sdk.AsleepErrorCode` through :func:`~sleeptrack.sdk.classify` (the one mapping).
Transient failures are retried here with the :class:`RetryPolicy` (``attempts`` = 1 turns that off; the
tracking manager does so for uploads, which it retries itself for as long as it takes).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from types import TracebackType
from typing import Any, Self

import httpx

import sleeptrack
from sleeptrack.analysis import format_time

from ._errors import (
    Action,
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    AsleepError,
    AsleepErrorCode,
    ConfigError,
    Operation,
    classify,
    parse_retry_after,
)
from ._models import (
    AverageReport,
    CreatedSession,
    InferenceType,
    OpenSession,
    Report,
    SleepSession,
    UploadResult,
    UserInfo,
)
from ._retry import DEFAULT_RETRY, DEFAULT_TIMEOUTS, RetryPolicy, Timeouts

__all__ = ["USER_AGENT", "ApiClient", "AsyncApiClient", "Request"]

log = logging.getLogger("sleeptrack.sdk")

USER_AGENT = f"sleeptrack-sdk-python/{sleeptrack.__version__}"


@dataclass
class Request:
    """One API call, before it is sent."""

    operation: Operation
    method: str
    path: str
    user: bool = True  # send x-user-id
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    ok_statuses: tuple[int, ...] = (200, 201, 204)
    extra: dict[str, Any] = field(default_factory=dict)


def _validate_base_url(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(AsleepErrorCode.ERR_INVALID_URL, f"invalid server URL {base_url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            AsleepErrorCode.ERR_INVALID_URL, f"invalid server URL {base_url!r} (expected http(s)://host[:port])"
        )
    return url


class _Base:
    """Everything but the I/O: headers, request specs for each endpoint, reading answers, retry decisions."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        user_id: str | None = None,
        *,
        timezone: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key:
            raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, "no API key: pass api_key or set SLEEPTRACK_API_KEY")
        self.base_url = _validate_base_url(base_url)
        self.api_key = api_key
        self.user_id = user_id
        self.timezone = timezone
        self.timeouts = timeouts
        self.retry = retry
        self._rng = rng or random.Random()

    # ------------------------------------------------------------------------------------ plumbing
    def _headers(self, request: Request) -> dict[str, str]:
        headers = {"x-api-key": self.api_key, "user-agent": USER_AGENT, "accept": "application/json"}
        if request.user:
            if not self.user_id:
                raise ConfigError(AsleepErrorCode.ERR_UNINITIALIZED, "no user id: join a user first (init_config)")
            headers["x-user-id"] = self.user_id
        if self.timezone:
            headers["timezone"] = self.timezone
        return headers

    def _build(self, client: httpx.Client | httpx.AsyncClient, request: Request) -> httpx.Request:
        return client.build_request(
            request.method,
            self.base_url + request.path,
            headers=self._headers(request),
            params=request.params,
            json=request.json,
            data=request.data,
            files=request.files,
        )

    @staticmethod
    def _transport_error(request: Request, exc: httpx.HTTPError) -> AsleepError:
        info = classify(request.operation, None)
        kind = ApiTimeoutError if isinstance(exc, httpx.TimeoutException) else ApiConnectionError
        what = "timed out" if kind is ApiTimeoutError else "failed"
        detail = f"network error: {request.method} {request.path} {what} ({type(exc).__name__}: {exc})"
        return kind(info.code, detail, action=info.action, operation=request.operation)

    @staticmethod
    def _read(request: Request, response: httpx.Response) -> Any:
        """The ``result`` of a successful answer, or raise the mapped :class:`ApiStatusError`."""
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.status_code in request.ok_statuses or 200 <= response.status_code < 300:
            return body.get("result") if isinstance(body, dict) else None
        detail = ""
        result = None
        if isinstance(body, dict):
            raw = body.get("detail")
            detail = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
            result = body.get("result")
        elif response.content:
            detail = response.text[:200].strip()
        detail = detail or response.reason_phrase or f"HTTP {response.status_code}"
        info = classify(request.operation, response.status_code, detail)
        return ApiStatusError(
            info.code,
            detail,
            action=info.action,
            status=response.status_code,
            operation=request.operation,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            result=result,
        )

    def _attempts(self, attempts: int | None) -> int:
        return self.retry.max_attempts if attempts is None else max(1, attempts)

    def _wait(self, error: AsleepError, attempt: int) -> float:
        return self.retry.delay(attempt, error.retry_after, self._rng)

    # ------------------------------------------------------------------------------------ endpoints
    @staticmethod
    def _r_create_user() -> Request:
        return Request(Operation.INIT, "POST", "/ai/v1/users", user=False)

    @staticmethod
    def _r_get_user(user_id: str) -> Request:
        return Request(Operation.INIT, "GET", f"/ai/v1/users/{user_id}", user=False)

    @staticmethod
    def _r_delete_user(user_id: str) -> Request:
        return Request(Operation.DELETE_USER, "DELETE", f"/ai/v1/users/{user_id}", user=False)

    @staticmethod
    def _r_create_session(callback_url: str | None, service: str | None, inference_type: InferenceType) -> Request:
        body = {"callback_url": callback_url, "service": service, "inference_type": str(inference_type)}
        return Request(Operation.CREATE, "POST", "/ai/v1/sessions", json=body)

    @staticmethod
    def _r_upload(
        session_id: str, seq_num: int, payload: bytes, filename: str, content_type: str, callback_url: str | None
    ) -> Request:
        data = {"seq_num": str(seq_num)}
        if callback_url:
            data["callback_url"] = callback_url
        return Request(
            Operation.UPLOAD,
            "POST",
            f"/ai/v1/sessions/{session_id}/upload",
            data=data,
            files={"file": (filename, payload, content_type)},
        )

    @staticmethod
    def _r_close(session_id: str, end_time: datetime | None, unexpected: bool) -> Request:
        body: dict[str, Any] = {"unexpected": 1 if unexpected else 0}
        if end_time is not None:
            body["session_end_time"] = format_time(end_time)
        return Request(Operation.CLOSE, "POST", f"/ai/v1/sessions/{session_id}/close", json=body)

    @staticmethod
    def _r_open_session() -> Request:
        return Request(Operation.INIT, "GET", "/ai/v1/sessions/open")

    @staticmethod
    def _r_delete_session(session_id: str) -> Request:
        return Request(Operation.DELETE, "DELETE", f"/ai/v1/sessions/{session_id}")

    @staticmethod
    def _r_delete_sessions() -> Request:
        return Request(Operation.DELETE, "DELETE", "/ai/v1/sessions")

    @staticmethod
    def _r_report(session_id: str, operation: Operation) -> Request:
        return Request(operation, "GET", f"/data/v3/sessions/{session_id}")

    @staticmethod
    def _r_sessions(
        date_from: date | str | None, date_to: date | str | None, order_by: str, offset: int, limit: int
    ) -> Request:
        order = order_by.upper()
        if order not in ("ASC", "DESC"):
            raise ValueError("order_by must be 'ASC' or 'DESC'")
        if not 0 <= limit <= 100:
            raise ValueError("limit must be between 0 and 100")
        if offset < 0:
            raise ValueError("offset must be >= 0")
        params: dict[str, Any] = {"order_by": order, "offset": offset, "limit": limit}
        if date_from is not None:
            params["date_gte"] = str(date_from)
        if date_to is not None:
            params["date_lte"] = str(date_to)
        return Request(Operation.REPORTS, "GET", "/data/v1/sessions", params=params)

    @staticmethod
    def _r_average(user_id: str, start: date | str, end: date | str) -> Request:
        params = {"start_date": str(start), "end_date": str(end)}
        return Request(
            Operation.AVERAGE_REPORT, "GET", f"/data/v1/users/{user_id}/average-stats", user=False, params=params
        )


def _open_session_or_none(error: AsleepError) -> None:
    """``GET /ai/v1/sessions/open`` answers 404 "session does not exist." when there is none."""
    if isinstance(error, ApiStatusError) and error.status == 404 and "session" in error.detail.lower():
        return
    raise error


class ApiClient(_Base):
    """Synchronous client. Use it as a context manager, or call :meth:`close`.

    Examples
    --------
    >>> with ApiClient("http://127.0.0.1:8000", "sk_test_…", user_id) as api:  # doctest: +SKIP
    ...     report = api.get_report("20250115025029_fvivn")
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        user_id: str | None = None,
        *,
        timezone: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, api_key, user_id, timezone=timezone, timeouts=timeouts, retry=retry, rng=rng)
        self._http = httpx.Client(timeout=timeouts.to_httpx(), transport=transport)
        self._sleep_event = threading.Event()  # set() interrupts backoff waits (on close)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sleep_event.set()
        self._http.close()

    def send(self, request: Request, attempts: int | None = None) -> Any:
        """Send ``request``; retry transient failures up to ``attempts`` (default: the policy's)."""
        total = self._attempts(attempts)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(self._build(self._http, request))
            except httpx.HTTPError as exc:
                error: AsleepError = self._transport_error(request, exc)
            else:
                outcome = self._read(request, response)
                if not isinstance(outcome, AsleepError):
                    return outcome
                error = outcome
            if error.action is not Action.RETRY or attempt >= total:
                raise error
            wait = self._wait(error, attempt)
            log.info("%s; retry %d/%d in %.1f s", error, attempt, total - 1, wait)
            if self._sleep_event.wait(wait):
                raise error

    # ------------------------------------------------------------------------------------ users
    def create_user(self) -> str:
        return str(self.send(self._r_create_user())["user_id"])

    def get_user(self, user_id: str) -> UserInfo:
        return UserInfo.from_dict(self.send(self._r_get_user(user_id)))

    def delete_user(self, user_id: str) -> None:
        self.send(self._r_delete_user(user_id))

    # ---------------------------------------------------------------------------------- sessions
    def create_session(
        self,
        callback_url: str | None = None,
        service: str | None = None,
        inference_type: InferenceType = InferenceType.MELSPECTROGRAM,
        attempts: int | None = None,
    ) -> CreatedSession:
        return CreatedSession.from_dict(
            self.send(self._r_create_session(callback_url, service, inference_type), attempts)
        )

    def upload(
        self,
        session_id: str,
        seq_num: int,
        payload: bytes,
        *,
        filename: str = "chunk.mel",
        content_type: str = "application/octet-stream",
        callback_url: str | None = None,
        attempts: int | None = 1,
    ) -> UploadResult:
        request = self._r_upload(session_id, seq_num, payload, filename, content_type, callback_url)
        return UploadResult.from_dict(self.send(request, attempts))

    def close_session(
        self,
        session_id: str,
        end_time: datetime | None = None,
        unexpected: bool = False,
        attempts: int | None = None,
    ) -> None:
        self.send(self._r_close(session_id, end_time, unexpected), attempts)

    def open_session(self) -> OpenSession | None:
        """The user's OPEN session on the server, or ``None``."""
        try:
            result = self.send(self._r_open_session())
        except AsleepError as error:
            _open_session_or_none(error)
            return None
        return OpenSession.from_dict(result)

    def delete_session(self, session_id: str) -> None:
        self.send(self._r_delete_session(session_id))

    def delete_sessions(self) -> None:
        self.send(self._r_delete_sessions())

    # ------------------------------------------------------------------------------------- data
    def get_report(self, session_id: str, operation: Operation = Operation.REPORT) -> Report:
        return Report.from_dict(self.send(self._r_report(session_id, operation)))

    def list_sessions(
        self,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        order_by: str = "DESC",
        offset: int = 0,
        limit: int = 20,
    ) -> list[SleepSession]:
        result = self.send(self._r_sessions(date_from, date_to, order_by, offset, limit))
        return [SleepSession.from_dict(s) for s in (result or {}).get("sleep_session_list", [])]

    def average_report(self, user_id: str, start_date: date | str, end_date: date | str) -> AverageReport:
        return AverageReport.from_dict(self.send(self._r_average(user_id, start_date, end_date)))


class AsyncApiClient(_Base):
    """Asynchronous client on ``httpx.AsyncClient``: the same verbs as :class:`ApiClient`, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        user_id: str | None = None,
        *,
        timezone: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base_url, api_key, user_id, timezone=timezone, timeouts=timeouts, retry=retry, rng=rng)
        self._http = httpx.AsyncClient(timeout=timeouts.to_httpx(), transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, request: Request, attempts: int | None = None) -> Any:
        total = self._attempts(attempts)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.send(self._build(self._http, request))
            except httpx.HTTPError as exc:
                error: AsleepError = self._transport_error(request, exc)
            else:
                outcome = self._read(request, response)
                if not isinstance(outcome, AsleepError):
                    return outcome
                error = outcome
            if error.action is not Action.RETRY or attempt >= total:
                raise error
            wait = self._wait(error, attempt)
            log.info("%s; retry %d/%d in %.1f s", error, attempt, total - 1, wait)
            await asyncio.sleep(wait)

    async def create_user(self) -> str:
        return str((await self.send(self._r_create_user()))["user_id"])

    async def get_user(self, user_id: str) -> UserInfo:
        return UserInfo.from_dict(await self.send(self._r_get_user(user_id)))

    async def delete_user(self, user_id: str) -> None:
        await self.send(self._r_delete_user(user_id))

    async def create_session(
        self,
        callback_url: str | None = None,
        service: str | None = None,
        inference_type: InferenceType = InferenceType.MELSPECTROGRAM,
        attempts: int | None = None,
    ) -> CreatedSession:
        request = self._r_create_session(callback_url, service, inference_type)
        return CreatedSession.from_dict(await self.send(request, attempts))

    async def upload(
        self,
        session_id: str,
        seq_num: int,
        payload: bytes,
        *,
        filename: str = "chunk.mel",
        content_type: str = "application/octet-stream",
        callback_url: str | None = None,
        attempts: int | None = 1,
    ) -> UploadResult:
        request = self._r_upload(session_id, seq_num, payload, filename, content_type, callback_url)
        return UploadResult.from_dict(await self.send(request, attempts))

    async def close_session(
        self,
        session_id: str,
        end_time: datetime | None = None,
        unexpected: bool = False,
        attempts: int | None = None,
    ) -> None:
        await self.send(self._r_close(session_id, end_time, unexpected), attempts)

    async def open_session(self) -> OpenSession | None:
        try:
            result = await self.send(self._r_open_session())
        except AsleepError as error:
            _open_session_or_none(error)
            return None
        return OpenSession.from_dict(result)

    async def delete_session(self, session_id: str) -> None:
        await self.send(self._r_delete_session(session_id))

    async def delete_sessions(self) -> None:
        await self.send(self._r_delete_sessions())

    async def get_report(self, session_id: str, operation: Operation = Operation.REPORT) -> Report:
        return Report.from_dict(await self.send(self._r_report(session_id, operation)))

    async def list_sessions(
        self,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        order_by: str = "DESC",
        offset: int = 0,
        limit: int = 20,
    ) -> list[SleepSession]:
        result = await self.send(self._r_sessions(date_from, date_to, order_by, offset, limit))
        return [SleepSession.from_dict(s) for s in (result or {}).get("sleep_session_list", [])]

    async def average_report(self, user_id: str, start_date: date | str, end_date: date | str) -> AverageReport:
        return AverageReport.from_dict(await self.send(self._r_average(user_id, start_date, end_date)))

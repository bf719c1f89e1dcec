"""Errors in the reference's shape: ``{"detail": "<message>", "result": …}`` with its status codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "Detail", "install_error_handlers"]

log = logging.getLogger("sleeptrack.server")


class Detail:
    """Every documented ``detail`` message (reference error tables and API pages)."""

    UNAUTHORIZED = "Unauthorized"
    API_KEY_NOT_PROVIDED = "The api key is not provided"
    PLAN_EXPIRED = "Plan is expired"
    RATE_LIMIT = "Rate limit exceeded"
    QUOTA = "Quota exceeded"
    INVALID_TIMEZONE = "The invalid timezone is provided"
    # Users API
    USER_ID_INVALID = "user_id is invalid"
    USER_NOT_FOUND = "user does not exist"
    # Session API
    X_USER_ID_INVALID = "x-user-id is invalid"
    SESSION_NOT_FOUND = "session does not exist."
    SESSION_NOT_FOUND_DELETE = "session does not exist"
    SESSION_CLOSED = "the sleep session is already closed"
    SESSION_NOT_CLOSED = "previous sleep session is not closed yet"
    INVALID_CALLBACK = "Invalid callback url"
    AUDIO_FORMAT = "audio format should be 30 sec (16khz, 44.1khz, 48khz) (mp3, wav) under 10MB"
    MEL_IN_AUDIO_SESSION = "cannot upload MELSPECTROGRAM file. only upload AUDIO file."
    MEL_FORMAT = "invalid melspectrogram format: {why}"
    TOO_LARGE = "HTTP content length exceeded {limit} bytes."
    INVALID_SEQ_NUM = "Invalid seq_num (seq_num starts from 0)"
    INVALID_PARAMETER = "Invalid parameter"
    INVALID_END_TIME = (
        "[WARNING] Invalid session end time. format(YYYY-MM-DDTHH:mm:ssz), "
        "'session_end_time' must always be greater than 'session_start_time’"
    )
    # Data API
    X_USER_ID_FORMAT = "The format of x-user-id is invalid"
    SESSION_ID_FORMAT = "The format of sleep session id {session_id} is not valid"
    SESSION_NOT_FOUND_DATA = "Unable to find the sleep session of id {session_id}"
    PERIOD = "The period should be less than or equal to 100 days"
    USER_NOT_FOUND_AVERAGE = "Unable to find the user of id {user_id}"
    INTERNAL = "internal server error"
    # Not in the reference: the server's disk is full (the client keeps the chunk and retries later).
    STORAGE_FULL = "the server's storage is full: the chunk was not stored, retry later"


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as ``{"detail": detail, "result": result}``."""

    def __init__(self, status: int, detail: str, result: Any = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.result = result


def error_response(status: int, detail: str, result: Any = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "result": result}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.result)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return error_response(422, Detail.INVALID_PARAMETER, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, Detail.INTERNAL)

"""The reference's ``AsleepErrorCode`` values, the SDK's exceptions, and the ONE place that maps an HTTP
status (or a network failure) and its ``detail`` to a code and to what the SDK does about it.

Codes are those of the reference's error table (``ERR_UPLOAD_FAILED = 23000`` …). The table numbers a code
as ``operation base + HTTP status`` (``ERR_UPLOAD_NOT_FOUND = 23404``); three codes the reference names
without a number (``ERR_CREATE_BAD_REQUEST``, ``ERR_CREATE_UNAUTHORIZED``, ``ERR_CREATE_VALIDATION``) follow
that rule here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "Action",
    "ApiConnectionError",
    "ApiStatusError",
    "ApiTimeoutError",
    "AsleepError",
    "AsleepErrorCode",
    "AudioSourceError",
    "ConfigError",
    "ErrorInfo",
    "Operation",
    "classify",
    "parse_retry_after",
]


class AsleepErrorCode(IntEnum):
    """Error codes of the reference SDK (``Asleep.AsleepErrorCode``), same names and numbers."""

    ERR_SETUP_INCOMPLETE = 10000
    ERR_UNABLE_ODA = 10001
    ERR_UNKNOWN = 11000
    ERR_UNINITIALIZED = 11001
    ERR_MIC_PERMISSION = 11002
    ERR_AUDIO = 11003
    ERR_INVALID_URL = 11004
    ERR_AUDIO_SILENCED = 11005
    ERR_AUDIO_UNSILENCED = 11006
    ERR_COMMON_UNAUTHORIZED = 11401
    ERR_COMMON_EXPIRED = 11403
    ERR_COMMON_NOT_FOUND = 11404
    ERR_NETWORK = 11500
    ERR_INIT_FAILED = 21000
    ERR_INIT_SERVER_ERROR = 21500
    ERR_CREATE_FAILED = 22000
    ERR_CREATE_BAD_REQUEST = 22400  # named by rule (invalid callback url)
    ERR_CREATE_UNAUTHORIZED = 22401  # named in the reference's stop list, numbered by rule
    ERR_CREATE_CONFLICT = 22409
    ERR_CREATE_VALIDATION = 22422  # named in the reference's stop list, numbered by rule
    ERR_CREATE_SERVER_ERROR = 22500
    ERR_UPLOAD_FAILED = 23000
    ERR_UPLOAD_BAD_REQUEST = 23400
    ERR_UPLOAD_UNAUTHORIZED = 23401
    ERR_UPLOAD_FORBIDDEN = 23403
    ERR_UPLOAD_NOT_FOUND = 23404
    ERR_UPLOAD_TOO_LARGE = 23413
    ERR_UPLOAD_UNPROCESSABLE = 23422
    ERR_UPLOAD_SERVER_ERROR = 23500
    ERR_CLOSE_FAILED = 24000
    ERR_CLOSE_BAD_REQUEST = 24400
    ERR_CLOSE_UNAUTHORIZED = 24401
    ERR_CLOSE_FORBIDDEN = 24403
    ERR_CLOSE_NOT_FOUND = 24404
    ERR_CLOSE_SERVER_ERROR = 24500
    ERR_DELETE_FAILED = 25000
    ERR_DELETE_UNAUTHORIZED = 25401
    ERR_DELETE_SERVER_ERROR = 25500
    ERR_DELETE_USER_FAILED = 26000
    ERR_DELETE_USER_UNAUTHORIZED = 26401
    ERR_DELETE_USER_SERVER_ERROR = 26500
    ERR_ANALYSE_FAILED = 31000
    ERR_ANALYSE_UNAUTHORIZED = 31401
    ERR_ANALYSE_NOT_FOUND = 31404
    ERR_ANALYSE_SERVER_ERROR = 31500
    ERR_REPORT_FAILED = 32000
    ERR_REPORT_UNAUTHORIZED = 32401
    ERR_REPORT_NOT_FOUND = 32404
    ERR_REPORT_SERVER_ERROR = 32500
    ERR_REPORTS_FAILED = 33000
    ERR_REPORTS_UNAUTHORIZED = 33401
    ERR_REPORTS_SERVER_ERROR = 33500
    ERR_AVERAGE_REPORT_FAILED = 34000
    ERR_AVERAGE_REPORT_BAD_REQUEST = 34400
    ERR_AVERAGE_REPORT_NOT_FOUND = 34404
    ERR_AVERAGE_REPORT_SERVER_ERROR = 34500


class Operation(StrEnum):
    """What the SDK was doing; each has its own code family in the reference table."""

    INIT = "init"  # user join (create / get user), the unfinished-session check
    CREATE = "create"  # create a sleep session
    UPLOAD = "upload"  # upload one 30-s chunk
    CLOSE = "close"  # close a sleep session
    DELETE = "delete"  # delete one session or all of a user's
    DELETE_USER = "delete_user"
    ANALYSE = "analyse"  # real-time result while tracking (requestAnalysis)
    REPORT = "report"  # one session's report
    REPORTS = "reports"  # list of sessions
    AVERAGE_REPORT = "average_report"


_BASE: Final[dict[Operation, int]] = {
    Operation.INIT: 21000,
    Operation.CREATE: 22000,
    Operation.UPLOAD: 23000,
    Operation.CLOSE: 24000,
    Operation.DELETE: 25000,
    Operation.DELETE_USER: 26000,
    Operation.ANALYSE: 31000,
    Operation.REPORT: 32000,
    Operation.REPORTS: 33000,
    Operation.AVERAGE_REPORT: 34000,
}

#: Operations whose failures end a tracking session (the reference's "SDK Stop" handling).
_TRACKING: Final = frozenset({Operation.CREATE, Operation.UPLOAD, Operation.CLOSE})


class Action(StrEnum):
    """What the SDK does with an error."""

    RETRY = "retry"  # transient (network, timeout, 5xx, rate limit): retried with backoff, nothing is lost
    SKIP = "skip"  # this one chunk is refused for good (422 seq_num): dropped, tracking goes on
    STOP = "stop"  # tracking cannot go on ("SDK Stop"): on_fail, then the session ends (on_close)
    RAISE = "raise"  # the caller's to handle ("Client Handling"): the call raises


@dataclass(frozen=True)
class ErrorInfo:
    code: AsleepErrorCode
    action: Action


class AsleepError(Exception):
    """Base of every SDK error: carries the documented code, the server's ``detail`` and what to do."""

    def __init__(
        self,
        code: AsleepErrorCode,
        detail: str,
        *,
        action: Action = Action.RAISE,
        status: int | None = None,
        operation: Operation | None = None,
        retry_after: float | None = None,
        result: object = None,
    ) -> None:
        super().__init__(f"{code.name} ({int(code)}): {detail}")
        self.code = code
        self.detail = detail
        self.action = action
        self.status = status
        self.operation = operation
        self.retry_after = retry_after
        self.result = result

    @property
    def retryable(self) -> bool:
        return self.action is Action.RETRY


class ApiStatusError(AsleepError):
    """The server answered with an HTTP error status (``status`` holds it)."""


class ApiConnectionError(AsleepError):
    """No answer: the server could not be reached or the connection broke."""


class ApiTimeoutError(ApiConnectionError):
    """No answer within the configured timeout."""


class ConfigError(AsleepError):
    """The SDK is not set up (no API key, bad URL …): ``ERR_UNINITIALIZED`` / ``ERR_INVALID_URL``."""


class AudioSourceError(AsleepError):
    """The audio input failed (``ERR_AUDIO``) or is not permitted (``ERR_MIC_PERMISSION``)."""


# ------------------------------------------------------------------------------------------- mapping
_RATE_LIMIT = "rate limit exceeded"
_EXPIRED = frozenset({"plan is expired", "quota exceeded", _RATE_LIMIT})
_USER_MISSING = ("user does not exist", "unable to find the user")
_TRANSIENT_STATUSES = frozenset({408, 425})


def _code(value: int, fallback: AsleepErrorCode) -> AsleepErrorCode:
    try:
        return AsleepErrorCode(value)
    except ValueError:
        return fallback


def classify(operation: Operation, status: int | None, detail: str | None = None) -> ErrorInfo:
    """Map an HTTP status (``None`` = no answer: network error or timeout) and its detail to a code and an action.

    This is the single place where statuses become codes. The rules, from the reference's error tables:

    * no answer, 408 and 425: ``<operation>_FAILED``; any 5xx: ``<operation>_SERVER_ERROR``; all retried;
    * 429: ``ERR_COMMON_EXPIRED``, retried after ``Retry-After``;
    * 403 "Plan is expired" / "Quota exceeded": ``ERR_COMMON_EXPIRED``, tracking stops; 403 "Rate limit
      exceeded" is the same code but retried after ``Retry-After`` (the reference stops; a rate limit is
      transient and the spool keeps every chunk, so the SDK waits instead of losing the night);
    * 404 "user does not exist": ``ERR_COMMON_NOT_FOUND`` (stops);
    * otherwise ``operation base + status`` when the reference defines that code (``ERR_UPLOAD_FORBIDDEN``),
      else the common code for 401 or the operation's ``_FAILED``;
    * tracking operations (create / upload / close) stop on every non-transient error, as in the reference's
      list of errors that end tracking, except upload 422 (that chunk is dropped, the night goes on);
      other operations raise to the caller.
    """
    base = _BASE[operation]
    failed = AsleepErrorCode(base)
    text = (detail or "").strip().lower()
    tracking = operation in _TRACKING
    hard = Action.STOP if tracking else Action.RAISE
    if status is None:
        return ErrorInfo(failed, Action.RETRY)
    if status == 403 and text in _EXPIRED:
        return ErrorInfo(AsleepErrorCode.ERR_COMMON_EXPIRED, Action.RETRY if text == _RATE_LIMIT else hard)
    if status == 429:
        return ErrorInfo(AsleepErrorCode.ERR_COMMON_EXPIRED, Action.RETRY)
    if status >= 500:
        return ErrorInfo(_code(base + 500, AsleepErrorCode.ERR_NETWORK), Action.RETRY)
    if status in _TRANSIENT_STATUSES:
        return ErrorInfo(failed, Action.RETRY)
    if status == 404 and text.startswith(_USER_MISSING) and operation is not Operation.AVERAGE_REPORT:
        return ErrorInfo(AsleepErrorCode.ERR_COMMON_NOT_FOUND, hard)
    specific = _code(base + status, failed)
    if specific is failed and status == 401:
        specific = AsleepErrorCode.ERR_COMMON_UNAUTHORIZED
    if operation is Operation.UPLOAD and status == 422:
        return ErrorInfo(specific, Action.SKIP)
    return ErrorInfo(specific, hard)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        if seconds != seconds or seconds == float("inf"):
            return None
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)

"""The one mapping from HTTP statuses (or no answer) to the reference's error codes and actions."""

from __future__ import annotations

import pytest

from sleeptrack.sdk import Action, AsleepErrorCode, Operation, classify, parse_retry_after

E = AsleepErrorCode
O = Operation  # noqa: E741


def test_documented_values() -> None:
    # a sample of the reference's table, names and numbers
    documented = {
        "ERR_UPLOAD_FAILED": 23000,
        "ERR_UPLOAD_FORBIDDEN": 23403,
        "ERR_CREATE_CONFLICT": 22409,
        "ERR_CLOSE_BAD_REQUEST": 24400,
        "ERR_COMMON_EXPIRED": 11403,
        "ERR_AUDIO_SILENCED": 11005,
        "ERR_AVERAGE_REPORT_BAD_REQUEST": 34400,
        "ERR_REPORTS_UNAUTHORIZED": 33401,
    }
    assert {name: int(E.__members__[name]) for name in documented} == documented
    assert len({int(c) for c in E}) == len(E)


@pytest.mark.parametrize(
    ("op", "status", "detail", "code", "action"),
    [
        # no answer at all: the operation's FAILED, retried
        (O.UPLOAD, None, None, E.ERR_UPLOAD_FAILED, Action.RETRY),
        (O.CREATE, None, None, E.ERR_CREATE_FAILED, Action.RETRY),
        (O.REPORT, None, None, E.ERR_REPORT_FAILED, Action.RETRY),
        # server errors: SERVER_ERROR, retried
        (O.UPLOAD, 500, "internal server error", E.ERR_UPLOAD_SERVER_ERROR, Action.RETRY),
        (O.UPLOAD, 503, "", E.ERR_UPLOAD_SERVER_ERROR, Action.RETRY),
        (O.CLOSE, 502, "Bad Gateway", E.ERR_CLOSE_SERVER_ERROR, Action.RETRY),
        (O.INIT, 500, "x", E.ERR_INIT_SERVER_ERROR, Action.RETRY),
        (O.AVERAGE_REPORT, 500, "x", E.ERR_AVERAGE_REPORT_SERVER_ERROR, Action.RETRY),
        (O.UPLOAD, 408, "timeout", E.ERR_UPLOAD_FAILED, Action.RETRY),
        # common errors
        (O.UPLOAD, 403, "Plan is expired", E.ERR_COMMON_EXPIRED, Action.STOP),
        (O.CREATE, 403, "Quota exceeded", E.ERR_COMMON_EXPIRED, Action.STOP),
        (O.REPORT, 403, "Quota exceeded", E.ERR_COMMON_EXPIRED, Action.RAISE),
        (O.UPLOAD, 403, "Rate limit exceeded", E.ERR_COMMON_EXPIRED, Action.RETRY),
        (O.UPLOAD, 429, "Too Many Requests", E.ERR_COMMON_EXPIRED, Action.RETRY),
        (O.CREATE, 404, "user does not exist", E.ERR_COMMON_NOT_FOUND, Action.STOP),
        (O.INIT, 404, "user does not exist", E.ERR_COMMON_NOT_FOUND, Action.RAISE),
        (O.INIT, 401, "Unauthorized", E.ERR_COMMON_UNAUTHORIZED, Action.RAISE),
        # tracking errors that end tracking (the reference's list)
        (O.CREATE, 409, "previous sleep session is not closed yet", E.ERR_CREATE_CONFLICT, Action.STOP),
        (O.CREATE, 400, "Invalid callback url", E.ERR_CREATE_BAD_REQUEST, Action.STOP),
        (O.CREATE, 401, "Unauthorized", E.ERR_CREATE_UNAUTHORIZED, Action.STOP),
        (O.UPLOAD, 403, "the sleep session is already closed", E.ERR_UPLOAD_FORBIDDEN, Action.STOP),
        (O.UPLOAD, 404, "session does not exist.", E.ERR_UPLOAD_NOT_FOUND, Action.STOP),
        (O.UPLOAD, 400, "invalid melspectrogram format: bad magic", E.ERR_UPLOAD_BAD_REQUEST, Action.STOP),
        (O.UPLOAD, 413, "HTTP content length exceeded 10485760 bytes.", E.ERR_UPLOAD_TOO_LARGE, Action.STOP),
        (O.UPLOAD, 401, "Unauthorized", E.ERR_UPLOAD_UNAUTHORIZED, Action.STOP),
        (O.CLOSE, 403, "the sleep session is already closed", E.ERR_CLOSE_FORBIDDEN, Action.STOP),
        (O.CLOSE, 404, "session does not exist.", E.ERR_CLOSE_NOT_FOUND, Action.STOP),
        (O.CLOSE, 400, "[WARNING] Invalid session end time.", E.ERR_CLOSE_BAD_REQUEST, Action.STOP),
        # one bad chunk: dropped, tracking goes on
        (O.UPLOAD, 422, "Invalid seq_num (seq_num starts from 0)", E.ERR_UPLOAD_UNPROCESSABLE, Action.SKIP),
        # data API errors: the caller's
        (O.REPORT, 404, "Unable to find the sleep session of id x", E.ERR_REPORT_NOT_FOUND, Action.RAISE),
        (O.ANALYSE, 404, "Unable to find the sleep session of id x", E.ERR_ANALYSE_NOT_FOUND, Action.RAISE),
        (O.REPORTS, 401, "The api key is not provided", E.ERR_REPORTS_UNAUTHORIZED, Action.RAISE),
        (O.REPORTS, 400, "The invalid timezone is provided", E.ERR_REPORTS_FAILED, Action.RAISE),
        (
            O.AVERAGE_REPORT,
            400,
            "The period should be less than or equal to 100 days",
            E.ERR_AVERAGE_REPORT_BAD_REQUEST,
            Action.RAISE,
        ),
        (O.AVERAGE_REPORT, 404, "Unable to find the user of id u", E.ERR_AVERAGE_REPORT_NOT_FOUND, Action.RAISE),
        (O.DELETE, 401, "x-user-id is invalid", E.ERR_DELETE_UNAUTHORIZED, Action.RAISE),
        (O.DELETE_USER, 401, "user_id is invalid", E.ERR_DELETE_USER_UNAUTHORIZED, Action.RAISE),
        (O.DELETE, 404, "session does not exist", E.ERR_DELETE_FAILED, Action.RAISE),
    ],
)
def test_classify(op: Operation, status: int | None, detail: str | None, code: AsleepErrorCode, action: Action) -> None:
    info = classify(op, status, detail)
    assert (info.code, info.action) == (code, action)


def test_every_operation_and_status_maps_to_a_code() -> None:
    for op in Operation:
        for status in [None, *range(400, 432), *range(500, 512)]:
            info = classify(op, status, "whatever")
            assert isinstance(info.code, AsleepErrorCode)
            assert isinstance(info.action, Action)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("3", 3.0), (" 1.5 ", 1.5), ("-4", 0.0), ("soon", None), ("nan", None)],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = 1_445_412_480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0

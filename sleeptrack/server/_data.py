"""Data API: one session's report, the list of a user's sessions, average statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from sqlalchemy import select

from sleeptrack.analysis import SessionState, SessionSummary, compute_average_report, format_time, validate_period
from sleeptrack.jobs import session_document, session_report
from sleeptrack.store import SleepSession, is_session_id, is_user_id

from ._auth import Caller
from ._context import TZ, ctx_of, data_caller, request_timezone
from ._errors import ApiError, Detail
from ._lookup import find_session, find_user
from ._openapi import error_examples, example

router = APIRouter(prefix="/data", tags=["Data API"])

XUserId = Annotated[str | None, Header(description="The user id")]

_STAT_EXAMPLE = {
    "sleep_time": "2025-01-15T03:05:29+00:00",
    "wake_time": "2025-01-15T03:26:29+00:00",
    "sleep_index": 50,
    "sleep_latency": 900,
    "wakeup_latency": 1440,
    "light_latency": 0,
    "deep_latency": None,
    "rem_latency": None,
    "time_in_bed": 3600,
    "time_in_sleep_period": 1260,
    "time_in_sleep": 1080,
    "time_in_wake": 180,
    "time_in_light": 1080,
    "time_in_deep": 0,
    "time_in_rem": 0,
    "time_in_stable_breath": None,
    "time_in_unstable_breath": None,
    "time_in_snoring": 0,
    "time_in_no_snoring": 1260,
    "sleep_efficiency": 0.3,
    "sleep_ratio": 0.86,
    "wake_ratio": 0.14,
    "light_ratio": 0.86,
    "deep_ratio": 0.0,
    "rem_ratio": 0.0,
    "stable_breath_ratio": None,
    "unstable_breath_ratio": None,
    "snoring_ratio": 0.0,
    "no_snoring_ratio": 1.0,
    "breathing_index": None,
    "breathing_pattern": None,
    "waso_count": 1,
    "longest_waso": 180,
    "sleep_cycle_count": 0,
    "sleep_cycle": None,
    "sleep_cycle_time": [],
    "unstable_breath_count": None,
    "snoring_count": 0,
}


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


@router.get(
    "/v3/sessions/{session_id}",
    summary="Get a session",
    description=(
        "The sleep analysis of a session: real-time stages while OPEN (`IN_PROGRESS`), the full report with "
        "its stat object once COMPLETE. Times in the `timezone` header's zone.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/data/v3/sessions/{session_id}" -XGET \\\n'
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>" -H "timezone: Asia/Seoul"\n```'
    ),
    responses={
        200: example(
            {
                "detail": "OK",
                "result": {
                    "timezone": "UTC",
                    "peculiarities": ["NO_BREATHING_STABILITY"],
                    "missing_data_ratio": 0.0,
                    "session": {
                        "id": "20250115025029_fvivn",
                        "state": "COMPLETE",
                        "start_time": "2025-01-15T02:50:29+00:00",
                        "end_time": "2025-01-15T03:50:29+00:00",
                        "unexpected_end_time": None,
                        "created_timezone": "UTC",
                        "sleep_stages": [0, 0, 1, 1],
                        "breath_stages": None,
                        "snoring_stages": [0, 0, 0, 0],
                    },
                    "stat": _STAT_EXAMPLE,
                    "model_version": "sleeptrack-engine-1",
                },
            }
        ),
        **error_examples(
            (400, Detail.INVALID_TIMEZONE),
            (400, Detail.X_USER_ID_FORMAT),
            (400, Detail.SESSION_ID_FORMAT.format(session_id="20230608020315_hz82")),
            (401, Detail.API_KEY_NOT_PROVIDED),
            401,
            403,
            (404, Detail.SESSION_NOT_FOUND_DATA.format(session_id="20250115025029_fvivn")),
        ),
    },
)
def get_session(
    session_id: str,
    request: Request,
    x_user_id: XUserId = None,
    caller: Caller = Depends(data_caller),
    tz: TZ = Depends(request_timezone),
) -> dict[str, Any]:
    if not is_user_id(x_user_id):
        raise ApiError(400, Detail.X_USER_ID_FORMAT)
    if not is_session_id(session_id):
        raise ApiError(400, Detail.SESSION_ID_FORMAT.format(session_id=session_id))
    ctx = ctx_of(request)
    with ctx.stores.db.read() as db:
        s = find_session(db, caller.environment_id, session_id, x_user_id)
        if s is None:
            raise ApiError(404, Detail.SESSION_NOT_FOUND_DATA.format(session_id=session_id))
        return {"detail": "OK", "result": session_document(db, s, tz.tz, tz.name)}


@router.get(
    "/v1/sessions",
    summary="List a user's sessions",
    description=(
        "Sessions of the user, filtered on their start date in the `timezone` header's zone.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/data/v1/sessions?date_gte=2025-01-01&offset=0&limit=10&order_by=ASC" '
        '\\\n  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>"\n```'
    ),
    responses={
        200: example(
            {
                "detail": "OK",
                "result": {
                    "timezone": "UTC",
                    "sleep_session_list": [
                        {
                            "session_id": "20250114182518_eq85p",
                            "state": "COMPLETE",
                            "session_start_time": "2025-01-14T18:25:18+00:00",
                            "session_end_time": "2025-01-14T22:55:55+00:00",
                            "created_timezone": "Asia/Seoul",
                            "unexpected_end_time": None,
                            "last_received_seq_num": 540,
                            "time_in_bed": 16237,
                        }
                    ],
                },
            }
        ),
        **error_examples(
            (400, Detail.INVALID_TIMEZONE),
            (400, Detail.X_USER_ID_FORMAT),
            (401, Detail.API_KEY_NOT_PROVIDED),
            401,
            403,
            (404, Detail.USER_NOT_FOUND),
            (422, Detail.INVALID_PARAMETER),
        ),
    },
)
def list_sessions(
    request: Request,
    x_user_id: XUserId = None,
    date_gte: date | None = Query(default=None, description="First start date (YYYY-MM-DD) to include"),
    date_lte: date | None = Query(default=None, description="Last start date (YYYY-MM-DD) to include"),
    order_by: str = Query(default="DESC", pattern="^(ASC|DESC|asc|desc)$", description="ASC or DESC (by start time)"),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=20, ge=0, le=100),
    caller: Caller = Depends(data_caller),
    tz: TZ = Depends(request_timezone),
) -> dict[str, Any]:
    if not is_user_id(x_user_id):
        raise ApiError(400, Detail.X_USER_ID_FORMAT)
    ctx = ctx_of(request)
    with ctx.stores.db.read() as db:
        user = find_user(db, caller.environment_id, x_user_id)
        if user is None:
            raise ApiError(404, Detail.USER_NOT_FOUND)
        query = select(SleepSession).where(SleepSession.user_id == user.id)
        if date_gte is not None:
            query = query.where(SleepSession.start_time >= _local_midnight(date_gte, tz.tz))
        if date_lte is not None:
            query = query.where(SleepSession.start_time < _local_midnight(date_lte + timedelta(days=1), tz.tz))
        order = SleepSession.start_time.asc() if order_by.upper() == "ASC" else SleepSession.start_time.desc()
        rows = db.scalars(query.order_by(order, SleepSession.id).offset(offset).limit(limit)).all()

        def when(value: datetime | None) -> str | None:
            return None if value is None else format_time(value, tz.tz)

        items = [
            {
                "session_id": s.id,
                "state": s.state,
                "session_start_time": when(s.start_time),
                "session_end_time": when(s.end_time) if s.state != SessionState.OPEN else None,
                "created_timezone": s.created_timezone,
                "unexpected_end_time": when(s.unexpected_end_time),
                "last_received_seq_num": s.last_seq_num if s.last_seq_num >= 0 else None,
                "time_in_bed": (
                    int((s.end_time - s.start_time).total_seconds())
                    if s.end_time is not None and s.state != SessionState.OPEN
                    else None
                ),
            }
            for s in rows
        ]
    return {"detail": "OK", "result": {"timezone": tz.name, "sleep_session_list": items}}


@router.get(
    "/v1/users/{user_id}/average-stats",
    summary="Average statistics over a period",
    description=(
        "Averages of the user's COMPLETE sessions that started between `start_date` and `end_date` (inclusive, "
        "in the `timezone` header's zone; at most 100 days). Clock times are averaged on the 24-hour circle in "
        "each session's own time zone.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/data/v1/users/{user_id}/average-stats?start_date=2025-01-01'
        '&end_date=2025-01-05" -H "x-api-key: <YOUR_API_KEY>"\n```'
    ),
    responses={
        200: example(
            {
                "detail": "OK",
                "result": {
                    "period": {"timezone": "UTC", "start_date": "2025-01-01", "end_date": "2025-01-05"},
                    "peculiarities": ["NO_BREATHING_STABILITY"],
                    "average_stats": {"start_time": "02:54:01", "end_time": "07:28:03", "time_in_bed": 16381},
                    "never_slept_sessions": [],
                    "slept_sessions": [],
                },
            }
        ),
        **error_examples(
            (400, Detail.PERIOD),
            (400, Detail.INVALID_TIMEZONE),
            (401, Detail.API_KEY_NOT_PROVIDED),
            401,
            403,
            (404, Detail.USER_NOT_FOUND_AVERAGE.format(user_id="G-20250115025029-vLErWBfQNtnfvgDccFOQ")),
        ),
    },
)
def average_stats(
    user_id: str,
    request: Request,
    start_date: str | None = Query(default=None, description="YYYY-MM-DD"),
    end_date: str | None = Query(default=None, description="YYYY-MM-DD"),
    caller: Caller = Depends(data_caller),
    tz: TZ = Depends(request_timezone),
) -> dict[str, Any]:
    try:
        start = date.fromisoformat(start_date or "")
        end = date.fromisoformat(end_date or "")
        validate_period(start, end)
    except ValueError:
        raise ApiError(400, Detail.PERIOD) from None
    ctx = ctx_of(request)
    with ctx.stores.db.read() as db:
        user = find_user(db, caller.environment_id, user_id) if is_user_id(user_id) else None
        if user is None:
            raise ApiError(404, Detail.USER_NOT_FOUND_AVERAGE.format(user_id=user_id))
        sessions = db.scalars(
            select(SleepSession).where(
                SleepSession.user_id == user.id,
                SleepSession.state == SessionState.COMPLETE.value,
                SleepSession.start_time >= _local_midnight(start, tz.tz),
                SleepSession.start_time < _local_midnight(end + timedelta(days=1), tz.tz),
            )
        ).all()
        summaries = []
        for s in sessions:
            report = session_report(db, s)
            assert s.end_time is not None and s.complete_time is not None
            summaries.append(
                SessionSummary(
                    s.id,
                    s.created_timezone,
                    s.start_time,
                    s.end_time,
                    s.complete_time,
                    report.peculiarities,
                    report.stat,
                )
            )
    result = compute_average_report(summaries, start, end)
    return {"detail": "OK", "result": result.to_dict(tz.tz, tz.name)}

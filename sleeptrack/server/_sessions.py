"""Session API: create a session, upload 30-second chunks, close it, delete sessions.

Designed in the reference's style (its pages document only deletion): headers ``x-api-key``,
``x-user-id`` and optional ``timezone``; ``{"detail", "result"}`` answers; the error table's details.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sleeptrack.analysis import (
    SessionState,
    StageScheme,
    format_time,
    parse_datetime,
)
from sleeptrack.jobs import close_session
from sleeptrack.store import (
    SleepSession,
    User,
    encrypt_secret,
    is_user_id,
    new_session_id,
    utcnow,
)
from sleeptrack.webhooks import callback_url_problem

from ._auth import Caller
from ._context import TZ, ServerContext, ai_caller, ctx_of, request_timezone
from ._errors import ApiError, Detail
from ._lookup import blob_prefix, chunk_keys, delete_blobs, find_session, find_user
from ._openapi import error_examples, example

router = APIRouter(prefix="/ai/v1/sessions", tags=["Session API"])
log = logging.getLogger("sleeptrack.server")

#: Sessions longer than this cannot be closed with an explicit end time, nor receive later seq_nums.
MAX_SESSION = timedelta(days=7)
MAX_SEQ_NUM = int(MAX_SESSION.total_seconds() // 30)
EXAMPLE_SID = "20250115025029_fvivn"

#: The errors of a call that writes to one of a user's sessions (close, upload): key, x-user-id, user, session.
WRITE_TO_SESSION_ERRORS: tuple[int | tuple[int, str], ...] = (
    401,
    (401, Detail.X_USER_ID_INVALID),
    403,
    (403, Detail.SESSION_CLOSED),
    (404, Detail.SESSION_NOT_FOUND),
    (404, Detail.USER_NOT_FOUND),
)

XUserId = Annotated[str | None, Header(description="The user id (from POST /ai/v1/users)")]


class CreateSessionBody(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "callback_url": "https://example.com/sleeptrack-webhook",
                    "service": "MyApp",
                    "inference_type": "MELSPECTROGRAM",
                }
            ]
        },
    )

    callback_url: str | None = Field(default=None, description="Where webhooks of this session are sent")
    service: str | None = Field(default=None, max_length=200, description="Your app's name")
    inference_type: Literal["AUDIO", "MELSPECTROGRAM"] = Field(
        default="MELSPECTROGRAM", description="What the uploads will be: audio files or the SDK's mel spectrograms"
    )


class CloseSessionBody(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"session_end_time": "2025-01-15T07:10:00+09:00", "unexpected": 0}]},
    )

    session_end_time: str | None = Field(
        default=None,
        description="ISO-8601 end of the recording (default: now, or the end of the last chunk if later); "
        "without a UTC offset it is read in the `timezone` header's zone",
    )
    unexpected: Literal[0, 1] = Field(
        default=0,
        description="1 if the app crashed: the end becomes the end of the last uploaded chunk and "
        "`unexpected_end_time` records now",
    )
    callback_url: str | None = Field(default=None, description="Replaces the session's callback URL")


def valid_callback_url(url: str) -> bool:
    """An http(s) URL whose target may be called (no private / loopback / link-local unless allowed)."""
    problem = callback_url_problem(url)
    if problem is not None:
        log.info("callback URL refused: %s", problem)
    return problem is None


def session_user(db: Session, caller: Caller, x_user_id: str | None) -> User:
    if not is_user_id(x_user_id):
        raise ApiError(401, Detail.X_USER_ID_INVALID)
    user = find_user(db, caller.environment_id, x_user_id)
    if user is None:
        raise ApiError(404, Detail.USER_NOT_FOUND)
    return user


def _set_callback(ctx: ServerContext, s: SleepSession, caller: Caller, url: str) -> None:
    s.callback_url = url
    s.callback_key_id = caller.key.id
    s.callback_key_enc = encrypt_secret(ctx.stores.secret, caller.api_key)


def _locked(db: Session, session_id: str) -> SleepSession | None:
    query = select(SleepSession).where(SleepSession.id == session_id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    return db.scalars(query).first()


# ------------------------------------------------------------------------------------------ create
@router.post(
    "",
    status_code=201,
    summary="Create a sleep session",
    description=(
        "Starts a sleep session for the user. Then upload one 30-second chunk per `seq_num` and close it.\n\n"
        "```bash\ncurl http://127.0.0.1:8000/ai/v1/sessions -XPOST \\\n"
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>" -H "timezone: Asia/Seoul" \\\n'
        "  -H 'content-type: application/json' \\\n"
        '  -d \'{"inference_type": "AUDIO", "callback_url": "https://example.com/hook"}\'\n```'
    ),
    responses={
        201: example(
            {
                "detail": "success",
                "result": {
                    "session_id": EXAMPLE_SID,
                    "state": "OPEN",
                    "session_start_time": "2025-01-15T02:50:29+00:00",
                },
            }
        ),
        409: example(
            {"detail": Detail.SESSION_NOT_CLOSED, "result": {"session_id": EXAMPLE_SID}}, "The user has an open session"
        ),
        **error_examples(
            (400, Detail.INVALID_CALLBACK),
            (400, Detail.INVALID_TIMEZONE),
            401,
            (401, Detail.X_USER_ID_INVALID),
            403,
            (404, Detail.USER_NOT_FOUND),
        ),
    },
)
def create_session(
    request: Request,
    x_user_id: XUserId = None,
    body: CreateSessionBody | None = Body(default=None),
    caller: Caller = Depends(ai_caller),
    tz: TZ = Depends(request_timezone),
) -> JSONResponse:
    ctx = ctx_of(request)
    body = body or CreateSessionBody()
    if body.callback_url is not None and not valid_callback_url(body.callback_url):
        raise ApiError(400, Detail.INVALID_CALLBACK)
    plan = caller.plan
    now = utcnow().replace(microsecond=0)
    try:
        with ctx.stores.db.write() as db:
            user = session_user(db, caller, x_user_id)
            _raise_if_open(db, user.id)
            sid = new_session_id(now)
            while db.get(SleepSession, sid) is not None:
                sid = new_session_id(now)
            s = SleepSession(
                id=sid,
                environment_id=caller.environment_id,
                user_id=user.id,
                api_key_id=caller.key.id,
                state=SessionState.OPEN.value,
                inference_type=body.inference_type,
                service=body.service or "NOSERVICE",
                created_timezone=tz.name,
                start_time=now,
                last_seq_num=-1,
                received_count=0,
                plan=plan.name,
                scheme=(StageScheme.FOUR if plan.stages == 4 else StageScheme.TWO).value,
                snoring=plan.snoring,
                realtime=plan.realtime,
            )
            if body.callback_url is not None:
                _set_callback(ctx, s, caller, body.callback_url)
            db.add(s)
    except IntegrityError:
        # Another request opened a session for this user at the same moment (the unique index caught it).
        with ctx.stores.db.read() as db:
            _raise_if_open(db, x_user_id or "")
        raise
    ctx.metrics.sessions.labels("OPEN").inc()
    return JSONResponse(
        {
            "detail": "success",
            "result": {"session_id": sid, "state": "OPEN", "session_start_time": format_time(now, tz.tz)},
        },
        status_code=201,
    )


def _raise_if_open(db: Session, user_id: str) -> None:
    open_id = db.scalar(
        select(SleepSession.id).where(SleepSession.user_id == user_id, SleepSession.state == SessionState.OPEN.value)
    )
    if open_id is not None:
        raise ApiError(409, Detail.SESSION_NOT_CLOSED, {"session_id": open_id})


# -------------------------------------------------------------------------------------------- open
@router.get(
    "/open",
    summary="The user's open session",
    description=(
        "The OPEN session of the user and what it has received, so a restarted app can continue it.\n\n"
        '```bash\ncurl http://127.0.0.1:8000/ai/v1/sessions/open -H "x-api-key: <YOUR_API_KEY>" '
        '-H "x-user-id: <USER_ID>"\n```'
    ),
    responses={
        200: example(
            {
                "detail": "success",
                "result": {
                    "session_id": EXAMPLE_SID,
                    "state": "OPEN",
                    "session_start_time": "2025-01-15T02:50:29+00:00",
                    "last_seq_num": 41,
                    "received_seq_nums_count": 42,
                    "inference_type": "MELSPECTROGRAM",
                },
            }
        ),
        **error_examples(401, (401, Detail.X_USER_ID_INVALID), 403, (404, Detail.SESSION_NOT_FOUND)),
    },
)
def open_session(
    request: Request,
    x_user_id: XUserId = None,
    caller: Caller = Depends(ai_caller),
    tz: TZ = Depends(request_timezone),
) -> dict[str, Any]:
    ctx = ctx_of(request)
    with ctx.stores.db.read() as db:
        user = session_user(db, caller, x_user_id)
        s = db.scalars(
            select(SleepSession).where(SleepSession.user_id == user.id, SleepSession.state == SessionState.OPEN.value)
        ).first()
        if s is None:
            raise ApiError(404, Detail.SESSION_NOT_FOUND)
        return {
            "detail": "success",
            "result": {
                "session_id": s.id,
                "state": s.state,
                "session_start_time": format_time(s.start_time, tz.tz),
                "last_seq_num": s.last_seq_num,
                "received_seq_nums_count": s.received_count,
                "inference_type": s.inference_type,
            },
        }


# ------------------------------------------------------------------------------------------- close
@router.post(
    "/{session_id}/close",
    summary="Close a sleep session",
    description=(
        "Ends the recording: the session becomes CLOSED, the full-night analysis runs, then it is COMPLETE "
        "(SESSION_COMPLETE webhook). With `unexpected: 1` the end is the end of the last uploaded chunk.\n\n"
        "```bash\ncurl http://127.0.0.1:8000/ai/v1/sessions/<SESSION_ID>/close -XPOST \\\n"
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>" -H \'content-type: application/json\' \\\n'
        '  -d \'{"session_end_time": "2025-01-15T07:10:00+09:00"}\'\n```'
    ),
    responses={
        200: example({"detail": "success", "result": {"session_id": EXAMPLE_SID, "state": "CLOSED"}}),
        **error_examples((400, Detail.INVALID_END_TIME), (400, Detail.INVALID_CALLBACK), *WRITE_TO_SESSION_ERRORS),
    },
)
def close(
    session_id: str,
    request: Request,
    x_user_id: XUserId = None,
    body: CloseSessionBody | None = Body(default=None),
    caller: Caller = Depends(ai_caller),
    tz: TZ = Depends(request_timezone),
) -> dict[str, Any]:
    ctx = ctx_of(request)
    body = body or CloseSessionBody()
    end_time = None
    if body.session_end_time is not None:
        try:
            end_time = parse_datetime(body.session_end_time, tz.tz)
        except ValueError:
            raise ApiError(400, Detail.INVALID_END_TIME) from None
    if body.callback_url is not None and not valid_callback_url(body.callback_url):
        raise ApiError(400, Detail.INVALID_CALLBACK)
    with ctx.stores.db.write() as db:
        user = session_user(db, caller, x_user_id)
        if find_session(db, caller.environment_id, session_id, user.id) is None:
            raise ApiError(404, Detail.SESSION_NOT_FOUND)
        s = _locked(db, session_id)
        assert s is not None
        if s.state != SessionState.OPEN:
            raise ApiError(403, Detail.SESSION_CLOSED)
        if end_time is not None and not s.start_time < end_time <= s.start_time + MAX_SESSION:
            raise ApiError(400, Detail.INVALID_END_TIME)
        if body.callback_url is not None:
            _set_callback(ctx, s, caller, body.callback_url)
        job = close_session(db, s, end_time=end_time, unexpected=body.unexpected == 1)
        db.flush()
    ctx.upload_targets.closed(session_id)
    ctx.submit([job])
    ctx.metrics.sessions.labels("CLOSED").inc()
    return {"detail": "success", "result": {"session_id": session_id, "state": SessionState.CLOSED.value}}


# ------------------------------------------------------------------------------------------ delete
@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Delete a session",
    description=(
        "Deletes the session, its uploaded audio and its analysis.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/ai/v1/sessions/{session_id}" -XDELETE \\\n'
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>"\n```'
    ),
    responses={
        204: {"description": "Deleted"},
        **error_examples(
            401,
            (401, Detail.X_USER_ID_INVALID),
            403,
            (404, Detail.USER_NOT_FOUND),
            (404, Detail.SESSION_NOT_FOUND_DELETE),
        ),
    },
)
def delete_session(
    session_id: str, request: Request, x_user_id: XUserId = None, caller: Caller = Depends(ai_caller)
) -> Response:
    ctx = ctx_of(request)
    with ctx.stores.db.write() as db:
        user = session_user(db, caller, x_user_id)
        s = find_session(db, caller.environment_id, session_id, user.id)
        if s is None:
            raise ApiError(404, Detail.SESSION_NOT_FOUND_DELETE)
        keys = chunk_keys(db, SleepSession.id == s.id)
        db.delete(s)
    ctx.upload_targets.forget(session_id)
    delete_blobs(ctx.stores.blobs, keys, blob_prefix(caller.environment_id, user.id, session_id))
    return Response(status_code=204)


@router.delete(
    "",
    status_code=204,
    summary="Delete all sessions of a user",
    description=(
        "Deletes every session of the user with its audio and analysis.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/ai/v1/sessions" -XDELETE \\\n'
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>"\n```'
    ),
    responses={
        204: {"description": "Deleted"},
        **error_examples(401, (401, Detail.X_USER_ID_INVALID), 403, (404, Detail.USER_NOT_FOUND)),
    },
)
def delete_sessions(request: Request, x_user_id: XUserId = None, caller: Caller = Depends(ai_caller)) -> Response:
    ctx = ctx_of(request)
    with ctx.stores.db.write() as db:
        user = session_user(db, caller, x_user_id)
        keys = chunk_keys(db, SleepSession.user_id == user.id)
        for s in db.scalars(select(SleepSession).where(SleepSession.user_id == user.id)):
            db.delete(s)
    ctx.upload_targets.forget_user(user.id)
    delete_blobs(ctx.stores.blobs, keys, blob_prefix(caller.environment_id, user.id))
    return Response(status_code=204)

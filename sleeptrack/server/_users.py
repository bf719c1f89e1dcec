"""Users API: ``/ai/v1/users``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sleeptrack.analysis import format_time
from sleeptrack.store import SleepSession, User, is_user_id, new_user_id, utcnow

from ._auth import Caller
from ._context import TZ, ai_caller, ctx_of, request_timezone
from ._errors import ApiError, Detail
from ._lookup import blob_prefix, chunk_keys, delete_blobs, find_user
from ._openapi import error_examples, example

router = APIRouter(prefix="/ai/v1/users", tags=["Users API"])

_USER_ID = "G-20250115025029-vLErWBfQNtnfvgDccFOQ"


def session_info(s: SleepSession, tz: TZ) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return None if value is None else format_time(value, tz.tz)

    return {
        "session_id": s.id,
        "inference_type": s.inference_type,
        "service": s.service,
        "start_time": when(s.start_time),
        "end_time": when(s.end_time),
        "state": s.state,
        "complete_time": when(s.complete_time),
    }


@router.post(
    "",
    status_code=201,
    summary="Create a user",
    description=(
        "Generates an identifier (user id) for the user who records sleep.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/ai/v1/users" -XPOST -H "x-api-key: <YOUR_API_KEY>"\n```'
    ),
    responses={201: example({"detail": "success", "result": {"user_id": _USER_ID}}), **error_examples(401, 403)},
)
def create_user(request: Request, caller: Caller = Depends(ai_caller)) -> JSONResponse:
    ctx = ctx_of(request)
    for _ in range(5):
        user_id = new_user_id()
        try:
            with ctx.stores.db.write() as db:
                db.add(User(id=user_id, environment_id=caller.environment_id, created_at=utcnow(), to_be_deleted=False))
        except IntegrityError:
            continue
        return JSONResponse({"detail": "success", "result": {"user_id": user_id}}, status_code=201)
    raise ApiError(500, Detail.INTERNAL)


@router.get(
    "/{user_id}",
    summary="Get a user",
    description=(
        "The user and their last session.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/ai/v1/users/{user_id}" -XGET -H "x-api-key: <YOUR_API_KEY>"\n```'
    ),
    responses={
        200: example(
            {
                "detail": "success",
                "result": {
                    "user_id": _USER_ID,
                    "to_be_deleted": False,
                    "last_session_info": {
                        "session_id": "20250115025029_fvivn",
                        "inference_type": "MELSPECTROGRAM",
                        "service": "NOSERVICE",
                        "start_time": "2025-01-15T02:50:29+00:00",
                        "end_time": "2025-01-15T03:50:29+00:00",
                        "state": "COMPLETE",
                        "complete_time": "2025-01-15T03:51:02+00:00",
                    },
                },
            }
        ),
        **error_examples((401, Detail.USER_ID_INVALID), 403, (404, Detail.USER_NOT_FOUND)),
    },
)
def get_user(
    user_id: str, request: Request, caller: Caller = Depends(ai_caller), tz: TZ = Depends(request_timezone)
) -> dict[str, Any]:
    if not is_user_id(user_id):
        raise ApiError(401, Detail.USER_ID_INVALID)
    ctx = ctx_of(request)
    with ctx.stores.db.read() as db:
        user = find_user(db, caller.environment_id, user_id)
        if user is None:
            raise ApiError(404, Detail.USER_NOT_FOUND)
        last = db.scalars(
            select(SleepSession)
            .where(SleepSession.user_id == user.id)
            .order_by(SleepSession.start_time.desc())
            .limit(1)
        ).first()
        return {
            "detail": "success",
            "result": {
                "user_id": user.id,
                "to_be_deleted": user.to_be_deleted,
                "last_session_info": None if last is None else session_info(last, tz),
            },
        }


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user",
    description=(
        "Deletes the user and all of their data: sessions, uploaded audio, analysis results.\n\n"
        '```bash\ncurl "http://127.0.0.1:8000/ai/v1/users/{user_id}" -XDELETE -H "x-api-key: <YOUR_API_KEY>"\n```'
    ),
    responses={
        204: {"description": "Deleted"},
        **error_examples((401, Detail.USER_ID_INVALID), 403, (404, Detail.USER_NOT_FOUND)),
    },
)
def delete_user(user_id: str, request: Request, caller: Caller = Depends(ai_caller)) -> Response:
    if not is_user_id(user_id):
        raise ApiError(401, Detail.USER_ID_INVALID)
    ctx = ctx_of(request)
    with ctx.stores.db.write() as db:
        user = find_user(db, caller.environment_id, user_id)
        if user is None:
            raise ApiError(404, Detail.USER_NOT_FOUND)
        keys = chunk_keys(db, SleepSession.user_id == user.id)
        db.delete(user)
    ctx.upload_targets.forget_user(user_id)
    delete_blobs(ctx.stores.blobs, keys, blob_prefix(caller.environment_id, user_id))
    return Response(status_code=204)

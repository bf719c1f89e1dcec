"""``POST /ai/v1/sessions/{session_id}/upload``: the API's hot path, served by a bare ASGI endpoint.

Every sleeper uploads a chunk every 30 seconds, so this one route carries nearly all of the server's
traffic. It is a plain Starlette route (:class:`UploadEndpoint`), so the app's middleware (metrics,
header guard, body limit) and error handlers apply to it as to every route; what it skips is FastAPI's
per-request machinery, which cost more CPU than the upload itself: dependency solving, Starlette's form
parser (which spools the file through a temporary file), and anyio's thread hop. The body is read
whole (it is at most ``max_upload_bytes``) and parsed with python-multipart; the chunk is checked in
``ServerContext.upload_threads``, then stored and committed by the group commit (``_ingest``). FastAPI
does not see the route, so its OpenAPI operation is written out here (:data:`UPLOAD_OPERATION`).
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from sleeptrack.analysis import AudioFormatError, MelFormatError, SessionState, check_mel_chunk, decode_chunk
from sleeptrack.store import Chunk, encrypt_secret, is_user_id, utcnow

from ._auth import Caller
from ._context import ServerContext, authenticate
from ._errors import ApiError, Detail
from ._ingest import ChunkRecord, Outcome, StorageFullError, UploadTarget
from ._lookup import blob_prefix, find_session
from ._openapi import error_examples, example
from ._sessions import EXAMPLE_SID, MAX_SEQ_NUM, WRITE_TO_SESSION_ERRORS, session_user, valid_callback_url

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["UPLOAD_OPERATION", "UPLOAD_PATH", "UploadForm", "parse_upload_form", "upload_route"]


UPLOAD_PATH = "/ai/v1/sessions/{session_id}/upload"
#: Parts a form may have: the file, seq_num, callback_url, and room for fields a client adds.
MAX_PARTS = 10
_RNG = random.Random()


# -------------------------------------------------------------------------------------- the form
@dataclass
class UploadForm:
    """The fields of an upload (the last one wins when a name repeats); ``file`` only from a file part."""

    file: bytes | None = None
    seq_num: str | None = None
    callback_url: str | None = None


def _text(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return value.decode("latin-1")


class _Parts:
    """python-multipart callbacks collecting each part's name, whether it is a file, and its bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[bytes | None, bool, bytearray]] = []
        self._name = b""
        self._value = b""
        self._disposition = b""
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise ApiError(422, Detail.INVALID_PARAMETER)
        self._disposition = b""
        self._data = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += memoryview(data)[start:end]  # one copy of the chunk, not two

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name = self._value = b""

    def _part_end(self) -> None:
        _, options = parse_options_header(self._disposition)
        self.parts.append((options.get(b"name"), b"filename" in options, self._data))


def parse_upload_form(content_type: str | None, body: bytes) -> UploadForm:
    """The upload's fields from a multipart (or URL-encoded) body; 422 "Invalid parameter" if unreadable.

    Any other content type gives an empty form, so the handler answers which field is missing.
    """
    media, params = parse_options_header(content_type or "")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    form = UploadForm()
    if media == b"application/x-www-form-urlencoded":
        try:
            fields = urllib.parse.parse_qsl(_text(body, charset), keep_blank_values=True, max_num_fields=MAX_PARTS)
        except ValueError:  # more fields than a multipart form may have parts: the same answer
            raise ApiError(422, Detail.INVALID_PARAMETER) from None
        for name, value in fields:
            if name in ("seq_num", "callback_url"):
                setattr(form, name, value)
        return form
    if media != b"multipart/form-data":
        return form
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(422, Detail.INVALID_PARAMETER)
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise ApiError(422, Detail.INVALID_PARAMETER) from None
    for raw_name, is_file, data in parts.parts:
        if raw_name is None:
            raise ApiError(422, Detail.INVALID_PARAMETER)
        name = _text(raw_name, charset)
        if name == "file":
            form.file = bytes(data) if is_file else None
        elif name in ("seq_num", "callback_url"):  # a field, not a file
            setattr(form, name, None if is_file else _text(bytes(data), charset))
    return form


# ---------------------------------------------------------------------------------- the endpoint
class UploadEndpoint:
    """The ASGI app of :data:`UPLOAD_PATH` (the app's ``state.ctx`` is the server's context).

    Three steps (:func:`_store`): the chunk is checked in ``ctx.upload_threads`` (:func:`_prepare`); it
    joins the writer's next group (its blob stored with the group's, its row committed with theirs),
    awaited on the event loop without holding a thread; the answer follows the outcome (:func:`_finish`).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: ServerContext = scope["app"].state.ctx
        headers = Headers(scope=scope)
        caller = await authenticate(ctx.auth, headers.get("x-api-key"), False)
        pieces: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            pieces.append(message.get("body", b""))
            more = message.get("more_body", False)
        form = parse_upload_form(headers.get("content-type"), b"".join(pieces))
        # Shielded: once the chunk is being stored, a cancelled request (shutdown) does not leave it half done.
        answer = await asyncio.shield(
            _store(ctx, caller, scope["path_params"]["session_id"], headers.get("x-user-id"), form)
        )
        await JSONResponse(answer)(scope, receive, send)


async def _store(
    ctx: ServerContext, caller: Caller, session_id: str, x_user_id: str | None, form: UploadForm
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    # The callback check reads the request's policy (a context variable set by the middleware).
    call = contextvars.copy_context().run
    record = await loop.run_in_executor(ctx.upload_threads, call, _prepare, ctx, caller, session_id, x_user_id, form)
    if not isinstance(record, ChunkRecord):
        return record  # the answer to a retried upload
    try:
        outcome = await asyncio.wrap_future(ctx.writer.submit(record))
    except StorageFullError:
        raise ApiError(507, Detail.STORAGE_FULL) from None
    return _finish(ctx, record, outcome)


class _UploadRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self  # what the metrics label requests with (FastAPI's router does not set it)
        return match, child_scope


def upload_route() -> Route:
    return _UploadRoute(UPLOAD_PATH, UploadEndpoint(), methods=["POST"], name="upload_chunk", include_in_schema=False)


def _check_format(inference_type: str, data: bytes) -> None:
    if inference_type == "MELSPECTROGRAM":
        try:
            check_mel_chunk(data)
        except MelFormatError as exc:
            raise ApiError(400, Detail.MEL_FORMAT.format(why=exc)) from None
        return
    try:
        check_mel_chunk(data, n_frames=None)
    except MelFormatError:
        pass
    else:
        raise ApiError(400, Detail.MEL_IN_AUDIO_SESSION)
    try:
        decode_chunk(data)
    except AudioFormatError:
        raise ApiError(400, Detail.AUDIO_FORMAT) from None


def _prepare(
    ctx: ServerContext, caller: Caller, session_id: str, x_user_id: str | None, form: UploadForm
) -> ChunkRecord | dict[str, Any]:
    """Check the upload (documented errors as :class:`ApiError`) and store its blob: the chunk, ready for
    the group commit.

    An answer instead of a chunk when there is nothing to write: a retried upload of a chunk already
    received answers success even if what it carries is not a valid chunk.
    """
    target = ctx.upload_targets.get(session_id)
    if (
        target is None
        or not is_user_id(x_user_id)
        or target.environment_id != caller.environment_id
        or target.user_id != x_user_id
    ):
        target = _upload_target(ctx, caller, x_user_id, session_id)
    if target.closed:
        raise ApiError(403, Detail.SESSION_CLOSED)
    inference_type = target.inference_type
    try:
        seq = int(form.seq_num) if form.seq_num is not None else -1
    except ValueError:
        seq = -1
    if not 0 <= seq <= MAX_SEQ_NUM:
        raise ApiError(422, Detail.INVALID_SEQ_NUM)
    callback_url = form.callback_url
    if callback_url is not None and not valid_callback_url(callback_url):
        raise ApiError(400, Detail.INVALID_CALLBACK)
    data = form.file
    if data is None:
        raise ApiError(422, Detail.INVALID_PARAMETER, {"errors": [{"loc": ["body", "file"], "msg": "missing"}]})
    if len(data) > ctx.settings.max_upload_bytes:
        raise ApiError(413, Detail.TOO_LARGE.format(limit=ctx.settings.max_upload_bytes))
    try:
        _check_format(inference_type, data)
    except ApiError:
        if _already_received(ctx, session_id, seq):  # a retried upload answers as before, whatever it carries
            ctx.metrics.uploads.labels(inference_type, "duplicate").inc()
            return _upload_answer(session_id, seq, True)
        ctx.metrics.uploads.labels(inference_type, "rejected").inc()
        raise
    ext = "mel" if inference_type == "MELSPECTROGRAM" else "audio"
    # Unique per attempt, so a duplicate racing this upload never overwrites it (os.urandom is slow on some
    # virtual machines and unpredictability is not needed here).
    name = f"{seq:05d}-{_RNG.getrandbits(40):010x}.{ext}"
    callback = None
    if callback_url is not None:
        callback = (callback_url, caller.key.id, encrypt_secret(ctx.stores.secret, caller.api_key))
    blob = (blob_prefix(target.environment_id, target.user_id, session_id), name, data)
    return ChunkRecord(session_id, seq, "", len(data), inference_type, utcnow(), callback, blob)


def _finish(ctx: ServerContext, record: ChunkRecord, outcome: Outcome) -> dict[str, Any]:
    """The answer to a committed (or refused) chunk; an accepted one's jobs are queued."""
    if outcome.status == "missing":
        ctx.upload_targets.forget(record.session_id)
        raise ApiError(404, Detail.SESSION_NOT_FOUND)
    if outcome.status == "closed":
        ctx.upload_targets.closed(record.session_id)
        raise ApiError(403, Detail.SESSION_CLOSED)
    if outcome.status == "accepted":
        ctx.metrics.upload_bytes.inc(record.size)
        ctx.queue.submit(outcome.jobs)
    ctx.metrics.uploads.labels(record.inference_type, outcome.status).inc()
    return _upload_answer(record.session_id, record.seq_num, outcome.status == "duplicate")


def _upload_target(ctx: ServerContext, caller: Caller, x_user_id: str | None, session_id: str) -> UploadTarget:
    """The session an upload goes to, with the documented errors (401 / 404) if it cannot be found."""
    with ctx.stores.db.read() as db:
        user = session_user(db, caller, x_user_id)
        s = find_session(db, caller.environment_id, session_id, user.id)
        if s is None:
            raise ApiError(404, Detail.SESSION_NOT_FOUND)
        target = UploadTarget(s.environment_id, s.user_id, s.inference_type, s.state != SessionState.OPEN)
    ctx.upload_targets.put(session_id, target)
    return target


def _already_received(ctx: ServerContext, session_id: str, seq: int) -> bool:
    with ctx.stores.db.read() as db:
        return db.get(Chunk, (session_id, seq)) is not None


def _upload_answer(session_id: str, seq: int, duplicate: bool) -> dict[str, Any]:
    return {"detail": "success", "result": {"session_id": session_id, "seq_num": seq, "duplicate": duplicate}}


# ----------------------------------------------------------------------------------- the OpenAPI
UPLOAD_OPERATION: dict[str, Any] = {
    "tags": ["Session API"],
    "summary": "Upload a 30-second chunk",
    "description": (
        "Uploads chunk `seq_num` (0 for the first 30 seconds, 1 for the next, …). AUDIO sessions take WAV, MP3, "
        "FLAC or OGG at 16, 44.1 or 48 kHz; MELSPECTROGRAM sessions take `sleeptrack.analysis.encode_mel_chunk` "
        "bytes (what the SDK sends; byte layout in docs/sdk.md). Idempotent per `seq_num` (a repeated upload "
        "changes nothing and answers "
        "`duplicate: true`), chunks may arrive in any order, and a chunk is on disk before the answer.\n\n"
        "```bash\ncurl http://127.0.0.1:8000/ai/v1/sessions/<SESSION_ID>/upload -XPOST \\\n"
        '  -H "x-api-key: <YOUR_API_KEY>" -H "x-user-id: <USER_ID>" \\\n'
        "  -F seq_num=0 -F file=@chunk-0000.wav\n```"
    ),
    "operationId": "upload_chunk_ai_v1_sessions__session_id__upload_post",
    "security": [{"APIKeyHeader": []}],
    "parameters": [
        {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "title": "Session Id"}},
        {
            "name": "x-user-id",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "title": "X-User-Id"},
            "description": "The user id (from POST /ai/v1/users)",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "seq_num"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The 30-second chunk"},
                        "seq_num": {"type": "integer", "minimum": 0, "description": "0-based index (one per 30 s)"},
                        "callback_url": {"type": "string", "description": "Replaces the session's callback URL"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": example({"detail": "success", "result": {"session_id": EXAMPLE_SID, "seq_num": 0, "duplicate": False}}),
        **{
            str(code): answer
            for code, answer in error_examples(
                (400, Detail.AUDIO_FORMAT),
                (400, Detail.MEL_FORMAT.format(why="mel spectrogram has 1500 frames, expected 3001 (30 seconds)")),
                (400, Detail.MEL_IN_AUDIO_SESSION),
                (400, Detail.INVALID_CALLBACK),
                *WRITE_TO_SESSION_ERRORS,
                (413, Detail.TOO_LARGE.format(limit=10485760)),
                (422, Detail.INVALID_SEQ_NUM),
                (422, Detail.INVALID_PARAMETER),
                (507, Detail.STORAGE_FULL),
            ).items()
        },
    },
}

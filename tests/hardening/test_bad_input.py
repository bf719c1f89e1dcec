"""A corpus of bad requests: each gets its documented error, and nothing already stored changes.

The store is snapshotted (every row of the session tables and every blob's bytes) after a few good
uploads; then every bad request of the corpus is sent; then the snapshot must be the same.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf
import zstandard
from httpx import Response
from sqlalchemy import select

from sleeptrack.analysis import MEL, MEL_VERSION, check_mel_chunk, encode_mel_chunk
from sleeptrack.server._errors import Detail
from sleeptrack.server._sessions import MAX_SEQ_NUM
from sleeptrack.store import Base
from tests.server.conftest import Api, mel_chunk

SNAPSHOT_TABLES = ("users", "sessions", "chunks", "chunk_features", "realtime_results", "final_results", "jobs")


def wav(seconds: float = 30.0, rate: int = 16000, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    sf.write(buf, (rng.normal(0, 0.05, int(seconds * rate))).astype(np.float32), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def snapshot(api: Api) -> dict[str, Any]:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    state: dict[str, Any] = {}
    with api.ctx.stores.db.read() as db:
        for name in SNAPSHOT_TABLES:
            table = tables[name]
            state[name] = sorted(tuple(str(v) for v in row) for row in db.execute(select(table)).all())
    blobs = api.data_dir / "blobs"
    state["blobs"] = sorted(
        (str(p.relative_to(blobs)), hashlib.sha256(p.read_bytes()).hexdigest()) for p in blobs.rglob("*") if p.is_file()
    )
    return state


@dataclass
class World:
    user: str
    mel_sid: str
    audio_user: str
    audio_sid: str
    closed_sid: str


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    user = api.new_user()
    mel_sid = api.new_session(user)
    for seq in range(3):
        assert api.upload(mel_sid, user, seq, mel_chunk(seq)).status_code == 200
    audio_user = api.new_user()
    closed_sid = api.new_session(audio_user)
    assert api.upload(closed_sid, audio_user, 0).status_code == 200
    assert api.close(closed_sid, audio_user).status_code == 200
    audio_sid = api.new_session(audio_user, inference_type="AUDIO")
    assert api.upload(audio_sid, audio_user, 0, wav()).status_code == 200
    api.wait()
    return World(user, mel_sid, audio_user, audio_sid, closed_sid)


def _raw_mel(frames: int = 3001, bands: int = 64, codec: int = 1, payload: bytes | None = None) -> bytes:
    """A MELSPECTROGRAM body built by hand: the wire header, then ``payload`` (zero quanta by default)."""
    head = struct.pack("<5sBHIB", b"STMEL", MEL_VERSION, bands, frames, codec)
    if payload is None:
        zeros = np.zeros(frames * bands, np.uint8).tobytes()
        payload = _zstd(zeros) if codec == 2 else zlib.compress(zeros)
    return head + payload


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def test_a_hand_built_mel_is_what_the_sdk_sends() -> None:
    # the cases below change one thing each in a body the server otherwise accepts
    zero_quanta = np.full((3001, 64), MEL.db_min, np.float32)
    check_mel_chunk(_raw_mel(codec=1))
    check_mel_chunk(_raw_mel(codec=2))
    assert _raw_mel(codec=2)[:13] == encode_mel_chunk(zero_quanta)[:13]


Case = tuple[str, Callable[[Api, World], Response], int, str | None]


def _upload(sid: str, user: str, seq: Any, data: bytes | None, **extra: Any) -> Callable[[Api, World], Response]:
    def send(api: Api, w: World) -> Response:
        files = {"file": ("chunk.bin", data, "application/octet-stream")} if data is not None else None
        response: Response = api.client.post(
            f"/ai/v1/sessions/{sid}/upload",
            headers=api.h(user=user),
            files=files,
            data={"seq_num": str(seq), **extra},
        )
        return response

    return send


def mel_upload(seq: Any, data: bytes | None) -> Callable[[Api, World], Response]:
    return lambda api, w: _upload(w.mel_sid, w.user, seq, data)(api, w)


def audio_upload(data: bytes, seq: Any = 1) -> Callable[[Api, World], Response]:
    return lambda api, w: _upload(w.audio_sid, w.audio_user, seq, data)(api, w)


def request(method: str, path: str, headers: Any = None, **kwargs: Any) -> Callable[[Api, World], Response]:
    def send(api: Api, w: World) -> Response:
        full = path.format(mel_sid=w.mel_sid, closed_sid=w.closed_sid, user=w.user)
        hdrs = headers(api, w) if callable(headers) else headers
        response: Response = api.client.request(method, full, headers=hdrs, **kwargs)
        return response

    return send


def _h(api: Api, w: World, **extra: str) -> dict[str, str]:
    return {**api.h(user=w.user), **extra}


MEL_WHY = "invalid melspectrogram format: "
WRONG_SHAPE = encode_mel_chunk(np.full((1500, 64), -60.0, np.float32))
NAN_FLOAT32 = np.full((3001, 64), np.nan, np.float32).tobytes()
NPY = io.BytesIO()
np.save(NPY, np.zeros((3001, 64), np.float64))
GOOD_WAV = wav()

CORPUS: list[Case] = [
    # audio
    ("corrupt audio", audio_upload(np.random.default_rng(1).bytes(50_000)), 400, Detail.AUDIO_FORMAT),
    ("RIFF then garbage", audio_upload(b"RIFF\x00\x00\x01\x00WAVEfmt " + b"\xff" * 4000), 400, Detail.AUDIO_FORMAT),
    ("truncated wav", audio_upload(GOOD_WAV[: len(GOOD_WAV) // 2]), 400, Detail.AUDIO_FORMAT),
    ("wav header only", audio_upload(GOOD_WAV[:44]), 400, Detail.AUDIO_FORMAT),
    ("wrong sample rate", audio_upload(wav(rate=22050)), 400, Detail.AUDIO_FORMAT),
    ("8 kHz", audio_upload(wav(rate=8000)), 400, Detail.AUDIO_FORMAT),
    ("10 seconds", audio_upload(wav(seconds=10)), 400, Detail.AUDIO_FORMAT),
    ("empty audio", audio_upload(b""), 400, Detail.AUDIO_FORMAT),
    ("mel into an AUDIO session", audio_upload(mel_chunk(1)), 400, Detail.MEL_IN_AUDIO_SESSION),
    # mel spectrograms
    ("mel of 1500 frames", mel_upload(3, WRONG_SHAPE), 400, MEL_WHY),
    ("mel of 40 bands", mel_upload(3, _raw_mel(bands=40)), 400, MEL_WHY),
    ("mel float codec", mel_upload(3, _raw_mel(codec=7)), 400, MEL_WHY),
    ("mel payload too short", mel_upload(3, _raw_mel(payload=zlib.compress(b"\x00" * 100))), 400, MEL_WHY),
    ("mel payload corrupt", mel_upload(3, _raw_mel(payload=b"\x78\x9c garbage")), 400, MEL_WHY),
    ("raw float32 NaNs", mel_upload(3, NAN_FLOAT32), 400, MEL_WHY),
    ("a .npy float64 array", mel_upload(3, NPY.getvalue()), 400, MEL_WHY),
    ("audio into a mel session", mel_upload(3, GOOD_WAV), 400, MEL_WHY),
    ("empty mel", mel_upload(3, b""), 400, MEL_WHY),
    ("zip bomb claims", mel_upload(3, _raw_mel(payload=zlib.compress(b"\x00" * 10_000_000))), 400, MEL_WHY),
    ("zstd payload too short", mel_upload(3, _raw_mel(codec=2, payload=_zstd(b"\x00" * 100))), 400, MEL_WHY),
    ("zstd payload corrupt", mel_upload(3, _raw_mel(codec=2, payload=b"\x28\xb5\x2f\xfd garbage")), 400, MEL_WHY),
    ("zstd bomb claims", mel_upload(3, _raw_mel(codec=2, payload=_zstd(b"\x00" * 10_000_000))), 400, MEL_WHY),
    # seq_num
    ("negative seq_num", mel_upload(-1, mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("huge seq_num", mel_upload(10**30, mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("past 7 days", mel_upload(MAX_SEQ_NUM + 1, mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("seq_num text", mel_upload("three", mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("seq_num float", mel_upload("3.5", mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("seq_num SQL", mel_upload("3; DROP TABLE chunks", mel_chunk(5)), 422, Detail.INVALID_SEQ_NUM),
    ("no file", mel_upload(3, None), 422, Detail.INVALID_PARAMETER),
    # ids with path separators or SQL
    # encoded slashes are decoded before routing: no route matches ({"detail": "Not Found"})
    ("session id traversal", _upload(quote("../../../etc", safe=""), "x", 3, mel_chunk(5)), 404, None),
    (
        "session id traversal (user)",
        lambda api, w: _upload(quote("..%2F..%2Fblobs", safe=""), w.user, 3, mel_chunk(5))(api, w),
        404,
        None,
    ),
    (
        "session id SQL",
        lambda api, w: _upload(quote("x' OR '1'='1", safe=""), w.user, 3, mel_chunk(5))(api, w),
        404,
        Detail.SESSION_NOT_FOUND,
    ),
    (
        "user id SQL",
        lambda api, w: _upload(w.mel_sid, "G' OR 1=1 --", 3, mel_chunk(5))(api, w),
        401,
        Detail.X_USER_ID_INVALID,
    ),
    (
        "user id traversal",
        lambda api, w: _upload(w.mel_sid, "../../G-1", 3, mel_chunk(5))(api, w),
        401,
        Detail.X_USER_ID_INVALID,
    ),
    (
        "Data API session id SQL",
        request("GET", "/data/v3/sessions/" + quote("1' OR '1'='1", safe=""), _h),
        400,
        "The format of sleep session id",
    ),
    (
        "Data API user SQL",
        request("GET", "/data/v1/sessions", lambda api, w: {**api.h(), "x-user-id": "' OR 1=1"}),
        400,
        Detail.X_USER_ID_FORMAT,
    ),
    (
        "average stats user traversal",
        request(
            "GET",
            "/data/v1/users/" + quote("G'--", safe="") + "/average-stats?start_date=2025-01-01&end_date=2025-01-09",
            _h,
        ),
        404,
        "Unable to find the user of id",
    ),
    (
        "average stats bad date",
        request("GET", "/data/v1/users/{user}/average-stats?start_date=2025-02-30&end_date=2025-03-01", _h),
        400,
        Detail.PERIOD,
    ),
    ("delete a session by traversal", request("DELETE", "/ai/v1/sessions/" + quote("..", safe=""), _h), 404, None),
    # time zones and dates
    (
        "unknown timezone",
        request("POST", "/ai/v1/sessions", lambda api, w: _h(api, w, timezone="Mars/Olympus_Mons")),
        400,
        Detail.INVALID_TIMEZONE,
    ),
    (
        "timezone path",
        request("GET", "/data/v3/sessions/{mel_sid}", lambda api, w: _h(api, w, timezone="../../../etc/localtime")),
        400,
        Detail.INVALID_TIMEZONE,
    ),
    (
        "end time nonsense",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", _h, json={"session_end_time": "yesterday"}),
        400,
        Detail.INVALID_END_TIME,
    ),
    (
        "end time month 13",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", _h, json={"session_end_time": "2025-13-45T99:00:00Z"}),
        400,
        Detail.INVALID_END_TIME,
    ),
    (
        "end time before start",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", _h, json={"session_end_time": "2001-01-01T00:00:00Z"}),
        400,
        Detail.INVALID_END_TIME,
    ),
    (
        "end time a number",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", _h, json={"session_end_time": 12}),
        422,
        Detail.INVALID_PARAMETER,
    ),
    (
        "unexpected = 7",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", _h, json={"unexpected": 7}),
        422,
        Detail.INVALID_PARAMETER,
    ),
    (
        "close body not JSON",
        request(
            "POST",
            "/ai/v1/sessions/{mel_sid}/close",
            lambda api, w: _h(api, w, **{"content-type": "application/json"}),
            content=b"{not json",
        ),
        422,
        Detail.INVALID_PARAMETER,
    ),
    (
        "date filter 30 Feb",
        request("GET", "/data/v1/sessions?date_gte=2025-02-30", _h),
        422,
        Detail.INVALID_PARAMETER,
    ),
    ("limit negative", request("GET", "/data/v1/sessions?limit=-5", _h), 422, Detail.INVALID_PARAMETER),
    # headers missing or duplicated
    ("no api key", request("POST", "/ai/v1/sessions/{mel_sid}/close", {}), 401, Detail.UNAUTHORIZED),
    ("no api key (Data API)", request("GET", "/data/v3/sessions/{mel_sid}", {}), 401, Detail.API_KEY_NOT_PROVIDED),
    ("wrong api key", request("GET", "/data/v3/sessions/{mel_sid}", {"x-api-key": "st_test_x"}), 401, None),
    (
        "no x-user-id",
        request("POST", "/ai/v1/sessions/{mel_sid}/close", lambda api, w: api.h()),
        401,
        Detail.X_USER_ID_INVALID,
    ),
    (
        "two api keys",
        request(
            "POST",
            "/ai/v1/sessions/{mel_sid}/close",
            lambda api, w: [("x-api-key", api.keys["adv"]), ("x-api-key", api.keys["other"]), ("x-user-id", w.user)],
        ),
        401,
        Detail.UNAUTHORIZED,
    ),
    (
        "two users",
        request(
            "POST",
            "/ai/v1/sessions/{mel_sid}/close",
            lambda api, w: [("x-api-key", api.keys["adv"]), ("x-user-id", w.user), ("x-user-id", "G-other")],
        ),
        401,
        Detail.X_USER_ID_INVALID,
    ),
    (
        "two users (Data API)",
        request(
            "GET",
            "/data/v3/sessions/{mel_sid}",
            lambda api, w: [("x-api-key", api.keys["adv"]), ("x-user-id", w.user), ("x-user-id", "G-other")],
        ),
        400,
        Detail.X_USER_ID_FORMAT,
    ),
    (
        "two time zones",
        request(
            "POST",
            "/ai/v1/sessions/{mel_sid}/close",
            lambda api, w: [*_h(api, w).items(), ("timezone", "UTC"), ("timezone", "Asia/Seoul")],
        ),
        400,
        Detail.INVALID_TIMEZONE,
    ),
    # a closed session stays closed
    (
        "upload to a closed session",
        lambda api, w: _upload(w.closed_sid, w.audio_user, 1, mel_chunk(5))(api, w),
        403,
        Detail.SESSION_CLOSED,
    ),
    ("declared 1 GB", mel_upload(3, b"x"), 413, None),  # replaced below by a content-length header
]


@pytest.mark.parametrize("case", CORPUS[:-1], ids=[c[0] for c in CORPUS[:-1]])
def test_bad_request_gets_its_documented_error(api: Api, world: World, case: Case) -> None:
    name, send, status, detail = case
    before = snapshot(api)
    r = send(api, world)
    assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert set(body) == {"detail", "result"}, body
    if detail is not None:
        assert str(body["detail"]).startswith(detail), f"{name}: {body['detail']!r}"
    api.wait()
    assert snapshot(api) == before, f"{name} changed what was stored"


def test_the_same_header_twice_with_one_value_is_fine(api: Api, world: World) -> None:
    headers = [("x-api-key", api.keys["adv"]), ("x-api-key", api.keys["adv"]), ("x-user-id", world.user)]
    r = api.client.get(f"/data/v3/sessions/{world.mel_sid}", headers=headers)
    assert r.status_code == 200, r.text


def test_declared_huge_body_is_refused_before_reading(api: Api, world: World) -> None:
    before = snapshot(api)
    r = api.client.post(
        f"/ai/v1/sessions/{world.mel_sid}/upload",
        headers={**api.h(user=world.user), "content-length": str(1 << 30), "content-type": "multipart/form-data"},
        content=b"",
    )
    assert (r.status_code, r.json()["detail"]) == (413, "HTTP content length exceeded 10485760 bytes.")
    assert snapshot(api) == before

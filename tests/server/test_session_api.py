"""Session API: every endpoint, every documented answer, idempotent and out-of-order uploads."""

from __future__ import annotations

import errno
import io
import sqlite3
import wave
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from sleeptrack.server import Detail
from sleeptrack.server import _ingest as ingest
from sleeptrack.store import Chunk, Job, SleepSession
from tests.server.conftest import MEL, Api, mel_chunk


def _wav(seconds: float = 30.0, rate: int = 16_000) -> bytes:
    samples = (np.random.default_rng(1).normal(0, 0.01, int(seconds * rate)) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_create_session(api: Api) -> None:
    user = api.new_user()
    r = api.client.post("/ai/v1/sessions", headers=api.h(user=user, tz="Asia/Seoul"), json={"service": "MyApp"})
    assert r.status_code == 201
    body = r.json()
    assert body["detail"] == "success"
    result = body["result"]
    assert result["state"] == "OPEN" and result["session_start_time"].endswith("+09:00")
    assert len(result["session_id"]) == 20 and result["session_id"][14] == "_"
    # a second one while the first is open: 409 with the open one
    r = api.client.post("/ai/v1/sessions", headers=api.h(user=user), json={})
    assert r.status_code == 409
    assert r.json() == {"detail": Detail.SESSION_NOT_CLOSED, "result": {"session_id": result["session_id"]}}
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, result["session_id"])
        assert s is not None and s.created_timezone == "Asia/Seoul" and s.service == "MyApp"
        assert s.inference_type == "MELSPECTROGRAM" and s.scheme == "4-stage" and s.realtime


def test_create_session_errors(api: Api) -> None:
    user = api.new_user()
    cases = [
        (api.h(user=user), {"callback_url": "ftp://x"}, 400, Detail.INVALID_CALLBACK),
        (api.h(user=user), {"callback_url": "not a url"}, 400, Detail.INVALID_CALLBACK),
        (api.h(user=user, tz="Mars/Olympus"), {}, 400, Detail.INVALID_TIMEZONE),
        (api.h(), {}, 401, Detail.X_USER_ID_INVALID),
        (api.h(user="G-123"), {}, 401, Detail.X_USER_ID_INVALID),
        (api.h(user="G-20250115025029-vLErWBfQNtnfvgDccFOQ"), {}, 404, Detail.USER_NOT_FOUND),
        (api.h(user=user), {"inference_type": "VIDEO"}, 422, Detail.INVALID_PARAMETER),
        ({"x-user-id": user}, {}, 401, Detail.UNAUTHORIZED),
    ]
    for headers, body, status, detail in cases:
        r = api.client.post("/ai/v1/sessions", headers=headers, json=body)
        assert (r.status_code, r.json()["detail"]) == (status, detail), (body, r.text)


def test_uploads_are_idempotent_out_of_order_and_durable(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    kept = api.kept_bytes()  # by earlier tests (the server is shared)
    for seq in (2, 0, 1, 5):
        r = api.upload(sid, user, seq, mel_chunk(seq))
        assert r.status_code == 200, r.text
        assert r.json() == {"detail": "success", "result": {"session_id": sid, "seq_num": seq, "duplicate": False}}
    # the chunk is on disk and its row committed before the answer
    with api.ctx.stores.db.read() as db:
        chunk = db.get(Chunk, (sid, 5))
        assert chunk is not None
        assert api.ctx.stores.blobs.get(chunk.blob_key) == mel_chunk(5)
    # a retried upload changes nothing and answers success
    r = api.upload(sid, user, 1, mel_chunk(99))
    assert r.status_code == 200 and r.json()["result"]["duplicate"] is True
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None and (s.last_seq_num, s.received_count) == (5, 4)
        chunk = db.get(Chunk, (sid, 1))
        assert chunk is not None and api.ctx.stores.blobs.get(chunk.blob_key) == mel_chunk(1)
        kinds = sorted(db.scalars(select(Job.kind).where(Job.session_id == sid)))
    assert kinds == ["features"] * 4
    stored = sum(len(mel_chunk(seq)) for seq in (2, 0, 1, 5))
    assert stored <= api.kept_bytes() - kept <= stored + 4 * 4096  # the duplicate's bytes were not kept
    r = api.client.get("/ai/v1/sessions/open", headers=api.h(user=user))
    assert r.status_code == 200
    assert r.json()["result"] | {"session_start_time": None} == {
        "session_id": sid,
        "state": "OPEN",
        "session_start_time": None,
        "last_seq_num": 5,
        "received_seq_nums_count": 4,
        "inference_type": "MELSPECTROGRAM",
    }


def test_upload_errors(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    audio_owner = api.new_user()
    audio_sid = api.new_session(audio_owner, inference_type="AUDIO")
    cases = [
        (sid, user, "-1", MEL, 422, Detail.INVALID_SEQ_NUM),
        (sid, user, "one", MEL, 422, Detail.INVALID_SEQ_NUM),
        (sid, user, "99999999", MEL, 422, Detail.INVALID_SEQ_NUM),
        (sid, user, "0", mel_chunk(frames=1500), 400, Detail.MEL_FORMAT.format(why="")),
        (sid, user, "0", b"RIFF....WAVEfmt", 400, Detail.MEL_FORMAT.format(why="")),
        (audio_sid, audio_owner, "0", b"garbage" * 100, 400, Detail.AUDIO_FORMAT),
        (audio_sid, audio_owner, "0", _wav(seconds=10), 400, Detail.AUDIO_FORMAT),
        (audio_sid, audio_owner, "0", MEL, 400, Detail.MEL_IN_AUDIO_SESSION),
        ("20250115025029_zzzzz", user, "0", MEL, 404, Detail.SESSION_NOT_FOUND),
        ("not-a-session", user, "0", MEL, 404, Detail.SESSION_NOT_FOUND),
        (sid, audio_owner, "0", MEL, 404, Detail.SESSION_NOT_FOUND),  # another user's session
    ]
    for session_id, uid, seq, data, status, detail in cases:
        r = api.upload(session_id, uid, seq, data)
        assert r.status_code == status, (seq, r.text)
        if detail.endswith(": "):
            assert r.json()["detail"].startswith(detail) and len(r.json()["detail"]) > len(detail)
        else:
            assert r.json()["detail"] == detail
    r = api.upload(sid, user, 0, MEL, callback_url="javascript:alert(1)")
    assert (r.status_code, r.json()["detail"]) == (400, Detail.INVALID_CALLBACK)
    r = api.client.post(f"/ai/v1/sessions/{sid}/upload", headers=api.h(user=user), data={"seq_num": "0"})
    assert (r.status_code, r.json()["detail"]) == (422, Detail.INVALID_PARAMETER)
    r = api.client.post(f"/ai/v1/sessions/{sid}/upload", headers=api.h(user=user), files={"file": ("c", MEL)}, data={})
    assert (r.status_code, r.json()["detail"]) == (422, Detail.INVALID_SEQ_NUM)
    # nothing of the rejected uploads was kept
    with api.ctx.stores.db.read() as db:
        assert db.scalars(select(Chunk).where(Chunk.session_id.in_([sid, audio_sid]))).all() == []
    # a good audio chunk is accepted (44.1 kHz WAV)
    assert api.upload(audio_sid, audio_owner, 0, _wav(rate=44_100)).status_code == 200


def test_a_full_disk_answers_507_and_keeps_nothing_half_stored(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob store's disk or the database's disk full: 507 with a clear detail (the SDK retries any 5xx);
    no blob or row is left of the refused upload, and the same upload succeeds once there is room."""
    user = api.new_user()
    sid = api.new_session(user)
    kept = api.kept_bytes()  # by earlier tests (the server is shared)
    assert api.upload(sid, user, 0, mel_chunk(0)).status_code == 200
    blobs = type(api.ctx.stores.blobs)

    def no_room(self: object, items: object) -> list[str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(blobs, "add_many", no_room)
        r = api.upload(sid, user, 1, mel_chunk(1))
    assert (r.status_code, r.json()) == (507, {"detail": Detail.STORAGE_FULL, "result": None})

    def database_full(db: object, recs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(ingest, "apply_chunks", database_full)
        r = api.upload(sid, user, 1, mel_chunk(1))
    assert (r.status_code, r.json()["detail"]) == (507, Detail.STORAGE_FULL)
    with api.ctx.stores.db.read() as db:
        assert [c.seq_num for c in db.scalars(select(Chunk).where(Chunk.session_id == sid))] == [0]
    first = len(mel_chunk(0))
    assert first <= api.kept_bytes() - kept <= first + 4096, "the refused chunk's bytes were freed"
    r = api.upload(sid, user, 1, mel_chunk(1))  # room again: the retry is stored
    assert r.status_code == 200 and r.json()["result"]["duplicate"] is False


def test_upload_size_limit(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    big = b"\0" * (10 * 1024 * 1024 + 200_000)
    r = api.upload(sid, user, 0, big)
    assert r.status_code == 413
    assert r.json() == {"detail": "HTTP content length exceeded 10485760 bytes.", "result": None}

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while streaming
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        yield boundary
        for _ in range(12):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    r = api.client.post(
        f"/ai/v1/sessions/{sid}/upload",
        headers={**api.h(user=user), "content-type": "multipart/form-data; boundary=b"},
        content=chunks(),
    )
    assert r.status_code == 413 and r.json()["detail"] == "HTTP content length exceeded 10485760 bytes."


def test_close(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    for seq in range(3):
        assert api.upload(sid, user, seq).status_code == 200
    for body, detail in [
        ({"session_end_time": "yesterday"}, Detail.INVALID_END_TIME),
        ({"session_end_time": "2001-01-01T00:00:00+00:00"}, Detail.INVALID_END_TIME),
        ({"session_end_time": "2999-01-01T00:00:00+00:00"}, Detail.INVALID_END_TIME),
        ({"callback_url": "x"}, Detail.INVALID_CALLBACK),
    ]:
        r = api.close(sid, user, **body)
        assert (r.status_code, r.json()["detail"]) == (400, detail)
    assert api.close("20250115025029_zzzzz", user).json()["detail"] == Detail.SESSION_NOT_FOUND
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None
        start = s.start_time
    end_local = (start + timedelta(minutes=20)).astimezone(datetime.now().astimezone().tzinfo)
    naive_seoul = (start + timedelta(minutes=20, hours=9)).replace(tzinfo=None).isoformat()
    r = api.close(sid, user, tz="Asia/Seoul", session_end_time=naive_seoul)
    assert r.status_code == 200
    assert r.json() == {"detail": "success", "result": {"session_id": sid, "state": "CLOSED"}}
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None and s.end_time == end_local and s.unexpected_end_time is None
    r = api.close(sid, user)
    assert (r.status_code, r.json()["detail"]) == (403, Detail.SESSION_CLOSED)
    r = api.upload(sid, user, 3)
    assert (r.status_code, r.json()["detail"]) == (403, Detail.SESSION_CLOSED)
    # the user can open a new session now
    api.new_session(user)
    api.wait()


def test_unexpected_close_ends_with_the_last_chunk(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    for seq in (0, 1, 6):
        assert api.upload(sid, user, seq).status_code == 200
    r = api.close(sid, user, unexpected=1, session_end_time="2999-01-01T00:00:00+00:00")
    assert r.status_code == 400  # an explicit end time is still validated
    r = api.close(sid, user, unexpected=1)
    assert r.status_code == 200
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None and s.end_time == s.start_time + timedelta(seconds=7 * 30)
        assert s.unexpected_end_time is not None
    api.wait()
    report = api.report(sid, user)
    assert report["session"]["unexpected_end_time"] is not None
    assert len(report["session"]["sleep_stages"]) == 7
    assert report["session"]["sleep_stages"][2:6] == [-1, -1, -1, -1]


def test_open_session_endpoint(api: Api) -> None:
    user = api.new_user()
    r = api.client.get("/ai/v1/sessions/open", headers=api.h(user=user))
    assert (r.status_code, r.json()["detail"]) == (404, Detail.SESSION_NOT_FOUND)
    sid = api.new_session(user)
    r = api.client.get("/ai/v1/sessions/open", headers=api.h(user=user))
    assert r.json()["result"]["session_id"] == sid and r.json()["result"]["last_seq_num"] == -1


def test_delete_sessions(api: Api) -> None:
    kept = api.kept_bytes()  # by earlier tests (the server is shared)
    user = api.new_user()
    sid = api.new_session(user)
    assert api.upload(sid, user, 0).status_code == 200
    assert api.close(sid, user).status_code == 200
    sid2 = api.new_session(user)
    assert api.upload(sid2, user, 0).status_code == 200
    first, second = api.chunk_keys(user)
    blobs = api.ctx.stores.blobs
    assert blobs.exists(first) and blobs.exists(second)
    r = api.client.delete(f"/ai/v1/sessions/{sid}", headers=api.h(user=user))
    assert r.status_code == 204 and r.content == b""
    assert api.chunk_keys(user) == [second] and not blobs.exists(first) and blobs.exists(second)
    r = api.client.delete(f"/ai/v1/sessions/{sid}", headers=api.h(user=user))
    assert (r.status_code, r.json()["detail"]) == (404, "session does not exist")
    r = api.client.delete(f"/ai/v1/sessions/{sid2}", headers=api.h())
    assert (r.status_code, r.json()["detail"]) == (401, Detail.X_USER_ID_INVALID)
    r = api.client.delete(f"/ai/v1/sessions/{sid2}", headers=api.h(user="G-20250115025029-vLErWBfQNtnfvgDccFOQ"))
    assert (r.status_code, r.json()["detail"]) == (404, Detail.USER_NOT_FOUND)
    r = api.client.delete("/ai/v1/sessions", headers=api.h(user=user))
    assert r.status_code == 204
    with api.ctx.stores.db.read() as db:
        assert db.scalars(select(SleepSession).where(SleepSession.user_id == user)).all() == []
    assert not blobs.exists(second) and api.kept_bytes() == kept
    api.wait()

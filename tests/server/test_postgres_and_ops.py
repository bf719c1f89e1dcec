"""The whole session flow on PostgreSQL (a throwaway schema), and the operational endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sleeptrack.store import Job, Webhook
from tests.db_fixtures import postgres_schema_url
from tests.server._receiver import Receiver
from tests.server.conftest import Api, make_keys, make_settings, mel_chunk


@pytest.fixture
def pg_api(tmp_path: Path, postgres_url: str) -> Iterator[Api]:
    from sleeptrack.server import create_app

    for url in postgres_schema_url(postgres_url):
        settings = make_settings(tmp_path, database_url=url)
        keys = make_keys(settings)
        with TestClient(create_app(settings)) as client:
            yield Api(client, keys, tmp_path)


def test_a_night_on_postgresql(pg_api: Api, receiver: Receiver) -> None:
    api = pg_api
    assert api.ctx.stores.db.dialect == "postgresql"
    user = api.new_user()
    sid = api.new_session(user, callback_url=receiver.url)
    assert api.client.post("/ai/v1/sessions", headers=api.h(user=user), json={}).status_code == 409
    for seq in [*range(5, 12), *range(5)]:
        assert api.upload(sid, user, seq, mel_chunk(seq)).json()["result"]["duplicate"] is False
    assert api.upload(sid, user, 3, mel_chunk(3)).json()["result"]["duplicate"] is True
    assert api.close(sid, user, unexpected=1).status_code == 200
    assert api.upload(sid, user, 12).status_code == 403
    api.wait()
    report = api.report(sid, user)
    assert report["session"]["state"] == "COMPLETE" and len(report["session"]["sleep_stages"]) == 12
    assert -1 not in report["session"]["sleep_stages"] and report["stat"] is not None
    assert receiver.wait_for(lambda r: [e.event for e in r.events()] == ["INFERENCE_COMPLETE", "SESSION_COMPLETE"])
    with api.ctx.stores.db.read() as db:
        assert {w.status for w in db.scalars(select(Webhook))} == {"delivered"}
        assert {j.status for j in db.scalars(select(Job).where(Job.session_id == sid))} == {"done"}
    r = api.client.get("/data/v1/sessions", headers=api.h(user=user, tz="Asia/Seoul"))
    assert [s["session_id"] for s in r.json()["result"]["sleep_session_list"]] == [sid]
    assert api.client.delete(f"/ai/v1/users/{user}", headers=api.h()).status_code == 204
    assert api.client.get(f"/ai/v1/users/{user}", headers=api.h()).status_code == 404


def test_health_metrics_and_openapi(api: Api) -> None:
    r = api.client.get("/healthz")
    assert r.status_code == 200 and r.json()["detail"] == "OK" and r.json()["result"]["database"] == "ok"
    user = api.new_user()
    sid = api.new_session(user)
    assert api.upload(sid, user, 0).status_code == 200
    assert api.upload(sid, user, 0).status_code == 200
    text = api.client.get("/metrics").text
    assert 'sleeptrack_uploads_total{inference_type="MELSPECTROGRAM",outcome="accepted"}' in text
    assert 'sleeptrack_uploads_total{inference_type="MELSPECTROGRAM",outcome="duplicate"}' in text
    assert (
        'sleeptrack_http_requests_total{method="POST",route="/ai/v1/sessions/{session_id}/upload",status="200"}' in text
    )
    assert "sleeptrack_job_queue_depth" in text and "sleeptrack_webhook_outbox_pending" in text
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/ai/v1/users",
        "/ai/v1/users/{user_id}",
        "/ai/v1/sessions",
        "/ai/v1/sessions/open",
        "/ai/v1/sessions/{session_id}/upload",
        "/ai/v1/sessions/{session_id}/close",
        "/ai/v1/sessions/{session_id}",
        "/data/v3/sessions/{session_id}",
        "/data/v1/sessions",
        "/data/v1/users/{user_id}/average-stats",
    ):
        assert path in paths, path
    upload = paths["/ai/v1/sessions/{session_id}/upload"]["post"]
    assert "curl" in upload["description"]
    assert upload["responses"]["200"]["content"]["application/json"]["example"]["result"]["duplicate"] is False
    assert (
        "Invalid seq_num (seq_num starts from 0)"
        in upload["responses"]["422"]["content"]["application/json"]["examples"]
    )
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "x-api-key"
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    api.wait()

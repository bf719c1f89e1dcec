"""End to end through ``sleeptrack serve`` on a loopback port: real uvicorn, worker processes, real engine.

A simulated night is uploaded out of order with retried chunks; real-time and final webhooks arrive at a
real receiver. Then the same night again, and the server is killed (SIGKILL, its workers included) during
the final analysis: restarted, it reaches COMPLETE with the same result as the night that was not
interrupted.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sleeptrack.store import Settings, SleepSession, hash_api_key, open_stores, webhook_secret
from sleeptrack.webhooks import verify_signature
from tests.server._live import LiveServer, create_key
from tests.server._receiver import Receiver
from tests.server.conftest import Night, expected_full_night

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("live_server")]


def _track(client: httpx.Client, night: Night, key: str, callback: str) -> tuple[str, str]:
    """Create a user and a session, upload the night (shuffled in 5-minute blocks, some twice), close it."""
    h = {"x-api-key": key}
    user = client.post("/ai/v1/users", headers=h).json()["result"]["user_id"]
    h["x-user-id"] = user
    r = client.post("/ai/v1/sessions", headers={**h, "timezone": "Asia/Seoul"}, json={"callback_url": callback})
    assert r.status_code == 201, r.text
    sid = r.json()["result"]["session_id"]
    start = datetime.fromisoformat(r.json()["result"]["session_start_time"])
    order = list(range(len(night.mels)))
    rng = random.Random(7)
    for block in range(0, len(order), 10):
        part = order[block : block + 10]
        rng.shuffle(part)
        order[block : block + 10] = part
    for i, seq in enumerate(order):
        for attempt in range(2 if i % 15 == 0 else 1):  # some uploads are retried
            r = client.post(
                f"/ai/v1/sessions/{sid}/upload",
                headers=h,
                files={"file": ("chunk.mel", night.mels[seq])},
                data={"seq_num": str(seq)},
            )
            assert r.status_code == 200 and r.json()["result"]["duplicate"] is (attempt == 1), r.text
    end = start + timedelta(seconds=30 * len(night.mels))
    r = client.post(f"/ai/v1/sessions/{sid}/close", headers=h, json={"session_end_time": end.isoformat()})
    assert r.status_code == 200, r.text
    return user, sid


def _report(client: httpx.Client, key: str, user: str, sid: str) -> dict[str, Any]:
    r = client.get(f"/data/v3/sessions/{sid}", headers={"x-api-key": key, "x-user-id": user, "timezone": "Asia/Seoul"})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["result"]
    return result


def _state(data_dir: Path, sid: str) -> str:
    stores = open_stores(Settings(data_dir=data_dir), migrate=False)
    try:
        with stores.db.read() as db:
            return db.get_one(SleepSession, sid).state
    finally:
        stores.close()


def test_nights_through_the_real_server_and_a_crash(tmp_path: Path, night: Night) -> None:
    key = create_key(tmp_path)
    n = len(night.mels)
    receiver = Receiver().start()
    server = LiveServer(tmp_path, "--workers", "1").start()
    try:
        # ---- a whole night
        with httpx.Client(base_url=server.url, timeout=60) as client:
            user, sid = _track(client, night, key["key"], receiver.url)
            assert receiver.wait_for(lambda r: len(r.events("SESSION_COMPLETE")) == 1, 300)
            report = _report(client, key["key"], user, sid)
            metrics = client.get("/metrics").text
        realtime = [e.json["data"] for e in receiver.events("INFERENCE_COMPLETE")]
        assert sorted(d["seq_num"] for d in realtime) == [9 + 10 * k for k in range(n // 10)]
        final = receiver.events("SESSION_COMPLETE")[0].json["data"]
        assert final.pop("user_id") == user and final == report
        secret = webhook_secret(Settings(data_dir=tmp_path).secret(), hash_api_key(key["key"]))
        assert key["webhook_secret"] == secret
        for hook in receiver.events():
            assert hook.headers["x-api-key"] == key["key"] and hook.headers["x-user-id"] == user
            verify_signature(
                secret, hook.body, hook.headers["x-sleeptrack-timestamp"], hook.headers["x-sleeptrack-signature"]
            )
        stages, snoring = expected_full_night(dict(enumerate(night.mels)), n)
        assert report["session"]["state"] == "COMPLETE" and report["session"]["start_time"].endswith("+09:00")
        assert report["session"]["sleep_stages"] == stages and report["session"]["snoring_stages"] == snoring
        assert report["stat"]["time_in_bed"] == 30 * n and report["missing_data_ratio"] == 0.0
        assert f'sleeptrack_uploads_total{{inference_type="MELSPECTROGRAM",outcome="accepted"}} {n}.0' in metrics
        assert 'sleeptrack_jobs_total{kind="final",outcome="done"} 1.0' in metrics

        # ---- the same night again; the server dies during the final analysis
        with httpx.Client(base_url=server.url, timeout=60) as client:
            user2, sid2 = _track(client, night, key["key"], receiver.url)
        server.kill()
        assert _state(tmp_path, sid2) == "CLOSED", "the analysis ended before the kill: nothing was tested"
        server = LiveServer(tmp_path, "--workers", "1", port=server.port).start()
        assert receiver.wait_for(lambda r: len(r.events("SESSION_COMPLETE")) == 2, 300)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            again = _report(client, key["key"], user2, sid2)
            assert client.post("/ai/v1/users", headers={"x-api-key": key["key"]}).status_code == 201
        assert again["session"]["state"] == "COMPLETE"
        assert again["session"]["sleep_stages"] == stages and again["session"]["snoring_stages"] == snoring
        assert again["stat"] == report["stat"] | {
            k: again["stat"][k] for k in ("sleep_time", "wake_time", "sleep_cycle_time")
        }
        final2 = receiver.events("SESSION_COMPLETE")[1].json["data"]
        assert final2.pop("user_id") == user2 and final2 == again
    finally:
        server.stop()
        receiver.stop()
    log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert key["key"] not in log and key["webhook_secret"] not in log  # no secret in the logs

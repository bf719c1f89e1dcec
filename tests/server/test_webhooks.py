"""Webhooks: V3 payloads, documented headers, signatures, retries with backoff, giving up, never blocking."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select

from sleeptrack.store import Webhook, hash_api_key, webhook_secret
from sleeptrack.webhooks import SignatureError, backoff_delay, sign_payload, verify_signature
from tests.server._receiver import Receiver
from tests.server.conftest import Api, mel_chunk


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_realtime_and_final_webhooks(api: Api, receiver: Receiver) -> None:
    user = api.new_user()
    sid = api.new_session(user, callback_url=receiver.url, tz="Asia/Seoul")
    for seq in range(20):
        assert api.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
    api.wait()
    assert receiver.wait_for(lambda r: len(r.events("INFERENCE_COMPLETE")) == 2, 30)
    first, second = (e.json for e in receiver.events("INFERENCE_COMPLETE"))
    assert first["version"] == "V3" and set(first) == {"event", "version", "data"}
    assert {k: first["data"][k] for k in ("user_id", "session_id", "seq_num", "inference_seq_num")} == {
        "user_id": user,
        "session_id": sid,
        "seq_num": 9,
        "inference_seq_num": 0,
    }
    assert second["data"]["seq_num"] == 19 and second["data"]["inference_seq_num"] == 1
    assert len(first["data"]["sleep_stages"]) == 10 and len(second["data"]["sleep_stages"]) == 20
    assert second["data"]["breath_stages"] is None and len(second["data"]["snoring_stages"]) == 20
    live = api.report(sid, user)
    assert live["session"]["sleep_stages"] == second["data"]["sleep_stages"]
    # headers: the documented ones, and a signature made with the key's webhook secret
    hook = receiver.events("INFERENCE_COMPLETE")[0]
    assert hook.headers["x-api-key"] == api.keys["adv"] and hook.headers["x-user-id"] == user
    assert hook.headers["content-type"] == "application/json"
    secret = webhook_secret(api.ctx.stores.secret, hash_api_key(api.keys["adv"]))
    verify_signature(secret, hook.body, hook.headers["x-sleeptrack-timestamp"], hook.headers["x-sleeptrack-signature"])
    with pytest.raises(SignatureError):
        verify_signature(
            "whsec_wrong", hook.body, hook.headers["x-sleeptrack-timestamp"], hook.headers["x-sleeptrack-signature"]
        )
    # the final webhook is the Data API document plus user_id
    assert api.close(sid, user).status_code == 200
    api.wait()
    assert receiver.wait_for(lambda r: len(r.events("SESSION_COMPLETE")) == 1, 30)
    final = receiver.events("SESSION_COMPLETE")[0].json
    document = api.report(sid, user, tz="Asia/Seoul")
    assert final["version"] == "V3" and final["data"].pop("user_id") == user
    assert final["data"] == document
    assert list(final["data"]) == list(document)
    assert receiver.events("SESSION_COMPLETE")[0].at > receiver.events("INFERENCE_COMPLETE")[-1].at


def test_callback_set_on_upload_and_longer_windows(api: Api, receiver: Receiver) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    for seq in range(50):
        if seq == 45:
            api.wait()  # windows 0-3 are analysed before the callback exists: they send nothing
        form = {"callback_url": receiver.url} if seq == 45 else {}
        assert api.upload(sid, user, seq, mel_chunk(seq % 7), **form).status_code == 200
    api.wait()
    assert receiver.wait_for(lambda r: len(r.events()) >= 1, 30)
    (hook,) = receiver.events()
    data = hook.json["data"]
    assert (data["seq_num"], data["inference_seq_num"]) == (49, 4)
    assert len(data["sleep_stages"]) == 40  # the last 20 minutes
    assert data["sleep_stages"] == api.report(sid, user)["session"]["sleep_stages"][10:50]


def test_retries_after_the_receiver_was_down(api: Api) -> None:
    port = _free_port()
    user = api.new_user()
    sid = api.new_session(user, callback_url=f"http://127.0.0.1:{port}/hook")
    for seq in range(10):
        assert api.upload(sid, user, seq).status_code == 200
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        with api.ctx.stores.db.read() as db:
            row = db.scalars(select(Webhook).where(Webhook.session_id == sid)).first()
        if row is not None and row.attempts >= 2:
            break
        time.sleep(0.05)
    assert row is not None and row.attempts >= 2 and row.status == "pending" and row.last_error
    receiver = Receiver().start(port)  # the receiver comes back
    try:
        assert receiver.wait_for(lambda r: len(r.events()) == 1, 30)
        api.wait()
        with api.ctx.stores.db.read() as db:
            row = db.scalars(select(Webhook).where(Webhook.session_id == sid)).one()
        assert row.status == "delivered" and row.attempts >= 3 and row.delivered_at is not None
        assert receiver.events()[0].json["data"]["seq_num"] == 9
    finally:
        receiver.stop()


def test_failing_receiver_is_given_up_and_never_blocks_analysis(api: Api, receiver: Receiver) -> None:
    receiver.status = 500
    user = api.new_user()
    sid = api.new_session(user, callback_url=receiver.url)
    for seq in range(10):
        assert api.upload(sid, user, seq).status_code == 200
    assert api.close(sid, user).status_code == 200
    deadline = time.monotonic() + 20
    while api.report(sid, user)["session"]["state"] != "COMPLETE":  # analysis does not wait for delivery
        assert time.monotonic() < deadline
        time.sleep(0.05)
    api.wait()
    with api.ctx.stores.db.read() as db:
        rows = db.scalars(select(Webhook).where(Webhook.session_id == sid).order_by(Webhook.id)).all()
    assert [(r.event, r.status, r.attempts, r.last_status_code) for r in rows] == [
        ("INFERENCE_COMPLETE", "failed", 4, 500),
        ("SESSION_COMPLETE", "failed", 4, 500),
    ]
    assert receiver.attempts == 8 and receiver.received == []


def test_signature_and_backoff_helpers() -> None:
    body = b'{"event":"SESSION_COMPLETE"}'
    signature = sign_payload("whsec_x", 1_700_000_000, body)
    verify_signature("whsec_x", body, "1700000000", signature, now=1_700_000_100)
    for args in [
        ("whsec_x", body + b" ", "1700000000", signature),
        ("whsec_y", body, "1700000000", signature),
        ("whsec_x", body, "1700000001", signature),
        ("whsec_x", body, None, signature),
        ("whsec_x", body, "soon", signature),
    ]:
        with pytest.raises(SignatureError):
            verify_signature(*args, now=1_700_000_000)
    with pytest.raises(SignatureError, match="more than"):
        verify_signature("whsec_x", body, "1700000000", signature, now=1_700_001_000)
    verify_signature("whsec_x", body, "1700000000", signature, tolerance=None)
    assert [backoff_delay(n, 2.0, 60.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]

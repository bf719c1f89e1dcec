"""Users API, authentication, plans (expiry, rate limit, quota), isolation between environments and users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from sleeptrack.server import Detail, create_app
from sleeptrack.store import create_api_key, find_keys, open_stores, revoke_keys, utcnow
from tests.server.conftest import MEL, Api, make_keys, make_settings

_UNKNOWN_USER = "G-20250115025029-vLErWBfQNtnfvgDccFOQ"


def test_users_api(api: Api) -> None:
    r = api.client.post("/ai/v1/users", headers=api.h())
    assert r.status_code == 201 and r.json()["detail"] == "success"
    user = r.json()["result"]["user_id"]
    assert user.startswith("G-") and len(user) == 37
    r = api.client.get(f"/ai/v1/users/{user}", headers=api.h())
    assert r.json() == {
        "detail": "success",
        "result": {"user_id": user, "to_be_deleted": False, "last_session_info": None},
    }
    sid = api.new_session(user, service="MyApp")
    r = api.client.get(f"/ai/v1/users/{user}", headers=api.h(tz="Asia/Seoul"))
    info = r.json()["result"]["last_session_info"]
    assert info["session_id"] == sid and info["state"] == "OPEN" and info["service"] == "MyApp"
    assert info["inference_type"] == "MELSPECTROGRAM" and info["start_time"].endswith("+09:00")
    assert info["end_time"] is None and info["complete_time"] is None
    r = api.client.get(f"/ai/v1/users/{_UNKNOWN_USER}", headers=api.h())
    assert (r.status_code, r.json()["detail"]) == (404, Detail.USER_NOT_FOUND)
    r = api.client.get("/ai/v1/users/bad-id", headers=api.h())
    assert (r.status_code, r.json()["detail"]) == (401, Detail.USER_ID_INVALID)
    # delete: everything goes, blobs included
    kept = api.kept_bytes()  # by earlier tests (the server is shared)
    assert api.upload(sid, user, 0).status_code == 200
    (key,) = api.chunk_keys(user)
    assert api.ctx.stores.blobs.exists(key) and api.kept_bytes() - kept >= len(MEL)
    r = api.client.delete(f"/ai/v1/users/{user}", headers=api.h())
    assert r.status_code == 204 and r.content == b""
    assert not api.ctx.stores.blobs.exists(key) and api.kept_bytes() == kept  # its bytes freed on disk
    assert not list((api.data_dir / "blobs").rglob(f"*/{user}/*"))
    assert api.client.get(f"/ai/v1/users/{user}", headers=api.h()).status_code == 404
    r = api.client.delete(f"/ai/v1/users/{user}", headers=api.h())
    assert (r.status_code, r.json()["detail"]) == (404, Detail.USER_NOT_FOUND)
    r = api.client.delete("/ai/v1/users/bad-id", headers=api.h())
    assert (r.status_code, r.json()["detail"]) == (401, Detail.USER_ID_INVALID)
    api.wait()


def test_authentication(api: Api) -> None:
    for path in ("/ai/v1/users", "/ai/v1/sessions"):
        r = api.client.post(path)
        assert r.status_code == 401 and r.json() == {"detail": "Unauthorized", "result": None}
        r = api.client.post(path, headers={"x-api-key": api.keys["adv"][:-2] + "xx"})
        assert (r.status_code, r.json()["detail"]) == (401, "Unauthorized")
    r = api.client.get("/data/v1/sessions", headers={"x-user-id": _UNKNOWN_USER})
    assert (r.status_code, r.json()["detail"]) == (401, Detail.API_KEY_NOT_PROVIDED)
    r = api.client.get("/data/v1/sessions", headers={"x-api-key": "st_test_nope", "x-user-id": _UNKNOWN_USER})
    assert (r.status_code, r.json()["detail"]) == (401, "Unauthorized")
    r = api.client.post("/ai/v1/users", headers=api.h("ended"))
    assert r.status_code == 403 and r.json() == {"detail": "Plan is expired", "result": None}


def test_expired_and_revoked_keys(api: Api) -> None:
    stores = api.ctx.stores
    with stores.db.write() as db:
        old = create_api_key(
            db, environment="test", plan=stores.plans["trial"], now=utcnow() - timedelta(days=31), name="old"
        )
        fresh = create_api_key(db, environment="test", plan=stores.plans["trial"], name="fresh")
    r = api.client.post("/ai/v1/users", headers={"x-api-key": old.key})
    assert (r.status_code, r.json()["detail"]) == (403, Detail.PLAN_EXPIRED)
    assert api.client.post("/ai/v1/users", headers={"x-api-key": fresh.key}).status_code == 201
    with stores.db.write() as db:
        revoke_keys(db, find_keys(db, fresh.prefix))
    api.ctx.auth.forget()  # as after the cache's few seconds
    r = api.client.post("/ai/v1/users", headers={"x-api-key": fresh.key})
    assert (r.status_code, r.json()["detail"]) == (401, "Unauthorized")


def test_rate_limit(api: Api) -> None:
    codes = [api.client.post("/ai/v1/users", headers=api.h("ratelimited")).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 403, 403]
    r = api.client.post("/ai/v1/users", headers=api.h("ratelimited"))
    assert r.json() == {"detail": "Rate limit exceeded", "result": None}
    # other keys are not affected
    assert api.client.post("/ai/v1/users", headers=api.h("unlimited")).status_code == 201


def test_quota_survives_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = make_settings(tmp_path_factory.mktemp("quota"))
    keys = make_keys(settings)
    headers = {"x-api-key": keys["quota3"]}
    with TestClient(create_app(settings)) as client:
        assert [client.post("/ai/v1/users", headers=headers).status_code for _ in range(2)] == [201, 201]
    with TestClient(create_app(settings)) as client:
        assert client.post("/ai/v1/users", headers=headers).status_code == 201
        r = client.post("/ai/v1/users", headers=headers)
        assert r.status_code == 403 and r.json() == {"detail": "Quota exceeded", "result": None}
    stores = open_stores(settings)
    with stores.db.read() as db:
        (key,) = find_keys(db, keys["quota3"])
        assert key.calls_period == 3 and key.calls_total == 3 and key.last_used_at is not None
    stores.close()


def test_test_keys_never_see_live_data(api: Api) -> None:
    live_user = api.new_user("live")
    sid = api.new_session(live_user, "live")
    assert api.upload(sid, live_user, 0, key="live").status_code == 200
    # the same account's test key: the user and the session do not exist
    r = api.client.get(f"/ai/v1/users/{live_user}", headers=api.h("adv"))
    assert (r.status_code, r.json()["detail"]) == (404, Detail.USER_NOT_FOUND)
    r = api.client.get(f"/data/v3/sessions/{sid}", headers=api.h("adv", live_user))
    assert (r.status_code, r.json()["detail"]) == (404, Detail.SESSION_NOT_FOUND_DATA.format(session_id=sid))
    r = api.client.get("/data/v1/sessions", headers=api.h("adv", live_user))
    assert r.status_code == 404
    r = api.client.get(
        f"/data/v1/users/{live_user}/average-stats?start_date=2025-01-01&end_date=2025-01-02", headers=api.h("adv")
    )
    assert (r.status_code, r.json()["detail"]) == (404, Detail.USER_NOT_FOUND_AVERAGE.format(user_id=live_user))
    assert api.upload(sid, live_user, 1, key="adv").json()["detail"] == Detail.USER_NOT_FOUND
    assert api.close(sid, live_user, key="adv").status_code == 404
    assert api.client.delete(f"/ai/v1/users/{live_user}", headers=api.h("adv")).status_code == 404
    # another account's test key neither
    assert api.client.get(f"/ai/v1/users/{live_user}", headers=api.h("other")).status_code == 404
    # a second key of the same environment sees it
    assert api.client.get(f"/ai/v1/users/{live_user}", headers=api.h("live")).status_code == 200
    test_user = api.new_user("adv")
    assert api.client.get(f"/ai/v1/users/{test_user}", headers=api.h("adv2")).status_code == 200
    assert api.client.get(f"/ai/v1/users/{test_user}", headers=api.h("live")).status_code == 404
    api.wait()


def test_users_never_see_each_others_sessions(api: Api) -> None:
    alice, bob = api.new_user(), api.new_user()
    sid = api.new_session(alice)
    assert api.upload(sid, alice, 0).status_code == 200
    r = api.client.get(f"/data/v3/sessions/{sid}", headers=api.h(user=bob))
    assert (r.status_code, r.json()["detail"]) == (404, Detail.SESSION_NOT_FOUND_DATA.format(session_id=sid))
    assert api.upload(sid, bob, 1).json()["detail"] == Detail.SESSION_NOT_FOUND
    assert api.close(sid, bob).json()["detail"] == Detail.SESSION_NOT_FOUND
    assert api.client.delete(f"/ai/v1/sessions/{sid}", headers=api.h(user=bob)).status_code == 404
    assert api.client.delete("/ai/v1/sessions", headers=api.h(user=bob)).status_code == 204
    r = api.client.get("/data/v1/sessions", headers=api.h(user=bob))
    assert r.json()["result"]["sleep_session_list"] == []
    r = api.client.get("/data/v1/sessions", headers=api.h(user=alice))
    assert [s["session_id"] for s in r.json()["result"]["sleep_session_list"]] == [sid]
    api.wait()

"""API clients against an in-process transport: request shapes, answers, error mapping, retries, timeouts."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime

import httpx
import pytest

from sleeptrack.sdk import (
    USER_AGENT,
    ApiClient,
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    AsleepErrorCode,
    AsyncApiClient,
    ConfigError,
    InferenceType,
    RetryPolicy,
)

from ._fake_api import API_KEY, FakeApi

FAST = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01)
URL = "http://sleeptrack.test"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def client(api: FakeApi, user: str | None = None, retry: RetryPolicy = FAST) -> ApiClient:
    return ApiClient(URL, API_KEY, user, retry=retry, transport=api.transport(), timezone="Asia/Seoul")


# --------------------------------------------------------------------------------------------- policy
def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(initial_delay=1.0, factor=2.0, max_delay=10.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        waits = [policy.backoff(attempt, rng) for _ in range(300)]
        assert min(waits) >= 0.0 and max(waits) <= ceiling
        assert max(waits) > 0.8 * ceiling  # spread over the whole interval (jitter), not a constant
        assert min(waits) < 0.2 * ceiling


def test_retry_after_is_a_floor_and_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=1.0, max_retry_after=60.0)
    assert policy.delay(1, retry_after=5.0) >= 5.0
    assert policy.delay(1, retry_after=3600.0) == 60.0
    assert policy.delay(1, retry_after=None) <= 0.1


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(factor=0.5)


# -------------------------------------------------------------------------------------------- requests
def test_headers_and_user_join(api: FakeApi) -> None:
    with client(api) as c:
        uid = c.create_user()
        assert c.get_user(uid).user_id == uid
    req = api.requests[0]
    assert req.method == "POST" and req.url.path == "/ai/v1/users"
    assert req.headers["x-api-key"] == API_KEY
    assert req.headers["user-agent"] == USER_AGENT
    assert req.headers["timezone"] == "Asia/Seoul"
    assert "x-user-id" not in req.headers


def test_session_lifecycle_requests(api: FakeApi) -> None:
    uid = api.user()
    with client(api, uid) as c:
        created = c.create_session("http://hook.test/cb", "bedside", InferenceType.AUDIO)
        assert created.state == "OPEN" and created.session_start_time.tzinfo is not None
        first = c.upload(created.session_id, 0, b"abc", callback_url="http://hook.test/cb")
        again = c.upload(created.session_id, 0, b"abc")
        assert (first.seq_num, first.duplicate, again.duplicate) == (0, False, True)
        opened = c.open_session()
        assert opened is not None and opened.session_id == created.session_id and opened.last_seq_num == 0
        end = datetime(2030, 1, 1, tzinfo=UTC)
        c.close_session(created.session_id, end_time=end)
        assert c.open_session() is None
    create = json.loads(api.requests[0].content)
    assert create == {"callback_url": "http://hook.test/cb", "service": "bedside", "inference_type": "AUDIO"}
    upload = api.requests[1]
    assert upload.headers["x-user-id"] == uid
    assert b'name="seq_num"' in upload.content and b'name="callback_url"' in upload.content
    close = json.loads(api.requests[4].content)
    assert close == {"unexpected": 0, "session_end_time": "2030-01-01T00:00:00+00:00"}
    assert api.only_session().chunks == {0: b"abc"}


def test_reports_and_lists(api: FakeApi) -> None:
    uid = api.user()
    with client(api, uid) as c:
        sid = c.create_session().session_id
        for seq in range(3):
            c.upload(sid, seq, b"x")
        c.close_session(sid)
        report = c.get_report(sid)
        assert report.is_complete and report.hypnogram.n_epochs == 3
        assert report.stat is not None and report.stat.time_in_bed == 90
        listed = c.list_sessions("2025-01-01", "2099-01-01", order_by="asc", offset=0, limit=5)
        assert [s.session_id for s in listed] == [sid] and listed[0].last_received_seq_num == 2
        avg = c.average_report(uid, "2025-01-01", "2025-01-31")
        assert avg.start_date == "2025-01-01" and avg.slept_sessions == []
        with pytest.raises(ValueError):
            c.list_sessions(limit=101)
        with pytest.raises(ValueError):
            c.list_sessions(order_by="sideways")
    params = dict(api.requests[-2].url.params)
    assert params == {
        "order_by": "ASC",
        "offset": "0",
        "limit": "5",
        "date_gte": "2025-01-01",
        "date_lte": "2099-01-01",
    }


# ------------------------------------------------------------------------------------------------ errors
def test_status_errors_carry_code_detail_and_result(api: FakeApi) -> None:
    uid = api.user()
    with client(api, uid) as c:
        first = c.create_session().session_id
        with pytest.raises(ApiStatusError) as info:
            c.create_session()
        err = info.value
        assert err.code is AsleepErrorCode.ERR_CREATE_CONFLICT and err.status == 409
        assert err.detail == "previous sleep session is not closed yet" and err.result == {"session_id": first}
        with pytest.raises(ApiStatusError) as info:
            c.get_report("20250101000000_abcde")
        assert info.value.code is AsleepErrorCode.ERR_REPORT_NOT_FOUND
    with ApiClient(URL, "wrong", uid, transport=api.transport()) as bad, pytest.raises(ApiStatusError) as info:
        bad.get_report(first)
    assert info.value.code is AsleepErrorCode.ERR_REPORT_UNAUTHORIZED


def test_non_json_error_bodies(api: FakeApi) -> None:
    api.inject("/ai/v1/users", lambda r: httpx.Response(502, text="<html>Bad gateway</html>"), times=10)
    with client(api, retry=RetryPolicy(max_attempts=1)) as c, pytest.raises(ApiStatusError) as info:
        c.create_user()
    assert info.value.code is AsleepErrorCode.ERR_INIT_SERVER_ERROR and "Bad gateway" in info.value.detail


def test_transient_failures_are_retried(api: FakeApi) -> None:
    api.inject("/ai/v1/users", FakeApi.status(500, "internal server error"))
    api.inject("/ai/v1/users", FakeApi.raises(httpx.ConnectError))
    api.inject("/ai/v1/users", FakeApi.status(503, "unavailable"))
    with client(api) as c:
        assert c.create_user().startswith("G-")
    assert len(api.requests) == 4


def test_gives_up_after_max_attempts(api: FakeApi) -> None:
    api.inject("/ai/v1/users", FakeApi.raises(httpx.ConnectError), times=10)
    with client(api) as c, pytest.raises(ApiConnectionError) as info:
        c.create_user()
    assert info.value.code is AsleepErrorCode.ERR_INIT_FAILED and info.value.retryable
    assert len(api.requests) == FAST.max_attempts


def test_non_transient_errors_are_not_retried(api: FakeApi) -> None:
    with client(api) as c, pytest.raises(ApiStatusError):
        c.get_user("G-nobody")
    assert len(api.requests) == 1


def test_timeouts_map_to_api_timeout_error(api: FakeApi) -> None:
    api.inject("/upload", FakeApi.raises(httpx.ReadTimeout))
    uid = api.user()
    with client(api, uid) as c:
        sid = c.create_session().session_id
        with pytest.raises(ApiTimeoutError) as info:
            c.upload(sid, 0, b"x")  # uploads: one attempt (the tracking manager retries them)
    assert info.value.code is AsleepErrorCode.ERR_UPLOAD_FAILED
    assert "timed out" in info.value.detail


def test_retry_after_is_honoured(api: FakeApi) -> None:
    api.inject("/ai/v1/users", FakeApi.status(403, "Rate limit exceeded", {"Retry-After": "0.3"}))
    with client(api) as c:
        started = time.monotonic()
        c.create_user()
        assert time.monotonic() - started >= 0.3


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError) as info:
        ApiClient(URL, "")
    assert info.value.code is AsleepErrorCode.ERR_UNINITIALIZED
    with pytest.raises(ConfigError) as info:
        ApiClient("ftp://x", "k")
    assert info.value.code is AsleepErrorCode.ERR_INVALID_URL
    with ApiClient(URL, "k", transport=FakeApi().transport()) as c, pytest.raises(ConfigError):
        c.open_session()  # needs a user id


# ------------------------------------------------------------------------------------------------- async
def test_async_client(api: FakeApi) -> None:
    async def main() -> None:
        async with AsyncApiClient(URL, API_KEY, retry=FAST, transport=api.async_transport()) as c:
            api.inject("/ai/v1/users", FakeApi.raises(httpx.ConnectError))
            uid = await c.create_user()
            c.user_id = uid
            sid = (await c.create_session()).session_id
            results = await asyncio.gather(*(c.upload(sid, seq, b"x") for seq in range(5)))
            assert sorted(r.seq_num for r in results) == list(range(5))
            assert (await c.open_session()) is not None
            await c.close_session(sid)
            assert (await c.get_report(sid)).is_complete
            assert [s.session_id for s in await c.list_sessions()] == [sid]
            with pytest.raises(ApiStatusError) as info:
                await c.upload(sid, 5, b"x")
            assert info.value.code is AsleepErrorCode.ERR_UPLOAD_FORBIDDEN

    asyncio.run(main())

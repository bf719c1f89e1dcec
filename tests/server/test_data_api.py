"""Data API: real-time and final reports, plans' features, time zones, the sessions list, average stats."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sleeptrack.analysis import (
    SessionSummary,
    build_report,
    compute_average_report,
    parse_timezone,
)
from sleeptrack.server import Detail
from sleeptrack.store import FinalResult, SleepSession, User, new_session_id, utcnow
from tests.server.conftest import Api, mel_chunk

_BAD_USER = "G-20250115025029-vLErWBfQNtnfvgDccFOQ"


def test_report_while_open_then_complete(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user, tz="Asia/Seoul")
    for seq in range(12):
        assert api.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
    api.wait()
    live = api.report(sid, user)
    assert live["peculiarities"] == ["IN_PROGRESS", "NO_BREATHING_STABILITY"] and live["stat"] is None
    assert live["session"]["state"] == "OPEN" and live["session"]["end_time"] is None
    stages = live["session"]["sleep_stages"]
    assert len(stages) == 10 and set(stages) <= {0, 1, 2, 3}  # the real-time result after the 10th epoch
    assert len(live["session"]["snoring_stages"]) == 10
    assert live["model_version"]
    assert api.close(sid, user, session_end_time=_iso_after(api, sid, 12 * 30)).status_code == 200
    closed = api.report(sid, user)
    assert closed["session"]["state"] in ("CLOSED", "COMPLETE")
    api.wait()
    done = api.report(sid, user, tz="America/New_York")
    assert done["session"]["state"] == "COMPLETE" and done["timezone"] == "America/New_York"
    assert done["session"]["created_timezone"] == "Asia/Seoul"
    assert done["session"]["start_time"].endswith("-05:00") and done["stat"]["time_in_bed"] == 360
    assert len(done["session"]["sleep_stages"]) == 12 and "IN_PROGRESS" not in done["peculiarities"]
    utc = api.report(sid, user)
    assert utc["session"]["start_time"].endswith("+00:00")
    start_ny = datetime.fromisoformat(done["session"]["start_time"])
    assert start_ny == datetime.fromisoformat(utc["session"]["start_time"])
    # the users API shows the completion
    info = api.client.get(f"/ai/v1/users/{user}", headers=api.h()).json()["result"]["last_session_info"]
    assert info["state"] == "COMPLETE" and info["complete_time"] is not None


def _iso_after(api: Api, sid: str, seconds: int) -> str:
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None
        return (s.start_time + timedelta(seconds=seconds)).isoformat()


def test_basic_plan_is_two_stage_without_real_time(api: Api) -> None:
    user = api.new_user("basic")
    sid = api.new_session(user, "basic")
    for seq in range(11):
        assert api.upload(sid, user, seq, mel_chunk(seq), key="basic").status_code == 200
    api.wait()
    live = api.report(sid, user, "basic")
    assert live["peculiarities"] == ["IN_PROGRESS", "NO_REALTIME_POLLING", "NO_BREATHING_STABILITY"]
    assert live["session"]["sleep_stages"] is None and live["session"]["snoring_stages"] is None
    assert api.close(sid, user, "basic", session_end_time=_iso_after(api, sid, 11 * 30)).status_code == 200
    api.wait()
    done = api.report(sid, user, "basic")
    assert set(done["session"]["sleep_stages"]) <= {-1, 0, 1} and done["session"]["snoring_stages"] is None
    assert "NO_REALTIME_POLLING" not in done["peculiarities"]
    stat = done["stat"]
    assert stat is not None
    for key in ("time_in_light", "time_in_deep", "time_in_rem", "light_latency", "time_in_snoring"):
        assert stat[key] is None, key


def test_report_errors(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    cases = [
        (f"/data/v3/sessions/{sid}", api.h(user=user, tz="Nowhere/City"), 400, Detail.INVALID_TIMEZONE),
        (f"/data/v3/sessions/{sid}", api.h(), 400, Detail.X_USER_ID_FORMAT),
        (f"/data/v3/sessions/{sid}", api.h(user="someone"), 400, Detail.X_USER_ID_FORMAT),
        (
            "/data/v3/sessions/20230608020315_hz82",
            api.h(user=user),
            400,
            "The format of sleep session id 20230608020315_hz82 is not valid",
        ),
        (
            "/data/v3/sessions/20230608020315_hz82a",
            api.h(user=user),
            404,
            "Unable to find the sleep session of id 20230608020315_hz82a",
        ),
        (f"/data/v3/sessions/{sid}", api.h(user=_BAD_USER), 404, f"Unable to find the sleep session of id {sid}"),
        ("/data/v1/sessions", api.h(), 400, Detail.X_USER_ID_FORMAT),
        ("/data/v1/sessions", api.h(user=user, tz="Bad/Zone"), 400, Detail.INVALID_TIMEZONE),
        ("/data/v1/sessions", api.h(user=_BAD_USER), 404, Detail.USER_NOT_FOUND),
        ("/data/v1/sessions?limit=101", api.h(user=user), 422, Detail.INVALID_PARAMETER),
        ("/data/v1/sessions?offset=-1", api.h(user=user), 422, Detail.INVALID_PARAMETER),
        ("/data/v1/sessions?order_by=UP", api.h(user=user), 422, Detail.INVALID_PARAMETER),
        ("/data/v1/sessions?date_gte=2025-13-01", api.h(user=user), 422, Detail.INVALID_PARAMETER),
    ]
    for path, headers, status, detail in cases:
        r = api.client.get(path, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (status, detail), (path, r.text)


def _complete_session(
    api: Api, user: str, start: datetime, stages: list[int], tz: str = "UTC", snoring: list[int] | None = None
) -> str:
    """A COMPLETE session written straight into the database (the Data API reads it like any other)."""
    with api.ctx.stores.db.write() as db:
        u = db.get(User, user)
        assert u is not None
        sid = new_session_id(start)
        db.add(
            SleepSession(
                id=sid,
                environment_id=u.environment_id,
                user_id=user,
                state="COMPLETE",
                inference_type="MELSPECTROGRAM",
                service="NOSERVICE",
                created_timezone=tz,
                start_time=start,
                end_time=start + timedelta(seconds=30 * len(stages)),
                complete_time=start + timedelta(seconds=30 * len(stages) + 5),
                last_seq_num=len(stages) - 1,
                received_count=len(stages),
                plan="advanced",
                scheme="4-stage",
                snoring=True,
                realtime=True,
            )
        )
        db.flush()
        db.add(
            FinalResult(
                session_id=sid,
                sleep_stages=stages,
                snoring_stages=snoring if snoring is not None else [0] * len(stages),
                model_version="test",
                computed_at=utcnow(),
            )
        )
    return sid


def _night(sleep_epochs: int, seed: int) -> list[int]:
    pattern = [1, 1, 2, 2, 2, 1, 3, 3, 1, 0]
    body = [pattern[(i + seed) % len(pattern)] for i in range(sleep_epochs)]
    return [0] * (6 + seed % 5) + body + [0] * (4 + seed % 3)


def test_sessions_list_filters_by_local_date(api: Api) -> None:
    user = api.new_user()
    seoul = parse_timezone("Asia/Seoul")
    # 2025-01-10 23:30 Seoul is 14:30 UTC on the 10th; 2025-01-11 00:30 Seoul is 15:30 UTC on the 10th
    starts = [
        datetime(2025, 1, 10, 23, 30, tzinfo=seoul),
        datetime(2025, 1, 11, 0, 30, tzinfo=seoul),
        datetime(2025, 1, 12, 22, 0, tzinfo=seoul),
    ]
    sids = [_complete_session(api, user, s.astimezone(UTC), _night(60, i), "Asia/Seoul") for i, s in enumerate(starts)]
    h = api.h(user=user, tz="Asia/Seoul")
    r = api.client.get("/data/v1/sessions?date_gte=2025-01-11&date_lte=2025-01-11", headers=h)
    body = r.json()
    assert body["detail"] == "OK" and body["result"]["timezone"] == "Asia/Seoul"
    assert [s["session_id"] for s in body["result"]["sleep_session_list"]] == [sids[1]]
    item = body["result"]["sleep_session_list"][0]
    assert item["session_start_time"] == "2025-01-11T00:30:00+09:00" and item["state"] == "COMPLETE"
    assert item["time_in_bed"] == 30 * len(_night(60, 1)) and item["last_received_seq_num"] == len(_night(60, 1)) - 1
    # the same dates in UTC: both early sessions are on the 10th
    r = api.client.get("/data/v1/sessions?date_gte=2025-01-10&date_lte=2025-01-10", headers=api.h(user=user))
    assert [s["session_id"] for s in r.json()["result"]["sleep_session_list"]] == [sids[1], sids[0]]
    r = api.client.get("/data/v1/sessions?order_by=asc&offset=1&limit=1", headers=h)
    assert [s["session_id"] for s in r.json()["result"]["sleep_session_list"]] == [sids[1]]
    r = api.client.get("/data/v1/sessions", headers=h)
    assert [s["session_id"] for s in r.json()["result"]["sleep_session_list"]] == sids[::-1]
    r = api.client.get("/data/v1/sessions?limit=0", headers=h)
    assert r.json()["result"]["sleep_session_list"] == []


def test_average_stats(api: Api) -> None:
    user = api.new_user()
    seoul = parse_timezone("Asia/Seoul")
    nights = {}
    for day in range(1, 6):
        # odd days at 23:30, even days at 00:00 (Seoul)
        start = datetime(2025, 1, day, 23 if day % 2 else 0, 30 if day % 2 else 0, tzinfo=seoul).astimezone(UTC)
        stages = _night(300 + 20 * day, day)
        nights[_complete_session(api, user, start, stages, "Asia/Seoul")] = (start, stages)
    never = _complete_session(api, user, datetime(2025, 1, 3, 12, 0, tzinfo=UTC), [0] * 40, "Asia/Seoul")
    r = api.client.get(
        f"/data/v1/users/{user}/average-stats?start_date=2025-01-01&end_date=2025-01-05",
        headers={"x-api-key": api.keys["adv"], "timezone": "Asia/Seoul"},
    )
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    # the same computation on the same sessions
    summaries = []
    for sid, (start, stages) in nights.items():
        end = start + timedelta(seconds=30 * len(stages))
        report = build_report(sid, stages, start, end, snoring_stages=[0] * len(stages), created_timezone="Asia/Seoul")
        summaries.append(
            SessionSummary(sid, "Asia/Seoul", start, end, end + timedelta(seconds=5), report.peculiarities, report.stat)
        )
    expected = compute_average_report(summaries, date(2025, 1, 1), date(2025, 1, 5)).to_dict(seoul, "Asia/Seoul")
    assert result["average_stats"] == expected["average_stats"]
    assert [s["id"] for s in result["slept_sessions"]] == [s["id"] for s in expected["slept_sessions"]]
    assert [s["id"] for s in result["never_slept_sessions"]] == [never]
    assert result["period"] == {"timezone": "Asia/Seoul", "start_date": "2025-01-01", "end_date": "2025-01-05"}
    # on the 24-hour circle: three nights at 23:30 and two at 00:00 average to 23:42
    assert result["average_stats"]["start_time"].startswith("23:4")
    # boundaries: the first night (Jan 1, 23:30 Seoul) is out when the period starts on the 2nd
    query = "average-stats?start_date=2025-01-02&end_date=2025-01-02"
    r = api.client.get(f"/data/v1/users/{user}/{query}", headers=api.h(tz="Asia/Seoul"))
    (only,) = r.json()["result"]["slept_sessions"]
    assert only["start_time"] == "2025-01-02T00:00:00+09:00"
    # in UTC that night started on January 1st, and no night started on the 2nd
    r = api.client.get(f"/data/v1/users/{user}/{query}", headers=api.h())
    assert r.json()["result"]["slept_sessions"] == [] and r.json()["result"]["average_stats"] is None


def test_average_stats_period_and_errors(api: Api) -> None:
    user = api.new_user()

    def get(query: str, uid: str = user) -> tuple[int, object]:
        r = api.client.get(f"/data/v1/users/{uid}/average-stats{query}", headers=api.h())
        return r.status_code, r.json()["detail"] if r.status_code != 200 else r.json()["result"]["average_stats"]

    assert get("?start_date=2025-01-01&end_date=2025-04-10") == (200, None)  # 100 days, both ends included
    assert get("?start_date=2025-01-01&end_date=2025-04-11") == (400, Detail.PERIOD)  # 101 days
    assert get("?start_date=2025-01-02&end_date=2025-01-01") == (400, Detail.PERIOD)
    assert get("?start_date=2025-1-1&end_date=2025-01-02") == (400, Detail.PERIOD)
    assert get("?end_date=2025-01-02") == (400, Detail.PERIOD)
    assert get("?start_date=2025-01-01&end_date=2025-01-01") == (200, None)
    assert get("?start_date=2025-01-01&end_date=2025-01-02", _BAD_USER) == (
        404,
        f"Unable to find the user of id {_BAD_USER}",
    )
    r = api.client.get(
        f"/data/v1/users/{user}/average-stats?start_date=2025-01-01&end_date=2025-01-02", headers=api.h(tz="X")
    )
    assert (r.status_code, r.json()["detail"]) == (400, Detail.INVALID_TIMEZONE)

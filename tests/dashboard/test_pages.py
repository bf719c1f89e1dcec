"""The dashboard's pages over HTTP (TestClient on a real SQLite store): accounts, keys, data pages, exports.

Security cases (CSRF, signed-out visitors, one account reaching another's data by id) are here too; the
browser tests (``test_browser.py``) repeat the main flow in real Chromium against a real server.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from sleeptrack.analysis import SessionState, build_report, parse_timezone
from sleeptrack.dashboard._routes import DashboardOptions
from sleeptrack.dashboard._security import COOKIE_NAME, Passwords
from sleeptrack.store import (
    DEFAULT_PLANS,
    Account,
    ApiKey,
    RealtimeResult,
    Stores,
    create_api_key,
    hash_api_key,
)

from .conftest import (
    FAST_HASHER,
    PASSWORD,
    csrf_of,
    make_app,
    night,
    page_csrf,
    seed_session,
    sign_in,
    sign_up,
    switch_env,
)

NS = "{http://www.w3.org/2000/svg}"


def _svg(html: str, css_class: str) -> ET.Element:
    match = re.search(rf'<svg class="chart {css_class}".*?</svg>', html, re.S)
    assert match, f"no {css_class} chart in the page"
    return ET.fromstring(match.group(0))


def _runs(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{NS}rect") if "run" in r.get("class", "").split()]


# ------------------------------------------------------------------------------------------ accounts
def test_sign_up_sign_out_sign_in(client: TestClient, stores: Stores) -> None:
    sign_up(client, "Alice@Example.com")
    with stores.db.read() as s:
        account = s.scalars(select(Account).where(Account.email == "alice@example.com")).one()
        assert account.password_hash is not None and account.password_hash.startswith("$argon2id$")
        assert PASSWORD not in account.password_hash
    page = client.get("/dashboard/overview")
    assert page.status_code == 200 and "alice@example.com" in page.text
    # Sign out: the cookie becomes anonymous and pages redirect to the sign-in page again.
    signout = client.post("/dashboard/signout", data={"csrf_token": csrf_of(page.text)})
    assert signout.status_code == 303
    after = client.get("/dashboard/overview")
    assert after.status_code == 303 and after.headers["location"].startswith("/dashboard/signin")
    assert sign_in(client, "alice@example.com", "wrong password!") == 401
    assert sign_in(client, "alice@example.com") == 303
    assert client.get("/dashboard/overview").status_code == 200


def test_sign_up_validation(client: TestClient) -> None:
    token = page_csrf(client, "/dashboard/signup")
    bad = client.post(
        "/dashboard/signup", data={"email": "nobody", "password": "short", "password2": "other", "csrf_token": token}
    )
    assert bad.status_code == 400
    assert "valid e-mail" in bad.text and "at least 10" in bad.text and "differ" in bad.text
    sign_up(client, "bob@example.com")
    client.cookies.clear()
    token = page_csrf(client, "/dashboard/signup")
    again = client.post(
        "/dashboard/signup",
        data={"email": "bob@example.com", "password": PASSWORD, "password2": PASSWORD, "csrf_token": token},
    )
    assert again.status_code == 400 and "exists" in again.text


def test_cookie_flags_and_security_headers(stores: Stores) -> None:
    with TestClient(make_app(stores), base_url="https://testserver", follow_redirects=False) as client:
        response = client.get("/dashboard/signin")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie and "Path=/dashboard/" in cookie
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    with TestClient(make_app(stores), follow_redirects=False) as client:
        assert "Secure" not in client.get("/dashboard/signin").headers["set-cookie"]


def test_login_rate_limit_per_account_and_ip(stores: Stores) -> None:
    options = DashboardOptions(max_login_failures=3, login_window_seconds=600)
    with TestClient(make_app(stores, options), follow_redirects=False) as client:
        sign_up(client, "carol@example.com")
        client.cookies.clear()
        assert [sign_in(client, "carol@example.com", "not the password") for _ in range(3)] == [401, 401, 401]
        token = page_csrf(client)
        blocked = client.post(
            "/dashboard/signin", data={"email": "carol@example.com", "password": PASSWORD, "csrf_token": token}
        )
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
        assert int(blocked.headers["retry-after"]) > 500
        # Another account from the same address is not locked out by carol's failures.
        sign_up(client, "dave@example.com")
        client.cookies.clear()
        assert sign_in(client, "dave@example.com") == 303


def test_account_page_changes_the_password(stores: Stores) -> None:
    """The signed-in browser stays signed in, any other is signed out, the old password stops working, and
    wrong current passwords count towards the sign-in lockout."""
    options = DashboardOptions(max_login_failures=3, login_window_seconds=600)
    app = make_app(stores, options)
    with TestClient(app, follow_redirects=False) as client, TestClient(app, follow_redirects=False) as other:
        sign_up(client, "fay@example.com")
        assert sign_in(other, "fay@example.com") == 303
        page = client.get("/dashboard/overview")
        assert 'href="/dashboard/account"' in page.text  # the e-mail in the header leads there
        token = page_csrf(client, "/dashboard/account")
        new = "a brand new passphrase 42"

        def change(current: str, password: str, password2: str | None = None) -> Response:
            response: Response = client.post(
                "/dashboard/account/password",
                data={"current": current, "password": password, "password2": password2 or password,
                      "csrf_token": token},
            )  # fmt: skip
            return response

        refused = change("not my password", new)
        assert refused.status_code == 400 and "The current password is wrong." in refused.text
        assert change(PASSWORD, new, new + "!").status_code == 400
        short = change(PASSWORD, "short")
        assert short.status_code == 400 and "field-error" in short.text
        forged = client.post("/dashboard/account/password", data={"current": PASSWORD, "password": new,
                                                                 "password2": new, "csrf_token": "forged"})  # fmt: skip
        assert forged.status_code == 403
        with stores.db.read() as s:
            before = s.scalars(select(Account.password_hash).where(Account.email == "fay@example.com")).one()
        done = change(PASSWORD, new)
        assert done.status_code == 303 and done.headers["location"] == "/dashboard/account?changed=1"
        assert "Password changed" in client.get("/dashboard/account?changed=1").text
        assert client.get("/dashboard/overview").status_code == 200, "this browser stays signed in"
        assert other.get("/dashboard/overview").status_code == 303, "the other browser is signed out"
        with stores.db.read() as s:
            after = s.scalars(select(Account.password_hash).where(Account.email == "fay@example.com")).one()
        assert after != before and after is not None and new not in after
        other.cookies.clear()
        assert sign_in(other, "fay@example.com") == 401
        assert sign_in(other, "fay@example.com", new) == 303
        # the sign-in above reset the counters; three wrong current passwords lock the form like the sign-in page
        token = page_csrf(client, "/dashboard/account")
        assert [change("wrong", "another passphrase 43").status_code for _ in range(3)] == [400, 400, 400]
        locked = change(new, "another passphrase 43")
        assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
        assert int(locked.headers["retry-after"]) > 500
        client.cookies.clear()
        assert client.get("/dashboard/account").status_code == 303  # signed-out visitors go to sign-in


def test_password_change_ends_existing_sessions(client: TestClient, stores: Stores) -> None:
    sign_up(client, "erin@example.com")
    assert client.get("/dashboard/overview").status_code == 200
    with stores.db.write() as s:
        account = s.scalars(select(Account).where(Account.email == "erin@example.com")).one()
        account.password_hash = Passwords(FAST_HASHER).hash("a brand new password")
    assert client.get("/dashboard/overview").status_code == 303


def test_forged_cookie_is_refused(client: TestClient) -> None:
    sign_up(client, "frank@example.com")
    value = client.cookies.get(COOKIE_NAME)
    assert value
    client.cookies.set(COOKIE_NAME, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"), path="/dashboard/")
    assert client.get("/dashboard/overview").status_code == 303


# ----------------------------------------------------------------------------------------------- CSRF
def test_every_post_needs_the_csrf_token(client: TestClient, stores: Stores) -> None:
    sign_up(client, "gina@example.com")
    for path, form in (
        ("/dashboard/keys", {"name": "x"}),
        ("/dashboard/environment", {"environment": "live"}),
        ("/dashboard/signout", {}),
    ):
        missing = client.post(path, data=form)
        assert missing.status_code == 403, path
        assert "Reload the page" in missing.text
        wrong = client.post(path, data={**form, "csrf_token": "x" * 43})
        assert wrong.status_code == 403, path
    with stores.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ApiKey)) == 0
    # The token of one visitor is worthless with another visitor's cookie.
    token = page_csrf(client, "/dashboard/keys")
    with TestClient(client.app, follow_redirects=False) as other:
        other.get("/dashboard/signin")
        refused = other.post(
            "/dashboard/signin", data={"email": "gina@example.com", "password": PASSWORD, "csrf_token": token}
        )
        assert refused.status_code == 403
    assert client.post("/dashboard/keys", data={"name": "ok", "csrf_token": token}).status_code == 200


# ------------------------------------------------------------------------------------- signed out
@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/overview",
        "/dashboard/keys",
        "/dashboard/users",
        "/dashboard/sessions",
        "/dashboard/sessions/20250115025029_fvivn",
        "/dashboard/sessions/20250115025029_fvivn/export.json",
        "/dashboard/sessions/20250115025029_fvivn/export.csv",
        "/dashboard/users/G-20250115025029-vLErWBfQNtnfvgDccFOQ/averages",
    ],
)
def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/dashboard/signin?next=")


def test_signed_out_posts_and_live_json(client: TestClient) -> None:
    token = page_csrf(client)
    assert client.post("/dashboard/keys", data={"csrf_token": token}).headers["location"] == "/dashboard/signin"
    assert client.post("/dashboard/keys/1/revoke", data={"csrf_token": token}).status_code == 303
    assert client.get("/dashboard/sessions/20250115025029_fvivn/live").status_code == 401


def test_next_is_followed_only_inside_the_dashboard(client: TestClient) -> None:
    sign_up(client, "hana@example.com")
    client.post("/dashboard/signout", data={"csrf_token": page_csrf(client, "/dashboard/overview")})
    for target, expected in (
        ("/dashboard/sessions", "/dashboard/sessions"),
        ("https://evil.example/", "/dashboard/"),
        ("//evil.example/dashboard/", "/dashboard/"),
    ):
        token = page_csrf(client)
        response = client.post(
            "/dashboard/signin",
            data={"email": "hana@example.com", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert response.headers["location"] == expected
        client.post("/dashboard/signout", data={"csrf_token": page_csrf(client, "/dashboard/overview")})


# ---------------------------------------------------------------------------------------------- keys
def test_create_key_is_shown_once_then_prefix_rename_revoke(client: TestClient, stores: Stores) -> None:
    sign_up(client, "ivan@example.com")
    token = page_csrf(client, "/dashboard/keys")
    created = client.post("/dashboard/keys", data={"name": "ios app", "csrf_token": token})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    key = re.search(r'value="(st_test_[^"]+)"[^>]*data-new-key', created.text)
    assert key, "the new key is shown"
    secret = key.group(1)
    with stores.db.read() as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.key_hash == hash_api_key(secret) and row.name == "ios app"
        assert secret not in (row.prefix, row.key_hash) and secret.startswith(row.prefix)
        key_id, prefix = row.id, row.prefix
    listing = client.get("/dashboard/keys").text
    assert secret not in listing and prefix in listing and "active" in listing
    assert "advanced" in listing and "6,000 calls / minute / key" in listing and "10,000,000" in listing
    renamed = client.post(f"/dashboard/keys/{key_id}/rename", data={"name": "android", "csrf_token": token})
    assert renamed.status_code == 303
    revoked = client.post(f"/dashboard/keys/{key_id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    with stores.db.read() as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.revoked_at is not None and row.name == "android"
    assert "revoked" in client.get("/dashboard/keys").text


def test_keys_made_by_the_cli_for_the_account_are_listed(client: TestClient, stores: Stores) -> None:
    sign_up(client, "judy@example.com")
    with stores.db.write() as s:
        new = create_api_key(
            s, environment="live", plan=DEFAULT_PLANS["basic"], account_email="judy@example.com", name="cli"
        )
    assert new.prefix not in client.get("/dashboard/keys").text  # test environment selected
    switch_env(client, "live")
    page = client.get("/dashboard/keys").text
    assert new.prefix in page and "basic" in page


def test_key_usage_and_quota_left(client: TestClient, stores: Stores) -> None:
    sign_up(client, "kim@example.com")
    client.post("/dashboard/keys", data={"name": "k", "csrf_token": page_csrf(client, "/dashboard/keys")})
    with stores.db.write() as s:
        row = s.scalars(select(ApiKey)).one()
        row.calls_total, row.calls_period, row.period = 1234, 1000, datetime.now(UTC).strftime("%Y-%m")
    page = client.get("/dashboard/keys").text
    assert "9,999,000" in page and "1,234 total" in page


# ------------------------------------------------------------------------------- scoping by account
def test_one_account_cannot_reach_another_accounts_data(stores: Stores) -> None:
    app = make_app(stores)
    with TestClient(app, follow_redirects=False) as alice, TestClient(app, follow_redirects=False) as mallory:
        sign_up(alice, "alice@example.com")
        sign_up(mallory, "mallory@example.com")
        seeded = seed_session(stores, "alice@example.com", night(2))
        alice.post("/dashboard/keys", data={"name": "a", "csrf_token": page_csrf(alice, "/dashboard/keys")})
        with stores.db.read() as s:
            key_id = s.scalars(select(ApiKey.id)).one()
        for path in (
            f"/dashboard/sessions/{seeded.session_id}",
            f"/dashboard/sessions/{seeded.session_id}/export.json",
            f"/dashboard/sessions/{seeded.session_id}/export.csv",
            f"/dashboard/users/{seeded.user_id}",
            f"/dashboard/users/{seeded.user_id}/averages",
        ):
            assert alice.get(path).status_code == 200, path
            response = mallory.get(path)
            assert response.status_code == 404, path
            assert seeded.session_id not in response.text or "No session" in response.text
        assert mallory.get(f"/dashboard/sessions/{seeded.session_id}/live").status_code == 404
        assert seeded.user_id not in mallory.get("/dashboard/users").text
        assert "data-session-id=" not in mallory.get(f"/dashboard/sessions?q={seeded.session_id}").text
        token = page_csrf(mallory, "/dashboard/keys")
        assert mallory.post(f"/dashboard/keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 404
        assert (
            mallory.post(f"/dashboard/keys/{key_id}/rename", data={"name": "x", "csrf_token": token}).status_code == 404
        )
        with stores.db.read() as s:
            key = s.get_one(ApiKey, key_id)
            assert key.revoked_at is None and key.name == "a"
        assert "a@" not in mallory.get("/dashboard/keys").text.replace("mallory@example.com", "")


def test_environment_switch_scopes_every_page(client: TestClient, stores: Stores) -> None:
    sign_up(client, "lena@example.com")
    test_night = seed_session(stores, "lena@example.com", night(3), env="test")
    live_night = seed_session(stores, "lena@example.com", night(4), env="live")
    page = client.get("/dashboard/sessions").text
    assert test_night.session_id in page and live_night.session_id not in page
    assert client.get(f"/dashboard/sessions/{live_night.session_id}").status_code == 404
    switch_env(client, "live")
    page = client.get("/dashboard/sessions").text
    assert live_night.session_id in page and test_night.session_id not in page
    assert client.get(f"/dashboard/sessions/{test_night.session_id}").status_code == 404
    assert client.get(f"/dashboard/users/{test_night.user_id}").status_code == 404
    assert 'class="env live on"' in client.get("/dashboard/overview").text


# ------------------------------------------------------------------------------------- data pages
def test_overview_counts(client: TestClient, stores: Stores) -> None:
    sign_up(client, "mia@example.com")
    now = datetime.now(UTC)
    user = seed_session(stores, "mia@example.com", night(7), start=now - timedelta(days=2, hours=9)).user_id
    seed_session(stores, "mia@example.com", [1] * 8, user_id=user, start=now - timedelta(days=1, hours=9))  # too short
    seed_session(
        stores, "mia@example.com", [1] * 40 + [-1] * 60, user_id=user, start=now - timedelta(days=40)
    )  # defects
    seed_session(stores, "mia@example.com", [0] * 30, user_id=user, state="OPEN", start=now - timedelta(minutes=15))
    seed_session(stores, "mia@example.com", night(5), env="live")
    html = client.get("/dashboard/overview").text
    assert re.search(r'data-stat="users">1<', html)
    assert re.search(r'data-stat="sessions">4<', html)
    assert re.search(r'data-stat="valid">1<', html) and re.search(r'data-stat="invalid">2<', html)
    assert re.search(r'data-state="OPEN">1<', html) and re.search(r'data-state="COMPLETE">3<', html)
    hours = (7 * 3600 + 8 * 30 + 100 * 30 + 30 * 30) / 3600
    assert f'data-stat="hours">{hours:.1f}<' in html, re.findall(r'data-stat="hours">[^<]*', html)
    usage = _svg(html, "usage")
    assert usage.get("data-days") == "30" and usage.get("data-sessions") == "3"  # the 40-day-old one is outside


def test_users_and_sessions_lists_search_and_pages(client: TestClient, stores: Stores) -> None:
    sign_up(client, "nina@example.com")
    first = seed_session(stores, "nina@example.com", night(1))
    start = datetime(2025, 2, 1, 22, tzinfo=UTC)
    ids = [
        seed_session(
            stores, "nina@example.com", [1] * 12, user_id=first.user_id, start=start + timedelta(days=i)
        ).session_id
        for i in range(30)
    ]
    page1 = client.get("/dashboard/sessions").text
    assert "Page 1 of 2" in page1 and page1.count("data-session-id=") == 25
    page2 = client.get("/dashboard/sessions?page=2").text
    assert page2.count("data-session-id=") == 6
    found = client.get(f"/dashboard/sessions?q={ids[7]}").text
    assert found.count("data-session-id=") == 1 and ids[7] in found
    assert client.get("/dashboard/sessions?q=%25").text.count("data-session-id=") == 0  # LIKE wildcards are literal
    assert client.get("/dashboard/sessions?state=OPEN").text.count("data-session-id=") == 0
    other = seed_session(stores, "nina@example.com", night(1))
    users = client.get("/dashboard/users").text
    assert users.count("data-user-id=") == 2
    search = client.get(f"/dashboard/users?q={other.user_id[-8:]}").text
    assert search.count("data-user-id=") == 1 and other.user_id in search
    assert client.get(f"/dashboard/users/{first.user_id}").text.count("data-session-id=") == 25


def test_session_page_hypnogram_stats_and_peculiarities(client: TestClient, stores: Stores) -> None:
    sign_up(client, "olga@example.com")
    stages = night(7, gap=(200, 12))
    snoring = [0] * len(stages)
    snoring[300:320] = [1] * 20
    seeded = seed_session(
        stores,
        "olga@example.com",
        stages,
        snoring=snoring,
        start=datetime(2025, 1, 14, 14, 0, tzinfo=UTC),
        created_timezone="Asia/Seoul",
    )
    html = client.get(f"/dashboard/sessions/{seeded.session_id}").text
    hyp = _svg(html, "hypnogram")
    runs = _runs(hyp)
    assert hyp.get("data-epochs") == str(len(stages))
    assert sum(int(r.get("data-epochs", "0")) for r in runs) == len(stages)
    ticks = [t.text for t in hyp.iter(f"{NS}text") if t.get("class") == "tick"]
    assert ticks[0] == "23:00" and "00:00" in ticks  # the session's own time zone (UTC+9)
    snore = _svg(html, "snoring")
    assert snore.get("data-snoring-runs") == "1"
    assert "test-model-1" in html and "NO_BREATHING_STABILITY" in html
    assert "data-missing-ratio>1%<" in html.replace(" ", "") or "data-missing-ratio>1%" in html
    # Every statistic has its definition next to it.
    assert 'data-stat="sleep_efficiency"' in html and "The ratio of time_in_sleep to time_in_bed." in html
    expected = build_report(
        seeded.session_id, stages, datetime(2025, 1, 14, 14, 0, tzinfo=UTC), None, snoring_stages=snoring
    )
    assert expected.stat is not None
    eff = re.search(r'data-stat="sleep_efficiency">([^<]+)<', html)
    assert eff and eff.group(1) == f"{expected.stat.sleep_efficiency * 100:.0f}%"
    # Another time zone on request.
    utc_html = client.get(f"/dashboard/sessions/{seeded.session_id}?tz=UTC").text
    utc_ticks = [t.text for t in _svg(utc_html, "hypnogram").iter(f"{NS}text") if t.get("class") == "tick"]
    assert utc_ticks[0] == "14:00"
    bad_tz = client.get(f"/dashboard/sessions/{seeded.session_id}?tz=Mars/Base").text
    assert "Unknown time zone" in bad_tz


def test_invalid_session_page_says_not_billed(client: TestClient, stores: Stores) -> None:
    sign_up(client, "pia@example.com")
    seeded = seed_session(stores, "pia@example.com", [1] * 8)
    html = client.get(f"/dashboard/sessions/{seeded.session_id}").text
    assert "TOO_SHORT_FOR_ANALYSIS" in html and "not billed" in html
    assert 'data-stat="sleep_efficiency"' not in html


def test_exports_json_and_csv(client: TestClient, stores: Stores) -> None:
    sign_up(client, "quinn@example.com")
    stages = night(2)
    seeded = seed_session(stores, "quinn@example.com", stages, snoring=[0] * len(stages), created_timezone="Asia/Seoul")
    response = client.get(f"/dashboard/sessions/{seeded.session_id}/export.json")
    assert response.headers["content-type"].startswith("application/json")
    assert f"sleeptrack-session-{seeded.session_id}.json" in response.headers["content-disposition"]
    doc = json.loads(response.text)
    result = doc["result"]
    assert result["session"]["id"] == seeded.session_id and result["session"]["sleep_stages"] == stages
    assert result["timezone"] == "Asia/Seoul" and result["session"]["start_time"].endswith("+09:00")
    expected = build_report(
        seeded.session_id, stages, datetime(2025, 1, 14, 14, tzinfo=UTC), None, snoring_stages=[0] * len(stages)
    )
    assert result["stat"] == expected.to_dict(parse_timezone("Asia/Seoul"), "Asia/Seoul")["stat"]
    text = client.get(f"/dashboard/sessions/{seeded.session_id}/export.csv?tz=UTC").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(stages)
    assert rows[0]["start_time"] == "2025-01-14T14:00:00+00:00" and rows[1]["epoch"] == "1"
    assert [int(r["sleep_stage"]) for r in rows] == stages
    assert rows[25]["sleep_stage_name"] == "light" and rows[0]["snoring_stage"] == "0"


def test_open_session_live_endpoint_follows_realtime_results(client: TestClient, stores: Stores) -> None:
    sign_up(client, "rosa@example.com")
    seeded = seed_session(
        stores, "rosa@example.com", [0] * 10 + [1] * 10, state="OPEN", start=datetime.now(UTC) - timedelta(minutes=12)
    )
    html = client.get(f"/dashboard/sessions/{seeded.session_id}").text
    assert 'data-live-url="/dashboard/sessions/' in html and "dashboard.js" in html
    assert _svg(html, "hypnogram").get("data-epochs") == "20"
    first = client.get(f"/dashboard/sessions/{seeded.session_id}/live").json()
    assert first["state"] == "OPEN" and first["epochs"] == 20
    with stores.db.write() as s:
        s.add(
            RealtimeResult(
                session_id=seeded.session_id,
                inference_seq_num=2,
                seq_num=29,
                sleep_stages=[0] * 10 + [1] * 20,
                snoring_stages=None,
                model_version="m",
            )
        )
    second = client.get(f"/dashboard/sessions/{seeded.session_id}/live").json()
    assert second["epochs"] == 30 and second["version"] != first["version"]
    assert 'data-epochs="30"' in second["html"]
    # A COMPLETE session's page does not poll.
    done = seed_session(stores, "rosa@example.com", night(1))
    assert "data-live-url" not in client.get(f"/dashboard/sessions/{done.session_id}").text


def test_open_session_without_realtime_plan(client: TestClient, stores: Stores) -> None:
    sign_up(client, "sara@example.com")
    seeded = seed_session(stores, "sara@example.com", [1] * 12, state="OPEN", realtime=False)
    html = client.get(f"/dashboard/sessions/{seeded.session_id}").text
    assert "NO_REALTIME_POLLING" in html and "12 chunks received" in html


def test_averages_page_per_night_charts(client: TestClient, stores: Stores) -> None:
    sign_up(client, "tina@example.com")
    start = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)  # 23:00 in Seoul
    user = None
    for i in range(5):
        user = seed_session(
            stores,
            "tina@example.com",
            night(6 + i / 2),
            start=start + timedelta(days=i),
            created_timezone="Asia/Seoul",
            user_id=user,
        ).user_id
    seed_session(stores, "tina@example.com", [0] * 40, start=start + timedelta(days=5), user_id=user)  # never slept
    seed_session(stores, "tina@example.com", night(6), start=start + timedelta(days=40), user_id=user)  # outside
    html = client.get(f"/dashboard/users/{user}/averages?start_date=2025-03-01&end_date=2025-03-10&tz=Asia/Seoul").text
    sleep_chart = _svg(html, "nights sleep-time")
    assert sleep_chart.get("data-bars") == "5"
    assert _svg(html, "nights efficiency").get("data-bars") == "5"
    stages = _svg(html, "stages")
    assert stages.get("data-nights") == "5"
    assert re.search(r'data-stat="slept">5<', html) and re.search(r'data-stat="never-slept">1<', html)
    assert "Averaged over the slept nights" in html
    too_long = client.get(f"/dashboard/users/{user}/averages?start_date=2025-01-01&end_date=2025-06-01").text
    assert "100 days" in too_long
    bad = client.get(f"/dashboard/users/{user}/averages?start_date=yesterday").text
    assert "YYYY-MM-DD" in bad


def test_static_files_and_home(client: TestClient) -> None:
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "svg.chart" in css.text
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/../_routes.py").status_code == 404
    assert client.get("/dashboard/static/nope.css").status_code == 404
    assert client.get("/dashboard/").headers["location"] == "/dashboard/signin"
    html = client.get("/dashboard/signin").text
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN


def test_session_state_enum_matches_store_values() -> None:
    assert {s.value for s in SessionState} == {"OPEN", "CLOSED", "COMPLETE"}


def test_two_stage_session_and_closed_state(client: TestClient, stores: Stores) -> None:
    sign_up(client, "uma@example.com")
    two = [0] * 10 + [1] * 100 + [0] * 10
    seeded = seed_session(stores, "uma@example.com", two, scheme="2-stage")
    html = client.get(f"/dashboard/sessions/{seeded.session_id}").text
    hyp = _svg(html, "hypnogram")
    assert hyp.get("data-scheme") == "2-stage"
    assert [t.text for t in hyp.iter(f"{NS}text") if t.get("class") == "axis-label"] == ["Wake", "Sleep"]
    assert 'data-stat="light_ratio">—<' in html  # the 2-stage plan leaves 4-stage statistics null
    rows = list(csv.DictReader(io.StringIO(client.get(f"/dashboard/sessions/{seeded.session_id}/export.csv").text)))
    assert {r["sleep_stage_name"] for r in rows} == {"wake", "sleep"}
    closed = seed_session(stores, "uma@example.com", [1] * 30, state="CLOSED")
    page = client.get(f"/dashboard/sessions/{closed.session_id}?poll=0.2").text
    assert 'data-state="CLOSED"' in page and 'data-interval="1000"' in page  # polls until COMPLETE, at most 1/s
    assert "IN_PROGRESS" in page and "computed when the session is closed" in page


def test_sign_ups_per_address_are_limited(stores: Stores) -> None:
    with TestClient(make_app(stores, DashboardOptions(max_signups_per_ip=2)), follow_redirects=False) as client:
        sign_up(client, "one@example.com")
        client.cookies.clear()
        sign_up(client, "two@example.com")
        client.cookies.clear()
        token = page_csrf(client, "/dashboard/signup")
        third = client.post(
            "/dashboard/signup",
            data={"email": "three@example.com", "password": PASSWORD, "password2": PASSWORD, "csrf_token": token},
        )
        assert third.status_code == 429 and "Too many accounts" in third.text
        assert int(third.headers["retry-after"]) > 3000

"""The dashboard's queries on PostgreSQL (the scale-out database): one walk through every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sleeptrack.store import Settings, Stores, open_stores
from tests.db_fixtures import postgres_schema_url

from .conftest import make_app, night, seed_session, sign_in, sign_up, switch_env

pytestmark = pytest.mark.services


@pytest.fixture
def pg_stores(postgres_url: str, tmp_path: Path) -> Iterator[Stores]:
    for url in postgres_schema_url(postgres_url):
        st = open_stores(Settings(data_dir=tmp_path, database_url=url, secret_key="pg-tests"))
        try:
            yield st
        finally:
            st.close()


def test_every_page_on_postgresql(pg_stores: Stores) -> None:
    stores = pg_stores
    with TestClient(make_app(stores), follow_redirects=False) as client:
        sign_up(client, "PG@Example.com")
        client.cookies.clear()
        assert sign_in(client, "pg@EXAMPLE.com") == 303  # e-mails compare without case
        now = datetime.now(UTC)
        a = seed_session(stores, "pg@example.com", night(7), start=now - timedelta(days=1, hours=9))
        seed_session(stores, "pg@example.com", [1] * 8, user_id=a.user_id, start=now - timedelta(hours=20))
        seed_session(stores, "pg@example.com", [0] * 20, state="OPEN", start=now - timedelta(minutes=10))
        live = seed_session(stores, "pg@example.com", night(5), env="live")

        html = client.get("/dashboard/overview").text
        assert re.search(r'data-stat="users">2<', html) and re.search(r'data-stat="sessions">3<', html)
        assert re.search(r'data-stat="valid">1<', html) and re.search(r'data-stat="invalid">1<', html)
        users = client.get("/dashboard/users").text
        assert users.count("data-user-id=") == 2 and a.user_id in users
        assert client.get(f"/dashboard/users?q={a.user_id[-6:]}").text.count("data-user-id=") == 1
        assert client.get("/dashboard/sessions?q=_%25").text.count("data-session-id=") == 0
        assert client.get("/dashboard/sessions?state=COMPLETE").text.count("data-session-id=") == 2
        page = client.get(f"/dashboard/sessions/{a.session_id}").text
        assert 'data-epochs="840"' in page and 'data-stat="sleep_efficiency"' in page
        start = (now - timedelta(days=3)).date()
        averages = client.get(f"/dashboard/users/{a.user_id}/averages?start_date={start}&end_date={now.date()}").text
        assert re.search(r'data-stat="slept">1<', averages)
        assert client.get(f"/dashboard/sessions/{live.session_id}").status_code == 404
        switch_env(client, "live")
        assert live.session_id in client.get("/dashboard/sessions").text

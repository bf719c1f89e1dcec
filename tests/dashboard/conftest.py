"""Fixtures of the dashboard tests: a real SQLite store, the dashboard app, accounts and seeded nights."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from sleeptrack.dashboard import dashboard_router
from sleeptrack.dashboard._routes import DashboardOptions
from sleeptrack.store import (
    Account,
    Chunk,
    Environment,
    FinalResult,
    RealtimeResult,
    Settings,
    SleepSession,
    Stores,
    User,
    new_session_id,
    new_user_id,
    open_stores,
    utcnow,
)

PASSWORD = "correct horse battery"
#: Screenshots of the browser tests (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
_SESSION_STARTED = time.time()
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


#: Cheap argon2id parameters: the tests hash many passwords on a busy 2-core machine.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where this run's dashboard screenshots are (also under xdist, where workers' output is hidden)."""
    shots = sorted(ARTIFACTS.glob("*.png")) if ARTIFACTS.exists() else []
    fresh = [p for p in shots if p.stat().st_mtime >= _SESSION_STARTED]
    if fresh:
        terminalreporter.write_line(f"dashboard screenshots ({len(fresh)} from this run): {ARTIFACTS}")


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database, copied by every test (migrating costs about a second)."""
    folder = tmp_path_factory.mktemp("template")
    st = open_stores(Settings(data_dir=folder, secret_key="dashboard-tests-secret"))
    st.close()
    return folder / "sleeptrack.db"


@pytest.fixture
def stores(tmp_path: Path, migrated_db: Path) -> Iterator[Stores]:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(migrated_db, data / "sleeptrack.db")
    st = open_stores(
        Settings(data_dir=data, secret_key="dashboard-tests-secret", sqlite_synchronous="NORMAL"), migrate=False
    )
    yield st
    st.close()


def make_app(stores: Stores, options: DashboardOptions | None = None) -> FastAPI:
    app = FastAPI()
    options = options or DashboardOptions()
    if options.password_hasher is None:
        options = replace(options, password_hasher=FAST_HASHER)
    app.include_router(dashboard_router(stores, options))
    return app


@pytest.fixture
def app(stores: Stores) -> FastAPI:
    return make_app(stores)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def page_csrf(client: TestClient, path: str = "/dashboard/signin") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    return csrf_of(response.text)


def sign_up(client: TestClient, email: str, password: str = PASSWORD) -> None:
    token = page_csrf(client, "/dashboard/signup")
    response = client.post(
        "/dashboard/signup",
        data={"email": email, "password": password, "password2": password, "csrf_token": token},
    )
    assert response.status_code == 303, response.text[:800]
    assert response.headers["location"] == "/dashboard/keys"


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> int:
    token = page_csrf(client, "/dashboard/signin")
    response = client.post("/dashboard/signin", data={"email": email, "password": password, "csrf_token": token})
    return int(response.status_code)


def switch_env(client: TestClient, env: str) -> None:
    token = page_csrf(client, "/dashboard/overview")
    response = client.post(
        "/dashboard/environment", data={"environment": env, "next": "/dashboard/sessions", "csrf_token": token}
    )
    assert response.status_code == 303


@dataclass
class Seeded:
    user_id: str
    session_id: str
    n_epochs: int


def env_id_of(stores: Stores, email: str, env: str) -> int:
    with stores.db.read() as s:
        return s.scalars(
            select(Environment.id)
            .join(Account, Environment.account_id == Account.id)
            .where(Account.email == email, Environment.name == env)
        ).one()


def seed_session(
    stores: Stores,
    email: str,
    stages: Sequence[int],
    *,
    env: str = "test",
    snoring: Sequence[int] | None = None,
    state: str = "COMPLETE",
    start: datetime | None = None,
    created_timezone: str = "UTC",
    user_id: str | None = None,
    scheme: str = "4-stage",
    realtime: bool = True,
) -> Seeded:
    """A session with its user, chunks and final (COMPLETE) or real-time (OPEN / CLOSED) result."""
    env_id = env_id_of(stores, email, env)
    start = start or datetime(2025, 1, 14, 14, 0, tzinfo=UTC)
    n = len(stages)
    with stores.db.write() as s:
        if user_id is None or s.get(User, user_id) is None:
            user = User(id=user_id or new_user_id(), environment_id=env_id, created_at=utcnow())
            s.add(user)
            s.flush()
            user_id = user.id
        sid = new_session_id(start)
        end = start + timedelta(seconds=30 * n) if state != "OPEN" else None
        s.add(
            SleepSession(
                id=sid,
                environment_id=env_id,
                user_id=user_id,
                state=state,
                inference_type="MELSPECTROGRAM",
                service="NOSERVICE",
                created_timezone=created_timezone,
                start_time=start,
                end_time=end,
                complete_time=end + timedelta(seconds=5) if end is not None and state == "COMPLETE" else None,
                last_seq_num=n - 1,
                received_count=sum(1 for c in stages if c != -1),
                last_upload_at=start + timedelta(seconds=30 * n),
                plan="advanced",
                scheme=scheme,
                snoring=snoring is not None,
                realtime=realtime,
            )
        )
        s.flush()
        for i, code in enumerate(stages):
            if code != -1:
                s.add(Chunk(session_id=sid, seq_num=i, blob_key=f"{sid}/{i}", size=1, inference_type="MELSPECTROGRAM"))
        if state == "COMPLETE":
            s.add(
                FinalResult(
                    session_id=sid,
                    sleep_stages=list(stages),
                    snoring_stages=None if snoring is None else list(snoring),
                    model_version="test-model-1",
                )
            )
        elif n:
            s.add(
                RealtimeResult(
                    session_id=sid,
                    inference_seq_num=n // 10 - 1 if n >= 10 else 0,
                    seq_num=n - 1,
                    sleep_stages=list(stages),
                    snoring_stages=None if snoring is None else list(snoring),
                    model_version="test-model-1",
                )
            )
    assert user_id is not None
    return Seeded(user_id, sid, n)


def night(hours: float = 7.0, gap: tuple[int, int] | None = None) -> list[int]:
    """A plausible 4-stage night: wake, then light / deep / light / REM cycles, wake at the end."""
    n = int(hours * 120)
    cycle = [1] * 30 + [2] * 40 + [1] * 20 + [3] * 30
    body = (cycle * (n // len(cycle) + 1))[: n - 30]
    stages = [0] * 20 + body[: n - 30] + [0] * 10
    if gap is not None:
        stages[gap[0] : gap[0] + gap[1]] = [-1] * gap[1]
    return stages[:n]

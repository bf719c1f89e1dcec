"""Dashboard page times on a populated environment (real SQLite store, in-process HTTP client).

Seeds one account's Test environment with 200 users and 2 000 COMPLETE 8-hour nights (960 epochs each, with
snoring) plus one OPEN session with a real-time result, then times every page (median of 5 requests after one
warm-up) and reports its size. Targets: the session page of an 8-hour night under 250 ms, the overview under
1.5 s (its first, cold call computes every session's validity once; later calls use the cache), the lists under
250 ms.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

N_USERS = 200
N_NIGHTS = 2000
EPOCHS = 960


def _night(rng: random.Random) -> list[int]:
    stages = [0] * rng.randint(10, 40)
    while len(stages) < EPOCHS - 20:
        stages += [1] * rng.randint(10, 40) + [2] * rng.randint(5, 40) + [1] * rng.randint(5, 20)
        stages += [3] * rng.randint(5, 40) + [0] * rng.randint(0, 3)
    stages = stages[: EPOCHS - 20] + [0] * 20
    for _ in range(rng.randint(0, 3)):  # a few upload gaps
        at = rng.randrange(EPOCHS - 10)
        stages[at : at + rng.randint(1, 6)] = [-1] * len(stages[at : at + 6])
    return stages[:EPOCHS]


def main() -> bool:
    warnings.simplefilter("ignore")
    from argon2 import PasswordHasher
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sleeptrack.dashboard import dashboard_router
    from sleeptrack.dashboard._routes import DashboardOptions
    from sleeptrack.store import (
        Chunk,
        Environment,
        FinalResult,
        RealtimeResult,
        Settings,
        SleepSession,
        User,
        new_session_id,
        new_user_id,
        open_stores,
    )

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        stores = open_stores(Settings(data_dir=Path(tmp), secret_key="bench", sqlite_synchronous="NORMAL"))
        app = FastAPI()
        hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        app.include_router(dashboard_router(stores, DashboardOptions(password_hasher=hasher)))
        client = TestClient(app, follow_redirects=False)
        page = client.get("/dashboard/signup").text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        password = "benchmark password"
        client.post(
            "/dashboard/signup",
            data={"email": "bench@example.com", "password": password, "password2": password, "csrf_token": token},
        )
        started = time.perf_counter()
        now = datetime.now(UTC).replace(microsecond=0)
        with stores.db.write() as s:
            env_id = s.query(Environment.id).filter(Environment.name == "test").scalar()
            users = [new_user_id() for _ in range(N_USERS)]
            s.add_all(User(id=u, environment_id=env_id, created_at=now) for u in users)
            s.flush()
            first_session = first_user = ""
            finals = []
            for i in range(N_NIGHTS):
                user = users[i % N_USERS]
                start = now - timedelta(days=i // N_USERS, hours=9, minutes=rng.randint(0, 120))
                sid = new_session_id(start)
                stages = _night(rng)
                snoring = [rng.random() < 0.1 for _ in stages]
                s.add(
                    SleepSession(
                        id=sid, environment_id=env_id, user_id=user, state="COMPLETE",
                        inference_type="MELSPECTROGRAM", service="NOSERVICE", created_timezone="Asia/Seoul",
                        start_time=start, end_time=start + timedelta(seconds=30 * EPOCHS),
                        complete_time=start + timedelta(seconds=30 * EPOCHS + 20), last_seq_num=EPOCHS - 1,
                        received_count=sum(c != -1 for c in stages), plan="advanced", scheme="4-stage",
                        snoring=True, realtime=True,
                    )
                )  # fmt: skip
                finals.append(
                    FinalResult(
                        session_id=sid,
                        sleep_stages=stages,
                        snoring_stages=[int(x) if c != -1 else -1 for x, c in zip(snoring, stages, strict=True)],
                        model_version="bench",
                    )
                )
                if i == 0:
                    first_session, first_user = sid, user
            s.flush()
            s.add_all(finals)
            open_user = new_user_id()
            s.add(User(id=open_user, environment_id=env_id, created_at=now))
            s.flush()
            open_sid = new_session_id(now - timedelta(minutes=30))
            s.add(
                SleepSession(
                    id=open_sid, environment_id=env_id, user_id=open_user, state="OPEN",
                    inference_type="MELSPECTROGRAM", service="NOSERVICE", created_timezone="UTC",
                    start_time=now - timedelta(minutes=30), last_seq_num=59, received_count=60, plan="advanced",
                    scheme="4-stage", snoring=True, realtime=True,
                )
            )  # fmt: skip
            s.flush()
            s.add_all(
                Chunk(session_id=open_sid, seq_num=q, blob_key=f"b/{q}", size=1, inference_type="MELSPECTROGRAM")
                for q in range(60)
            )
            s.add(
                RealtimeResult(
                    session_id=open_sid, inference_seq_num=5, seq_num=59, sleep_stages=_night(rng)[:60],
                    snoring_stages=[0] * 60, model_version="bench",
                )
            )  # fmt: skip
        print(
            f"seeded {N_NIGHTS} nights of {EPOCHS} epochs for {N_USERS} users in {time.perf_counter() - started:.1f} s"
        )

        def timed(path: str, repeat: int = 5) -> tuple[float, float, int]:
            t0 = time.perf_counter()
            first = client.get(path)
            cold = time.perf_counter() - t0
            assert first.status_code == 200, (path, first.status_code)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t0)
            return cold, statistics.median(times), len(r.content)

        pages = {
            "overview": "/dashboard/overview",
            "sessions list": "/dashboard/sessions",
            "sessions search": f"/dashboard/sessions?q={first_session[-5:]}",
            "users list": "/dashboard/users",
            "session (8 h night)": f"/dashboard/sessions/{first_session}",
            "session OPEN": f"/dashboard/sessions/{open_sid}",
            "live JSON": f"/dashboard/sessions/{open_sid}/live",
            "user averages (30 d)": f"/dashboard/users/{first_user}/averages?start_date="
            f"{(now - timedelta(days=30)).date()}&end_date={now.date()}",
            "export.json": f"/dashboard/sessions/{first_session}/export.json",
            "export.csv": f"/dashboard/sessions/{first_session}/export.csv",
            "keys": "/dashboard/keys",
        }
        results = {name: timed(path) for name, path in pages.items()}
        print(f"{'page':24} {'first':>9} {'median':>9} {'size':>9}")
        for name, (cold, median, size) in results.items():
            print(f"{name:24} {cold * 1000:7.0f}ms {median * 1000:7.0f}ms {size / 1024:7.1f}KB")
        stores.close()
    targets = {"session (8 h night)": 0.25, "overview": 1.5, "sessions list": 0.25, "users list": 0.25}
    missed = [n for n, limit in targets.items() if results[n][1] > limit]
    for name in missed:
        print(f"target missed: {name} median {results[name][1] * 1000:.0f} ms > {targets[name] * 1000:.0f} ms")
    return not missed


if __name__ == "__main__":
    main()

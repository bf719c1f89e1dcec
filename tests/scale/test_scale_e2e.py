"""End to end on the scale-out stack: 2 API processes and 2 Celery workers on the machine's PostgreSQL and
Redis, short simulated nights tracked through the SDK's client, one worker SIGKILLed while it holds a job.

Every session must hold exactly seq_nums 0..N-1, reach COMPLETE, and have the same final result as the
engine computes in-process (the embedded server's result).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from sleeptrack.sdk import ApiClient
from sleeptrack.store import Chunk, FinalResult, Job, Settings, SleepSession, create_api_key, open_stores
from tests.conftest import skip_or_fail
from tests.db_fixtures import postgres_schema_url
from tests.scale._stack import Stack
from tests.server._live import free_port
from tests.server.conftest import Night, expected_full_night

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.xdist_group("scale-stack"), pytest.mark.timeout(900)]

SLEEPERS = 3
EPOCHS = 30


@contextlib.contextmanager
def _running_stack(tmp_path: Path, postgres_url: str, broker: str) -> Iterator[tuple[Stack, str]]:
    redis.Redis.from_url(broker).flushdb()
    for db_url in postgres_schema_url(postgres_url):
        settings = Settings(data_dir=tmp_path, database_url=db_url, broker_url=broker)
        stores = open_stores(settings)
        with stores.db.write() as s:
            key = create_api_key(s, environment="test", plan=stores.plans["advanced"]).key
        stores.close()
        st = Stack(tmp_path, db_url, broker, env={"SLEEPTRACK_JOB_LEASE_SECONDS": "15"})
        try:
            st.start_api()
            st.start_api()
            st.start_worker()
            st.start_worker()
            yield st, key
        finally:
            st.stop()
            for p in [*st.apis, *st.workers]:
                if "Traceback" in p.log_text():
                    print(f"--- {p.name}\n{p.log_text()[-4000:]}")


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[tuple[Stack, str]]:
    """The stack on the machine's Redis (a database of its own, emptied first)."""
    with _running_stack(tmp_path, postgres_url, re.sub(r"/\d+$", "", redis_url) + "/7") as st:
        yield st


class OwnRedis:
    """A redis-server this test starts (and restarts) on a loopback port, keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path, postgres_url: str) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (needed to restart a Redis of the test's own)")
    folder = tmp_path / "redis"
    folder.mkdir()
    r = OwnRedis(folder)
    r.start()
    yield r
    r.kill()


def _track(base_urls: list[str], key: str, night: Night, errors: list[str]) -> tuple[str, str]:
    """One sleeper: a user, a session, EPOCHS uploads alternating between the API processes, close."""
    clients = [ApiClient(url, key) for url in base_urls]
    try:
        user = clients[0].create_user()
        clients = [ApiClient(url, key, user) for url in base_urls]
        sid = clients[1].create_session().session_id
        for seq in range(EPOCHS):
            result = clients[seq % 2].upload(sid, seq, night.mels[seq], attempts=5)
            if result.seq_num != seq:
                errors.append(f"{sid}: answered {result.seq_num} for {seq}")
            if seq == 7:  # a retried upload (the SDK resends after a lost answer) is stored once
                assert clients[1].upload(sid, seq, night.mels[seq], attempts=5).duplicate
        clients[0].close_session(sid)
        return user, sid
    finally:
        for c in clients:
            c.close()


def _holding_a_job(log: str) -> bool:
    return log.count("] received") > log.count("] succeeded")


def _night_with_faults(st: Stack, key: str, night: Night, after_kill: Callable[[], None] | None = None) -> None:
    urls = [p.url for p in st.apis]
    errors: list[str] = []
    results: list[tuple[str, str]] = []

    def sleeper() -> None:
        results.append(_track(urls, key, night, errors))

    threads = [threading.Thread(target=sleeper) for _ in range(SLEEPERS)]
    for t in threads:
        t.start()
    # SIGKILL worker 0 while it holds a job (its message is unacknowledged, its job row marked running)
    victim = st.workers[0]
    deadline = time.monotonic() + 120
    while not _holding_a_job(victim.log_text()):
        assert time.monotonic() < deadline, "worker 0 never took a job"
        time.sleep(0.01)
    victim.kill()
    killed_at = time.monotonic()
    if after_kill is not None:
        after_kill()
    for t in threads:
        t.join(timeout=300)
    assert errors == [] and len(results) == SLEEPERS
    settings = Settings(data_dir=st.data_dir / "check", database_url=st.database_url, broker_url=st.broker_url)
    stores = open_stores(settings, migrate=False)
    try:
        deadline = time.monotonic() + 300
        while True:
            with stores.db.read() as db:
                states = [db.get(SleepSession, sid).state for _, sid in results]  # type: ignore[union-attr]
            if all(s == "COMPLETE" for s in states):
                break
            assert time.monotonic() < deadline, f"sessions not COMPLETE: {states}"
            time.sleep(0.5)
        recovered_in = time.monotonic() - killed_at
        expected = expected_full_night(dict(enumerate(night.mels[:EPOCHS])), EPOCHS)
        for user, sid in results:
            with stores.db.read() as db:
                seqs = sorted(db.scalars(select(Chunk.seq_num).where(Chunk.session_id == sid)))
                final = db.get(FinalResult, sid)
            assert seqs == list(range(EPOCHS)), sid
            assert final is not None
            assert (final.sleep_stages, final.snoring_stages) == expected, sid
            with ApiClient(urls[1], key, user) as api:
                report = api.get_report(sid)
            assert report.session.state == "COMPLETE" and report.session.sleep_stages == expected[0]
        # the job worker 0 held when it died runs again elsewhere (lease 15 s): every job ends done
        deadline = time.monotonic() + 180
        while True:
            with stores.db.read() as db:
                unfinished = db.execute(select(Job.id, Job.kind, Job.status).where(Job.status != "done")).all()
            if not unfinished:
                break
            assert time.monotonic() < deadline, f"jobs left: {unfinished}"
            time.sleep(0.5)
        all_done_in = time.monotonic() - killed_at
    finally:
        stores.close()
    survivor = st.workers[1].log_text()
    assert survivor.count("] succeeded") > 0
    print(
        f"all {SLEEPERS} sessions COMPLETE {recovered_in:.1f} s and every job done {all_done_in:.1f} s "
        "after worker 0 was killed"
    )


def test_two_apis_two_workers_one_killed(stack: tuple[Stack, str], night: Night) -> None:
    st, key = stack
    _night_with_faults(st, key, night)


def test_redis_restarted_and_a_worker_killed(
    tmp_path: Path, postgres_url: str, own_redis: OwnRedis, night: Night
) -> None:
    """Redis (the test's own) is killed and restarted empty mid-night: queued messages and counters are lost."""

    def restart_redis() -> None:
        own_redis.kill()
        time.sleep(3.0)  # uploads go on meanwhile (rate limits let calls through, jobs wait in the database)
        own_redis.start()

    with _running_stack(tmp_path / "stack", postgres_url, own_redis.url) as (st, key):
        _night_with_faults(st, key, night, after_kill=restart_redis)
        assert any("re-sending pending jobs" in w.log_text() for w in st.workers[1:])

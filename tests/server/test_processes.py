"""Several API processes on the embedded default (``sleeptrack serve --processes N``): one leads.

The leader lock and the job poller alone, then a real ``sleeptrack serve --processes 2``: a night uploaded
over several connections reaches COMPLETE with its webhooks, and when the leader is killed uvicorn's
replacement takes the lead and the next night completes too.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from sleeptrack.cli import app
from sleeptrack.jobs import QueuedJob
from sleeptrack.jobs._lifecycle import add_job
from sleeptrack.server import create_app
from sleeptrack.server._processes import HandedOver, JobPoller, LeaderLock
from sleeptrack.store import Job
from tests.server._live import LiveServer, create_key
from tests.server._receiver import Receiver
from tests.server.conftest import Api, Night, expected_full_night, make_keys, make_settings, mel_chunk


def test_one_process_holds_the_leader_lock(tmp_path: Path) -> None:
    first, second = LeaderLock(tmp_path / "leader.lock"), LeaderLock(tmp_path / "leader.lock")
    assert first.acquire() and first.acquire()  # taken, and still held
    assert not second.acquire()
    assert (tmp_path / "leader.lock").read_text() == f"{os.getpid()}\n"
    first.release()
    assert second.acquire()
    second.release()


def test_the_poller_queues_each_committed_pending_job_once(api: Api) -> None:
    user = api.new_user()
    sid = api.new_session(user)
    assert api.upload(sid, user, 0).status_code == 200
    api.wait()
    queued: list[QueuedJob] = []
    poller = JobPoller(api.ctx.stores, queued.extend)
    assert poller.poll_once() == 0  # what existed before it started is recover()'s business
    with api.ctx.stores.db.write() as db:  # as another API process commits them
        pending = add_job(db, "features", sid, 1)
        running = add_job(db, "realtime", sid, 9)
        running.status = "running"
        db.flush()
        pending_id = pending.id
    assert poller.poll_once() == 1
    assert [q.job_id for q in queued] == [pending_id]
    assert poller.poll_once() == 0 and len(queued) == 1
    with api.ctx.stores.db.read() as db:
        assert db.get_one(Job, pending_id).priority == queued[0].priority


def test_a_follower_leaves_its_jobs_to_the_leader(tmp_path: Path) -> None:
    """An API process that does not get the lock runs no job: its uploads are rows the leader runs."""
    settings = make_settings(tmp_path, api_processes=2)
    keys = make_keys(settings)
    holder = LeaderLock(tmp_path / "leader.lock")
    assert holder.acquire()  # the leader, as far as the app below can tell
    with TestClient(create_app(settings)) as client:
        follower = Api(client, keys, tmp_path)
        assert isinstance(follower.ctx.queue, HandedOver)
        user = follower.new_user()
        sid = follower.new_session(user)
        for seq in range(10):
            assert follower.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
        time.sleep(1.0)
        with follower.ctx.stores.db.read() as db:
            statuses = list(db.scalars(select(Job.status).where(Job.session_id == sid)))
        assert sorted(statuses) == ["pending"] * 11  # ten chunks' features and one real-time update, not run
        assert follower.client.get("/healthz").json()["result"]["jobs_queued"] == 11
        holder.release()
        with TestClient(create_app(settings)) as leader_client:  # the next process to start leads
            leader = Api(leader_client, keys, tmp_path)
            assert not isinstance(leader.ctx.queue, HandedOver)
            assert user in follower.client.get(f"/ai/v1/users/{user}", headers=follower.h()).text
            leader.wait()
            assert len(leader.report(sid, user)["session"]["sleep_stages"]) == 10  # the real-time result
            with leader.ctx.stores.db.read() as db:
                assert set(db.scalars(select(Job.status).where(Job.session_id == sid))) == {"done"}


def _night(clients: list[httpx.Client], night: Night, key: str, callback: str) -> tuple[str, str]:
    """A user and a session; the night uploaded round-robin over ``clients`` (one connection each)."""
    h = {"x-api-key": key}
    user = clients[0].post("/ai/v1/users", headers=h).json()["result"]["user_id"]
    h["x-user-id"] = user
    r = clients[1].post("/ai/v1/sessions", headers=h, json={"callback_url": callback})
    assert r.status_code == 201, r.text
    sid = r.json()["result"]["session_id"]
    end = datetime.fromisoformat(r.json()["result"]["session_start_time"]) + timedelta(seconds=30 * len(night.mels))
    for seq, body in enumerate(night.mels):
        r = clients[seq % len(clients)].post(
            f"/ai/v1/sessions/{sid}/upload", headers=h, files={"file": ("c.mel", body)}, data={"seq_num": str(seq)}
        )
        assert r.status_code == 200 and r.json()["result"]["duplicate"] is False, r.text
    r = clients[2].post(f"/ai/v1/sessions/{sid}/close", headers=h, json={"session_end_time": end.isoformat()})
    assert r.status_code == 200, r.text
    return user, sid


def _completed_night(url: str, night: Night, key: str, receiver: Receiver, count: int) -> tuple[str, dict[str, Any]]:
    """The night over four connections; its session id and report once the ``count``-th SESSION_COMPLETE came."""
    clients = [httpx.Client(base_url=url, timeout=60) for _ in range(4)]
    try:
        user, sid = _night(clients, night, key, receiver.url)
        assert receiver.wait_for(lambda r: len(r.events("SESSION_COMPLETE")) == count, 300)
        r = clients[3].get(f"/data/v3/sessions/{sid}", headers={"x-api-key": key, "x-user-id": user})
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()["result"]
        return sid, report
    finally:
        for c in clients:
            c.close()


def _roles(log: Path) -> list[tuple[int, str]]:
    return [(int(pid), role) for pid, role in re.findall(r"API process (\d+) (leads|follows)", log.read_text())]


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux: every thread's ``children`` file)."""
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def _all_gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


@pytest.mark.slow
@pytest.mark.xdist_group("live_server")
def test_two_api_processes_one_leader_and_a_new_one_when_it_dies(tmp_path: Path, night: Night) -> None:
    key = create_key(tmp_path)
    n = len(night.mels)
    stages, snoring = expected_full_night(dict(enumerate(night.mels)), n)
    receiver = Receiver().start()
    server = LiveServer(tmp_path, "--workers", "1", "--processes", "2").start()
    try:
        assert _wait(lambda: len(_roles(server.log_path)) == 2, 60), server.log_path.read_text()[-3000:]
        roles = _roles(server.log_path)
        assert sorted(role for _, role in roles) == ["follows", "leads"]
        leader = next(pid for pid, role in roles if role == "leads")
        assert (tmp_path / "leader.lock").read_text().strip() == str(leader)

        for round_ in (1, 2):
            sid, report = _completed_night(server.url, night, key["key"], receiver, round_)
            assert report["session"]["state"] == "COMPLETE"
            assert report["session"]["sleep_stages"] == stages and report["session"]["snoring_stages"] == snoring
            hooks = [e.json["data"] for e in receiver.events("INFERENCE_COMPLETE")]
            assert sorted(d["seq_num"] for d in hooks if d["session_id"] == sid) == [9 + 10 * k for k in range(n // 10)]
            if round_ == 1:  # the leader dies; uvicorn starts a replacement, which must take the lead
                workers = _children(leader)
                assert workers, "the leader runs the analysis worker processes"
                os.kill(leader, signal.SIGKILL)
                # its analysis workers end with it instead of running on, orphaned
                assert _wait(functools.partial(_all_gone, workers), 30), workers
                assert _wait(lambda: [r for p, r in _roles(server.log_path) if p != leader].count("leads") == 1, 120)
                assert (tmp_path / "leader.lock").read_text().strip() != str(leader)
    finally:
        server.stop()
        receiver.stop()


def test_several_processes_on_postgresql_need_the_scale_out_mode(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--processes", "2", "--data-dir", str(tmp_path), "--database-url", "postgresql+psycopg://u@h/db"],
    )
    assert result.exit_code != 0
    assert "several API processes on PostgreSQL need the scale-out mode" in result.output

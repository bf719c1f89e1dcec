"""The async API (reports, tracking with coroutine listeners) and the package's public surface."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sleeptrack.sdk as sdk
from sleeptrack.analysis import SAMPLES_PER_EPOCH
from sleeptrack.sdk import (
    AsleepConfig,
    AsleepErrorCode,
    AsyncReports,
    AsyncSleepTrackingManager,
    IteratorSource,
    Reports,
    ReportTimeoutError,
    RetryPolicy,
)

from ._fake_api import API_KEY, FakeApi

URL = "http://sleeptrack.test"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def config(api: FakeApi, tmp_path: Path) -> AsleepConfig:
    return AsleepConfig(API_KEY, api.user(), URL, retry=RetryPolicy(initial_delay=0.001), spool_dir=tmp_path / "s")


def _chunks(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.05 * rng.standard_normal(SAMPLES_PER_EPOCH)).astype(np.float32) for _ in range(n)]


def test_reports_and_polling(config: AsleepConfig, api: FakeApi) -> None:
    with config.client(transport=api.transport()) as c:
        sid = c.create_session().session_id
        c.upload(sid, 0, b"x")
    with Reports(config, transport=api.transport()) as reports:
        with pytest.raises(ReportTimeoutError) as info:
            reports.wait_until_complete(sid, timeout=0.3, poll_interval=0.05)
        assert info.value.last is not None and info.value.last.state == "OPEN"
        assert isinstance(info.value, TimeoutError) and info.value.code is AsleepErrorCode.ERR_REPORT_FAILED
        with config.client(transport=api.transport()) as c:
            c.close_session(sid)
        report = reports.wait_until_complete(sid, timeout=5, poll_interval=0.05)
        assert report.is_complete and report.hypnogram.n_epochs == 1
        assert [s.session_id for s in reports.get_reports("2020-01-01", "2100-01-01")] == [sid]
        assert reports.get_average_report("2025-01-01", "2025-01-31").end_date == "2025-01-31"
        assert reports.delete_report(sid) == sid
        assert reports.get_reports() == []
        reports.delete_all_reports()


def test_async_reports(config: AsleepConfig, api: FakeApi) -> None:
    async def main() -> None:
        with config.client(transport=api.transport()) as c:
            sid = c.create_session().session_id
            c.close_session(sid)
        async with AsyncReports(config, transport=api.async_transport()) as reports:
            report = await reports.wait_until_complete(sid, timeout=5)
            assert report.is_complete
            assert len(await reports.get_reports()) == 1
            assert (await reports.get_average_report("2025-01-01", "2025-01-02")).slept_sessions == []
            await reports.delete_report(sid)
            await reports.delete_all_reports()

    asyncio.run(main())


def test_async_tracking_with_coroutine_listener(config: AsleepConfig, api: FakeApi) -> None:
    events: list[tuple[str, Any]] = []

    class Listener:
        async def on_upload(self, sequence: int) -> None:
            events.append(("upload", sequence))

        def on_close(self, session_id: str) -> None:
            events.append(("close", session_id))

    async def main() -> None:
        m = AsyncSleepTrackingManager(
            config,
            Listener(),
            source=IteratorSource(_chunks(3)),
            transport=api.transport(),
            async_transport=api.async_transport(),
            realtime_every=0,
        )
        sid = await m.start()
        session = await m.request_analysis()
        assert session.id == sid
        assert await m.wait(30)
        await asyncio.sleep(0.1)  # let the scheduled callbacks run
        assert [v for n, v in events if n == "upload"] == [0, 1, 2]
        assert events[-1] == ("close", sid)
        assert m.get_tracking_status().uploaded == 3
        assert not await m.has_unfinished_session()

    asyncio.run(main())


def test_public_surface_is_complete_and_sorted() -> None:
    assert sdk.__all__ == sorted(sdk.__all__, key=lambda n: (not n.isupper(), n))
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None
    assert set(dir(sdk)) >= set(sdk.__all__)
    with pytest.raises(AttributeError):
        _ = sdk.NoSuchThing


def test_the_sdk_needs_no_server_dependencies() -> None:
    """``pip install sleeptrack`` (no extras) must be enough: importing every SDK module pulls in no server
    package."""
    code = (
        "import sys, importlib\n"
        "blocked = ('fastapi', 'sqlalchemy', 'uvicorn', 'starlette', 'alembic', 'celery', 'redis', 'pydantic')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in blocked: raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import sleeptrack.sdk as s\n"
        "for n in s.__all__: getattr(s, n)\n"
        "import sleeptrack.cli._track, sleeptrack.cli._reports_cli\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"

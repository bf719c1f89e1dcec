"""The SDK against a REAL server process (``sleeptrack serve`` on a loopback port, fresh data folder):
a short simulated night end to end, then the same night under faults — the server stopped for a stretch
of chunks, 500 answers and answers slower than the SDK's timeout (through a proxy), the tracking process
killed and restarted — each checked for stored seq_nums exactly 0..N-1 and a final report equal to the
fault-free one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sleeptrack.sdk import (
    AsleepConfig,
    AsleepErrorCode,
    CallbackListener,
    FileSource,
    Report,
    Reports,
    RetryPolicy,
    SleepTrackingManager,
    Timeouts,
    init_config,
)

from ._e2e import ROOT, SERVER_ROOT, FaultProxy, ServerProcess, create_key

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sdk-e2e"), pytest.mark.timeout(900)]

EPOCHS = 40  # a 20-minute night: long enough for real-time results and a full report, short to run
RETRY = RetryPolicy(max_attempts=5, initial_delay=0.2, max_delay=1.0)


def _server_available() -> bool:
    return (SERVER_ROOT / "sleeptrack" / "server" / "__init__.py").is_file()


@dataclass
class Env:
    server: ServerProcess
    key: str
    night: Path
    truth: Any
    tmp: Path

    def config(self, base_url: str | None = None, **kw: Any) -> AsleepConfig:
        cfg = init_config(self.key, None, base_url or self.server.url)
        return AsleepConfig(
            cfg.api_key,
            cfg.user_id,
            base_url or self.server.url,
            spool_dir=self.tmp / f"spool-{cfg.user_id}",
            retry=RETRY,
            **kw,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if not _server_available():
        pytest.skip("the server (sleeptrack.server) is not in this tree yet")
    from sleeptrack.sim import NightConfig, simulate_night

    tmp = tmp_path_factory.mktemp("e2e")
    night = tmp / "night.flac"
    truth = simulate_night(NightConfig(hours=EPOCHS / 120, seed=900_123, split="test"), night)
    data = tmp / "server-data"
    key = create_key(data)["key"]
    server = ServerProcess(data)
    server.start()
    try:
        yield Env(server, key, night, truth, tmp)
    finally:
        server.stop()


def comparable(report: Report) -> dict[str, Any]:
    """What must not change with faults: stages, snoring, peculiarities and every duration / ratio / count."""
    stat = dict(report.stat.raw) if report.stat else {}
    for key in ("sleep_time", "wake_time", "sleep_cycle_time"):
        stat.pop(key, None)  # clock times: each session starts at its own time
    return {
        "state": report.session.state.value,
        "sleep_stages": report.session.sleep_stages,
        "snoring_stages": report.session.snoring_stages,
        "peculiarities": report.peculiarities,
        "missing_data_ratio": report.missing_data_ratio,
        "stat": stat,
    }


def finish(env: Env, config: AsleepConfig, session_id: str) -> Report:
    with Reports(config) as reports:
        report = reports.wait_until_complete(session_id, timeout=300, poll_interval=0.5)
    assert env.server.stored_seq_nums(session_id) == list(range(EPOCHS))
    return report


def track(config: AsleepConfig, source: Any, **listener: Any) -> str:
    manager = SleepTrackingManager(config, CallbackListener(**listener), source=source)
    session_id = manager.start()
    assert manager.wait(600), "tracking did not finish"
    status = manager.get_tracking_status()
    assert status.state.value == "closed", status
    return session_id


@pytest.fixture(scope="module")
def reference(env: Env) -> dict[str, Any]:
    """The fault-free night."""
    config = env.config()
    started = time.monotonic()
    analyses: list[Any] = []
    sid = track(config, FileSource(env.night, speed=0), on_analysis=analyses.append)
    report = finish(env, config, sid)
    assert report.is_complete and report.hypnogram.n_epochs == EPOCHS
    assert report.stat is not None and report.stat.time_in_bed == 30 * EPOCHS
    assert report.model_version is None or report.model_version.startswith("sleeptrack")
    assert analyses, "no real-time result during tracking"
    print(f"\nfault-free night: {EPOCHS} epochs tracked and analysed in {time.monotonic() - started:.1f} s")
    return comparable(report)


def test_fault_free_night(reference: dict[str, Any], env: Env) -> None:
    stages = reference["sleep_stages"]
    assert len(stages) == EPOCHS and all(s in (0, 1, 2, 3) for s in stages)
    agree = sum(a == b for a, b in zip(stages, env.truth.hypnogram.stages.tolist(), strict=True)) / EPOCHS
    assert agree > 0.3  # a real analysis of the sound, not a constant


def test_audio_uploads_give_the_same_night(reference: dict[str, Any], env: Env) -> None:
    """AUDIO (WAV) uploads of the same sound: the server computes the very mel the SDK computes."""
    config = env.config()
    manager = SleepTrackingManager(config, source=FileSource(env.night, speed=0), inference_type="AUDIO")
    sid = manager.start()
    assert manager.wait(600)
    assert comparable(finish(env, config, sid)) == reference


def test_server_stopped_for_a_stretch(reference: dict[str, Any], env: Env) -> None:
    config = env.config()
    fails: list[AsleepErrorCode] = []
    spooled: list[int] = []
    done = threading.Event()

    def outage() -> None:
        env.server.stop()
        deadline = time.monotonic() + 60
        while len(spooled) < 22 and time.monotonic() < deadline:  # ≥ 10 chunks recorded while it is down
            time.sleep(0.05)
        env.server.start()
        done.set()

    def on_upload(seq: int) -> None:
        if seq == 9:
            threading.Thread(target=outage, daemon=True).start()

    sid = track(
        config,
        FileSource(env.night, speed=40),  # 0.75 s per epoch: recording goes on during the outage
        on_upload=on_upload,
        on_spool=spooled.append,
        on_fail=lambda code, detail: fails.append(code),
    )
    assert done.is_set()
    assert AsleepErrorCode.ERR_UPLOAD_FAILED in fails
    assert comparable(finish(env, config, sid)) == reference


def test_500_and_slow_answers(reference: dict[str, Any], env: Env) -> None:
    def fault(method: str, path: str, n: int) -> str | None:
        if path.endswith("/upload"):
            if n in (5, 6, 7):
                return "500"
            if n in (12, 20):
                return "slow:2.5"  # the server stores the chunk, the SDK stops waiting after 1 s and retries
        if path.endswith("/close") and n == 0:
            return "500"
        return None

    proxy = FaultProxy(env.server.url, fault)
    try:
        config = env.config(proxy.url, timeouts=Timeouts(read=1.0))
        fails: list[AsleepErrorCode] = []
        sid = track(config, FileSource(env.night, speed=0), on_fail=lambda code, detail: fails.append(code))
    finally:
        proxy.close()
    uploads = [entry for entry in proxy.log if entry[1].endswith("/upload")]
    # every chunk at least once, plus the three 500s and the two held answers (more when the loaded machine
    # answers a normal upload slower than the 1-s timeout: those are retried too, and stored once)
    assert len(uploads) >= EPOCHS + 3 + 2
    assert AsleepErrorCode.ERR_UPLOAD_SERVER_ERROR in fails and AsleepErrorCode.ERR_UPLOAD_FAILED in fails
    assert AsleepErrorCode.ERR_CLOSE_SERVER_ERROR in fails
    assert comparable(finish(env, replace(config, base_url=env.server.url), sid)) == reference


def test_tracking_process_killed_and_restarted(reference: dict[str, Any], env: Env) -> None:
    """``sleeptrack track FILE`` SIGKILLed mid-night; the same command again continues the session."""
    config = env.config()
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    cli_env.update(
        PYTHONPATH=str(ROOT),
        SLEEPTRACK_API_KEY=config.api_key,
        SLEEPTRACK_USER_ID=config.user_id,
        SLEEPTRACK_SERVER=config.base_url,
        SLEEPTRACK_SPOOL_DIR=str(config.spool_dir),
        SLEEPTRACK_CONFIG=str(env.tmp / "no-config.toml"),
    )
    command = [sys.executable, "-m", "sleeptrack", "track", str(env.night), "--plain", "--no-report"]
    first = subprocess.Popen([*command, "--speed", "30"], env=cli_env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        sid = None
        while time.monotonic() < deadline:
            with config.client() as api:
                opened = api.open_session()
            if opened is not None and opened.received_seq_nums_count >= 12:
                sid = opened.session_id
                break
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.2)
        assert sid is not None, "the first run did not get going"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    with config.client() as api:
        opened = api.open_session()
    assert opened is not None and opened.session_id == sid and opened.received_seq_nums_count < EPOCHS
    second = subprocess.run(
        [*command, "--speed", "0"], env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stderr
    assert f"continuing unfinished session {sid}" in second.stderr.replace("\n", " ")
    assert comparable(finish(env, config, sid)) == reference


def _cli(env: Env, config: AsleepConfig, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    cli_env.update(
        PYTHONPATH=str(ROOT),
        SLEEPTRACK_CONFIG=str(env.tmp / "no-config.toml"),
        SLEEPTRACK_SPOOL_DIR=str(config.spool_dir),
        COLUMNS="100",
    )
    command = [sys.executable, "-m", "sleeptrack", *args]
    command += ["--server", config.base_url, "--api-key", config.api_key, "--user-id", config.user_id]
    return subprocess.run(command, env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_cli_track_with_stop_at_then_report_sessions_average(env: Env) -> None:
    """``track --simulate`` stopped by ``--stop-at``, then the report commands on that session."""
    import json
    from datetime import UTC, datetime, timedelta

    config = env.config()
    stop = (datetime.now(UTC) + timedelta(seconds=45)).isoformat(timespec="seconds")  # CLI start-up included
    out = _cli(env, config, "track", "--simulate", "2", "--speed", "20", "--plain", "--stop-at", stop)
    assert out.returncode == 0, out.stderr
    sid = re.search(r"session (\d{14}_\w{5}) closed", out.stdout)
    assert sid is not None, out.stdout
    session_id = sid.group(1)
    chunks = env.server.stored_seq_nums(session_id)
    assert 1 <= len(chunks) < 240 and chunks == list(range(len(chunks)))  # stopped long before the night's end
    assert "Sleep statistics" in out.stdout or "not analysable" in out.stdout
    assert "Agreement with the truth" in out.stdout

    report = _cli(env, config, "report", session_id, "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["session"]["id"] == session_id and len(data["session"]["sleep_stages"]) == len(chunks)
    shown = _cli(env, config, "report", session_id)
    assert shown.returncode == 0 and f"Session {session_id}" in shown.stdout

    listed = _cli(env, config, "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["session_id"] for s in json.loads(listed.stdout)] == [session_id]
    table = _cli(env, config, "sessions")
    assert session_id in table.stdout

    today = datetime.now(UTC).date()
    avg = _cli(env, config, "average", "--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1)))
    assert avg.returncode == 0, avg.stderr
    bad = _cli(env, config, "average", "--from", "2025-01-01", "--to", "2025-12-31")
    assert bad.returncode == 1 and "ERR_AVERAGE_REPORT_BAD_REQUEST" in bad.stderr
    missing = _cli(env, config, "report", "20250101000000_abcde")
    assert missing.returncode == 1 and "ERR_REPORT_NOT_FOUND" in missing.stderr


def test_ctrl_c_closes_the_session_cleanly(env: Env) -> None:
    """SIGINT (Ctrl-C) during ``sleeptrack track``: recording stops, the rest is uploaded, the session closed."""
    config = env.config()
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    cli_env.update(PYTHONPATH=str(ROOT), SLEEPTRACK_CONFIG=str(env.tmp / "no-config.toml"))
    command = [sys.executable, "-m", "sleeptrack", "track", str(env.night), "--speed", "30", "--plain"]
    command += ["--no-report", "--server", config.base_url, "--api-key", config.api_key]
    command += ["--user-id", config.user_id, "--spool-dir", str(config.spool_dir)]
    proc = subprocess.Popen(command, env=cli_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        sid = None
        while time.monotonic() < deadline and proc.poll() is None:
            with config.client() as api:
                opened = api.open_session()
            if opened is not None and opened.received_seq_nums_count >= 5:
                sid = opened.session_id
                break
            time.sleep(0.2)
        assert sid is not None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"session {sid} closed" in stdout
    stored = env.server.stored_seq_nums(sid)
    assert 5 <= len(stored) < EPOCHS and stored == list(range(len(stored)))
    with Reports(config) as reports:
        report = reports.get_report(sid)
    assert report.session.state.value in ("CLOSED", "COMPLETE")
    assert report.session.end_time is not None and report.session.unexpected_end_time is None
    assert (report.session.end_time - report.session.start_time).total_seconds() == 30 * len(stored)

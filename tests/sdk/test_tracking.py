"""The tracking manager against the in-process API double: listeners, order, faults, continue, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from sleeptrack.analysis import SAMPLES_PER_EPOCH, decode_chunk
from sleeptrack.sdk import (
    ApiStatusError,
    AsleepConfig,
    AsleepErrorCode,
    AudioSource,
    AudioSourceError,
    CallbackListener,
    FileSource,
    InferenceType,
    IteratorSource,
    MicrophoneSource,
    RetryPolicy,
    SleepTrackingManager,
    Spool,
    TrackingListener,
    TrackingState,
)

from ._fake_api import API_KEY, FakeApi, FakeSession
from ._fake_sounddevice import FakeSoundDevice, tone

URL = "http://sleeptrack.test"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.02)
pytestmark = pytest.mark.timeout(120)


class Recorder(TrackingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def _add(self, name: str, value: Any = None) -> None:
        with self.lock:
            self.events.append((name, value))

    def on_create(self) -> None:
        self._add("create")

    def on_start(self, session_id: str) -> None:
        self._add("start", session_id)

    def on_spool(self, sequence: int) -> None:
        self._add("spool", sequence)

    def on_upload(self, sequence: int) -> None:
        self._add("upload", sequence)

    def on_close(self, session_id: str) -> None:
        self._add("close", session_id)

    def on_fail(self, error_code: AsleepErrorCode, detail: str) -> None:
        self._add("fail", error_code)

    def on_interrupt(self) -> None:
        self._add("interrupt")

    def on_resume(self) -> None:
        self._add("resume")

    def on_analysis(self, session: Any) -> None:
        self._add("analysis", len(session.sleep_stages or []))

    def of(self, name: str) -> list[Any]:
        with self.lock:
            return [v for n, v in self.events if n == name]

    def names(self) -> list[str]:
        with self.lock:
            return [n for n, _ in self.events]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def config(api: FakeApi, tmp_path: Path) -> AsleepConfig:
    return AsleepConfig(API_KEY, api.user(), URL, retry=FAST, spool_dir=tmp_path / "spool")


def noise(n_chunks: int, seed: int = 0, block: int = 40_000) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    total = n_chunks * SAMPLES_PER_EPOCH
    for start in range(0, total, block):
        yield (0.05 * rng.standard_normal(min(block, total - start))).astype(np.float32)


def night_file(path: Path, n_chunks: int, seed: int = 0) -> Path:
    sf.write(path, np.concatenate(list(noise(n_chunks, seed))), 16_000, subtype="PCM_16")
    return path


def _seconds(s: FakeSession) -> float:
    assert s.end is not None
    return (s.end - s.start).total_seconds()


def manager(config: AsleepConfig, api: FakeApi, source: AudioSource, listener: TrackingListener, **kw: Any) -> Any:
    return SleepTrackingManager(config, listener, source=source, transport=api.transport(), **kw)


def test_tracks_a_night_in_order(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    rec = Recorder()
    m = manager(config, api, FileSource(night_file(tmp_path / "n.wav", 5), speed=0), rec, realtime_every=2)
    sid = m.start()
    assert m.wait(60)
    s = api.only_session()
    assert s.session_id == sid and s.order == [0, 1, 2, 3, 4] and s.uploads == 5
    assert rec.of("upload") == [0, 1, 2, 3, 4] and rec.of("spool") == [0, 1, 2, 3, 4]
    names = rec.names()
    assert names[:2] == ["create", "start"] and names[-1] == "close" and names.count("close") == 1
    assert "fail" not in names
    assert rec.of("analysis") and max(rec.of("analysis")) >= 2
    # a replayed file closes on its own timeline: start + 5 × 30 s
    assert _seconds(s) == 150
    status = m.get_tracking_status()
    assert status.state is TrackingState.CLOSED and status.uploaded == 5 and status.pending == 0
    assert Spool(config.spool_dir).journals() == []
    assert api.only_session().chunks[0].startswith(b"STMEL")  # the on-device mel spectrogram, not audio


def test_audio_uploads(config: AsleepConfig, api: FakeApi) -> None:
    chunks = list(noise(2, seed=3))
    m = manager(config, api, IteratorSource(chunks), Recorder(), inference_type="AUDIO", audio_format="flac")
    m.start()
    assert m.wait(60)
    s = api.only_session()
    assert s.inference_type == "AUDIO"
    first = np.concatenate(chunks)[:SAMPLES_PER_EPOCH]
    np.testing.assert_allclose(decode_chunk(s.chunks[0]), first, atol=1 / 32768 + 1e-7)
    assert m.inference_type is InferenceType.AUDIO


def test_transient_failures_lose_and_duplicate_nothing(config: AsleepConfig, api: FakeApi) -> None:
    rec = Recorder()
    api.inject("/upload", FakeApi.status(500, "internal server error"), times=2)
    api.inject("/upload", FakeApi.raises(httpx.ConnectError), times=2)
    api.inject("/upload", FakeApi.raises(httpx.ReadTimeout))
    api.inject("/upload", FakeApi.status(403, "Rate limit exceeded", {"Retry-After": "0.2"}))
    api.inject("/close", FakeApi.status(503, "unavailable"))
    m = manager(config, api, IteratorSource(noise(4)), rec)
    m.start()
    assert m.wait(60)
    s = api.only_session()
    assert s.order == [0, 1, 2, 3] and s.state == "COMPLETE"
    assert rec.of("upload") == [0, 1, 2, 3] and rec.names().count("close") == 1
    # ERR_UPLOAD_* is reported once per outage; tracking went on
    assert rec.of("fail")[0] is AsleepErrorCode.ERR_UPLOAD_SERVER_ERROR
    assert AsleepErrorCode.ERR_CLOSE_SERVER_ERROR in rec.of("fail")
    assert m.get_tracking_status().state is TrackingState.CLOSED


def test_lost_close_answer_counts_as_closed(config: AsleepConfig, api: FakeApi) -> None:
    def close_then_lose(request: httpx.Request) -> httpx.Response:
        api._route(request)  # the server closes the session ...
        raise httpx.ReadError("connection reset", request=request)  # ... but the answer is lost

    api.inject("/close", close_then_lose)
    rec = Recorder()
    m = manager(config, api, IteratorSource(noise(1)), rec)
    m.start()
    assert m.wait(60)
    assert m.get_tracking_status().state is TrackingState.CLOSED and rec.names().count("close") == 1


def test_session_gone_stops_tracking(config: AsleepConfig, api: FakeApi) -> None:
    rec = Recorder()
    api.inject("/upload", lambda r: None)  # first upload passes
    api.inject("/upload", FakeApi.status(404, "session does not exist."))
    m = manager(config, api, IteratorSource(noise(30)), rec)
    m.start()
    assert m.wait(60)
    assert AsleepErrorCode.ERR_UPLOAD_NOT_FOUND in rec.of("fail")
    assert rec.names()[-1] == "close"
    assert m.get_tracking_status().state is TrackingState.FAILED
    assert api.only_session().order == [0]
    assert Spool(config.spool_dir).journals() == []


def test_expired_plan_stops_and_keeps_the_spool(config: AsleepConfig, api: FakeApi) -> None:
    rec = Recorder()
    api.inject("/upload", FakeApi.status(403, "Plan is expired"))
    api.inject("/close", FakeApi.status(403, "Plan is expired"))
    m = manager(config, api, IteratorSource(noise(3)), rec)
    m.start()
    assert m.wait(60)
    assert rec.of("fail")[0] is AsleepErrorCode.ERR_COMMON_EXPIRED
    assert m.get_tracking_status().state is TrackingState.FAILED
    kept = Spool(config.spool_dir).journals()
    assert len(kept) == 1 and kept[0].pending()  # waits for a renewed plan: nothing lost


def test_refused_chunk_is_skipped(config: AsleepConfig, api: FakeApi) -> None:
    rec = Recorder()
    api.inject("/upload", lambda r: None)
    api.inject("/upload", FakeApi.status(422, "Invalid seq_num (seq_num starts from 0)"))
    m = manager(config, api, IteratorSource(noise(3)), rec)
    m.start()
    assert m.wait(60)
    assert api.only_session().order == [0, 2]
    assert rec.of("fail") == [AsleepErrorCode.ERR_UPLOAD_UNPROCESSABLE]
    assert m.get_tracking_status().state is TrackingState.CLOSED


def test_conflict_then_close_the_unfinished_one(config: AsleepConfig, api: FakeApi) -> None:
    with config.client(transport=api.transport()) as c:
        old = c.create_session().session_id
        c.upload(old, 0, b"x")
        c.upload(old, 1, b"x")
    rec = Recorder()
    m = manager(config, api, IteratorSource(noise(1)), rec)
    with pytest.raises(ApiStatusError) as info:
        m.start()
    assert info.value.code is AsleepErrorCode.ERR_CREATE_CONFLICT and rec.of("fail") == [info.value.code]
    assert m.has_unfinished_session()
    (u,) = m.unfinished_sessions()
    assert (u.session_id, u.where, u.next_seq) == (old, "server", 2)
    assert m.close_unfinished_session(timeout=30) == old
    s = api.sessions[old]
    assert s.state == "COMPLETE" and s.unexpected_end is not None and _seconds(s) == 60
    assert not m.has_unfinished_session()
    m.start()  # now a new night can start
    assert m.wait(60)


def _crash_midway(config: AsleepConfig, api: FakeApi, source: AudioSource, spooled: int) -> str:
    """Track until ``spooled`` chunks are spooled with the network down, then die without closing."""
    api.inject("/upload", FakeApi.raises(httpx.ConnectError), times=10_000)
    rec = Recorder()
    m = manager(config, api, source, rec)
    sid = m.start()
    deadline = time.monotonic() + 60
    while len(rec.of("spool")) < spooled and time.monotonic() < deadline:
        time.sleep(0.01)
    m.abort()
    api.faults.clear()
    assert api.sessions[sid].state == "OPEN"
    return str(sid)


def test_continue_session_after_a_crash(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    path = night_file(tmp_path / "n.wav", 6, seed=1)
    sid = _crash_midway(config, api, FileSource(path, speed=300), spooled=3)
    rec = Recorder()
    m = manager(config, api, FileSource(path, speed=0), rec)
    assert m.has_unfinished_session()
    (u,) = m.unfinished_sessions()
    assert u.where == "spool" and u.state == "open" and 3 <= u.pending_chunks < 6
    with pytest.raises(ValueError, match="same source"):
        manager(config, api, FileSource(night_file(tmp_path / "other.wav", 6), speed=0), rec).continue_session()
    assert m.continue_session() == sid
    assert m.wait(60)
    s = api.sessions[sid]
    assert s.order == [0, 1, 2, 3, 4, 5] and s.state == "COMPLETE"
    assert _seconds(s) == 180
    # the chunks equal a fault-free run's
    reference = FakeApi()
    cfg2 = AsleepConfig(API_KEY, reference.user(), URL, retry=FAST, spool_dir=tmp_path / "spool2")
    m2 = manager(cfg2, reference, FileSource(path, speed=0), Recorder())
    m2.start()
    assert m2.wait(60)
    assert reference.only_session().chunks == s.chunks


def test_close_unfinished_from_the_spool(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    path = night_file(tmp_path / "n.wav", 4)
    sid = _crash_midway(config, api, FileSource(path, speed=300), spooled=2)
    rec = Recorder()
    m = manager(config, api, FileSource(path, speed=0), rec)
    assert m.close_unfinished_session(timeout=30) == sid
    s = api.sessions[sid]
    assert s.state == "COMPLETE" and s.unexpected_end is not None
    assert s.order == list(range(len(s.order))) and len(s.order) >= 2
    assert rec.names()[-1] == "close" and not m.has_unfinished_session()


def test_continue_an_open_session_known_only_to_the_server(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    path = night_file(tmp_path / "n.wav", 4, seed=2)
    with config.client(transport=api.transport()) as c:
        sid = c.create_session().session_id
        c.upload(sid, 0, b"from another device")
    m = manager(config, api, FileSource(path, speed=0), Recorder())
    assert m.continue_session() == sid
    assert m.wait(60)
    assert api.sessions[sid].order == [0, 1, 2, 3]
    assert api.sessions[sid].chunks[0] == b"from another device"


def test_stop_midway(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    rec = Recorder()
    m = manager(config, api, FileSource(night_file(tmp_path / "n.wav", 20), speed=100), rec)  # 0.3 s per epoch
    m.start()
    deadline = time.monotonic() + 30
    while len(rec.of("upload")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert m.stop(timeout=30) == m.get_tracking_status().session_id or m.get_tracking_status().state
    s = api.only_session()
    n = len(s.order)
    assert 2 <= n < 20 and s.order == list(range(n)) and _seconds(s) == 30 * n
    assert m.get_tracking_status().state is TrackingState.CLOSED


def test_silence_is_reported(config: AsleepConfig, api: FakeApi) -> None:
    chunks = [np.zeros(SAMPLES_PER_EPOCH, np.float32), *noise(1)]
    rec = Recorder()
    m = manager(config, api, IteratorSource(chunks), rec)
    m.start()
    assert m.wait(60)
    assert rec.of("fail") == [AsleepErrorCode.ERR_AUDIO_SILENCED, AsleepErrorCode.ERR_AUDIO_UNSILENCED]
    assert api.only_session().order == [0, 1]


class _Broken(AudioSource):
    live = False

    def blocks(self, start_epoch: int = 0) -> Iterator[np.ndarray]:
        yield np.zeros(SAMPLES_PER_EPOCH + 5, np.float32) + 0.01
        raise AudioSourceError(AsleepErrorCode.ERR_AUDIO, "decoder exploded")


def test_audio_failure_stops_and_closes(config: AsleepConfig, api: FakeApi) -> None:
    rec = Recorder()
    m = manager(config, api, _Broken(), rec)
    m.start()
    assert m.wait(60)
    assert rec.of("fail") == [AsleepErrorCode.ERR_AUDIO]
    assert api.only_session().state == "COMPLETE" and api.only_session().order == [0]
    assert m.get_tracking_status().state is TrackingState.FAILED


def test_microphone_interruption_and_resume(config: AsleepConfig, api: FakeApi) -> None:
    sd = FakeSoundDevice(tone(300), native_rate=16_000, stall_after=120)  # 60 s of audio, then a hang
    rec = Recorder()
    mic = MicrophoneSource(sd=sd, block_seconds=0.5, stall_seconds=0.3)
    m = manager(config, api, mic, rec, resume_interval=0.1)
    m.start()
    deadline = time.monotonic() + 60
    while len(rec.of("upload")) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    m.stop(timeout=30)
    names = rec.names()
    assert "interrupt" in names and "resume" in names
    assert names.index("interrupt") < names.index("resume")
    assert len(sd.opened) >= 2
    s = api.only_session()
    assert s.order == sorted(s.order) and len(s.order) >= 4


def test_callback_listener_and_listener_errors(config: AsleepConfig, api: FakeApi) -> None:
    uploads: list[int] = []

    def boom(seq: int) -> None:
        raise RuntimeError("listener bug")

    with pytest.raises(TypeError):
        CallbackListener(on_nothing=print)
    m = manager(config, api, IteratorSource(noise(2)), CallbackListener(on_upload=uploads.append, on_spool=boom))
    m.start()
    assert m.wait(60)
    assert uploads == [0, 1]  # a failing callback does not break tracking


def test_request_analysis_and_status(config: AsleepConfig, api: FakeApi, tmp_path: Path) -> None:
    m = manager(config, api, FileSource(night_file(tmp_path / "n.wav", 3), speed=50), Recorder(), realtime_every=0)
    assert m.get_tracking_status().session_id is None
    m.start()
    with pytest.raises(RuntimeError):
        m.start()
    deadline = time.monotonic() + 30
    while m.get_tracking_status().uploaded < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    session = m.request_analysis()
    assert session.id == m.session_id and session.sleep_stages
    assert m.get_tracking_status().latest == session
    assert m.wait(60)

"""A running app (in-process test client, analysis in a worker thread) with keys on several plans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from sleeptrack.analysis import encode_mel_chunk
from sleeptrack.server import ServerContext, create_app
from sleeptrack.store import Chunk, Settings, SleepSession, create_api_key, open_stores
from tests.db_fixtures import database_url
from tests.server._receiver import Receiver

__all__ = ["database_url"]

PLANS = """
[plans.ratelimited]
rate_limit = 3

[plans.quota3]
quota = 3

[plans.ended]
expires_on = 2020-01-01

[plans.unlimited]
"""


def mel_chunk(seed: int = 0, frames: int = 3001) -> bytes:
    """A MELSPECTROGRAM upload body (random room-noise-like levels)."""
    rng = np.random.default_rng(seed)
    mel = rng.normal(-70.0, 6.0, (frames, 64)).astype(np.float32)
    return encode_mel_chunk(mel)


MEL = mel_chunk()


@dataclass
class Api:
    """The test client plus named keys: adv (test env), live (same account, live env), basic, other account."""

    client: TestClient
    keys: dict[str, str]
    data_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ctx(self) -> ServerContext:
        ctx: ServerContext = self.client.app.state.ctx  # type: ignore[attr-defined]
        return ctx

    def h(self, key: str = "adv", user: str | None = None, tz: str | None = None) -> dict[str, str]:
        headers = {"x-api-key": self.keys[key]}
        if user is not None:
            headers["x-user-id"] = user
        if tz is not None:
            headers["timezone"] = tz
        return headers

    def new_user(self, key: str = "adv") -> str:
        r = self.client.post("/ai/v1/users", headers=self.h(key))
        assert r.status_code == 201, r.text
        return str(r.json()["result"]["user_id"])

    def new_session(self, user: str, key: str = "adv", tz: str | None = None, **body: Any) -> str:
        r = self.client.post("/ai/v1/sessions", headers=self.h(key, user, tz), json=body or None)
        assert r.status_code == 201, r.text
        return str(r.json()["result"]["session_id"])

    def upload(self, sid: str, user: str, seq: int | str, data: bytes = MEL, key: str = "adv", **form: str) -> Response:
        response: Response = self.client.post(
            f"/ai/v1/sessions/{sid}/upload",
            headers=self.h(key, user),
            files={"file": ("chunk.bin", data, "application/octet-stream")},
            data={"seq_num": str(seq), **form},
        )
        return response

    def close(self, sid: str, user: str, key: str = "adv", tz: str | None = None, **body: Any) -> Response:
        response: Response = self.client.post(
            f"/ai/v1/sessions/{sid}/close", headers=self.h(key, user, tz), json=body or None
        )
        return response

    def report(self, sid: str, user: str, key: str = "adv", tz: str | None = None) -> dict[str, Any]:
        r = self.client.get(f"/data/v3/sessions/{sid}", headers=self.h(key, user, tz))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()["result"]
        return result

    def wait(self, timeout: float = 120.0) -> None:
        assert self.ctx.wait_idle(timeout), "jobs or webhooks still pending"

    def chunk_keys(self, user: str) -> list[str]:
        """The blob keys of the user's chunks, oldest first (read before a deletion, to check it deleted them)."""
        with self.ctx.stores.db.read() as db:
            query = select(Chunk.blob_key).join(SleepSession, SleepSession.id == Chunk.session_id)
            return list(db.scalars(query.where(SleepSession.user_id == user).order_by(Chunk.received_at)))

    def kept_bytes(self) -> int:
        """Disk space taken by the chunks stored (the bytes of a deleted, refused or duplicate one are freed)."""
        return sum(p.stat().st_blocks * 512 for p in (self.data_dir / "blobs").rglob("*") if p.is_file())


def make_settings(data_dir: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "plans.toml").write_text(PLANS)
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "worker_mode": "thread",
        "workers": 1,
        "webhook_backoff": 0.2,
        "webhook_backoff_max": 1.0,
        "webhook_max_attempts": 4,
        "webhook_timeout": 5.0,
        "fsync_blobs": False,
        "sqlite_synchronous": "NORMAL",
    }
    if database_url is not None:
        values["database_url"] = database_url
    values.update(overrides)
    return Settings(**values)


def make_keys(settings: Settings) -> dict[str, str]:
    stores = open_stores(settings)
    plans = stores.plans
    specs = {
        "adv": ("test", "advanced", "dev@example.com"),
        "adv2": ("test", "advanced", "dev@example.com"),
        "live": ("live", "advanced", "dev@example.com"),
        "basic": ("test", "basic", "dev@example.com"),
        "other": ("test", "advanced", "someone@example.com"),
        "ratelimited": ("test", "ratelimited", "dev@example.com"),
        "quota3": ("test", "quota3", "dev@example.com"),
        "ended": ("test", "ended", "dev@example.com"),
        "unlimited": ("test", "unlimited", "dev@example.com"),
    }
    keys = {}
    with stores.db.write() as s:
        for name, (env, plan, email) in specs.items():
            keys[name] = create_api_key(s, environment=env, plan=plans[plan], account_email=email, name=name).key
    stores.close()
    return keys


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("server")
    settings = make_settings(data_dir)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield Api(client, keys, data_dir)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@dataclass(frozen=True)
class Night:
    """A short simulated night as MELSPECTROGRAM uploads, with its truth."""

    mels: list[bytes]
    stages: list[int]


@pytest.fixture(scope="session")
def night(request: pytest.FixtureRequest) -> Night:
    """30 minutes of simulated night (60 chunks), simulated once and kept in pytest's cache folder.

    Results are always computed from these chunks, so a cached night from an older simulator is still valid.
    """
    from sleeptrack.analysis import MEL_VERSION, mel_spectrogram
    from sleeptrack.sim import NightConfig, NightSimulator

    folder = Path(request.config.cache.mkdir(f"sleeptrack-night-{MEL_VERSION}"))
    stored = sorted(folder.glob("*.mel"))
    truth = folder / "stages.json"
    if len(stored) == 60 and truth.exists():
        return Night([p.read_bytes() for p in stored], json.loads(truth.read_text()))
    config = NightConfig(hours=0.5, seed=900_321, split="test", start_time="2025-01-15T23:30:00")
    sim = NightSimulator(config)
    mels = [encode_mel_chunk(mel_spectrogram(epoch)) for epoch in sim.iter_epochs()]
    stages = [int(v) for v in sim.truth.hypnogram.stages]
    for i, body in enumerate(mels):
        (folder / f"{i:04d}.mel").write_bytes(body)
    truth.write_text(json.dumps(stages))
    return Night(mels, stages)


def expected_full_night(mels: dict[int, bytes], n_epochs: int, scheme: str = "4-stage") -> tuple[list[int], list[int]]:
    """What the final report must hold: the engine's full-night result on these chunks, computed here."""
    from sleeptrack.analysis import StageScheme, decode_mel_chunk, load_engine

    engine = load_engine()
    features = np.zeros((n_epochs, engine.n_features), np.float32)
    valid = np.zeros(n_epochs, bool)
    for seq, body in mels.items():
        if seq < n_epochs:
            features[seq] = engine.chunk_features(decode_mel_chunk(body))
            valid[seq] = True
    result = engine.full_night(features, valid, StageScheme(scheme))
    return result.stages.tolist(), result.snoring.tolist()

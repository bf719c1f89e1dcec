"""API keys: compared in constant time, never logged (every record of a busy run captured), never stored in clear."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from sleeptrack._logging import JsonFormatter
from sleeptrack.server import create_app
from tests.server._live import free_port
from tests.server._receiver import Receiver
from tests.server.conftest import make_keys, make_settings, mel_chunk


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("sleeptrack", "uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "httpcore", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "httpx", "httpcore", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_keys_never_logged_nor_stored_in_clear(
    tmp_path: Path, everything_logged: pytest.LogCaptureFixture, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path / "data", log_level="DEBUG")
    keys = make_keys(settings)
    key = keys["adv"]
    port = free_port()
    # log_config=None: uvicorn's own loggers (access log included) propagate to the capture
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=True, log_level="debug"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            h = {"x-api-key": key}
            user = c.post("/ai/v1/users", headers=h).json()["result"]["user_id"]
            uh = {**h, "x-user-id": user}
            sid = c.post("/ai/v1/sessions", headers=uh, json={"callback_url": receiver.url}).json()["result"]
            sid = sid["session_id"]
            for seq in range(10):
                r = c.post(
                    f"/ai/v1/sessions/{sid}/upload",
                    headers=uh,
                    files={"file": ("c", mel_chunk(seq), "application/octet-stream")},
                    data={"seq_num": str(seq)},
                )
                assert r.status_code == 200
            # failures that log: a wrong key with the right prefix, a key in the query string, bad input
            assert c.get("/data/v1/sessions", headers={"x-api-key": key[:-4] + "AAAA"}).status_code == 401
            assert c.get(f"/data/v1/sessions?api_key={key}", headers={"x-user-id": user}).status_code == 401
            c.post(f"/ai/v1/sessions/{sid}/upload", headers=uh, files={"file": ("c", b"junk")}, data={"seq_num": "10"})
            assert receiver.wait_for(lambda r: len(r.events()) == 1, 60)  # the webhook carried the key
            assert receiver.events()[0].headers["x-api-key"] == key
            assert c.post(f"/ai/v1/sessions/{sid}/close", headers=uh).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    records = everything_logged.records
    assert len(records) > 20, "the capture saw the run"
    assert any(r.name == "uvicorn.access" for r in records), "the access log was captured"
    formatter = JsonFormatter()
    leaked = [r for r in records if key[12:] in formatter.format(r) or key[12:] in str(r.__dict__)]
    # the query string one: the access log prints the path with its query; the key there was the caller's choice
    leaked = [r for r in leaked if "api_key=" not in r.getMessage()]
    assert leaked == [], [formatter.format(r) for r in leaked]
    # nothing on disk holds the key (database with its WAL, blobs, settings): only its hash and prefix
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert key[12:].encode() not in path.read_bytes(), path


def test_key_hashes_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch, api: object) -> None:
    from tests.server.conftest import Api

    assert isinstance(api, Api)
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # _keys calls hmac.compare_digest
    api.ctx.auth.forget()
    key = api.keys["adv"]
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")  # same public prefix, so a stored hash is compared
    assert api.client.get("/data/v1/sessions", headers={"x-api-key": wrong, "x-user-id": "G-x"}).status_code == 401
    assert calls, "the stored hash was compared with hmac.compare_digest"
    calls.clear()
    api.ctx.auth.forget()
    assert api.client.post("/ai/v1/users", headers={"x-api-key": key}).status_code == 201
    assert calls

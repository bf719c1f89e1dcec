"""Callback URLs: private / loopback / link-local targets refused by default; deliveries bounded in time and size."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from sleeptrack.server import create_app
from sleeptrack.store import SleepSession, Webhook
from sleeptrack.webhooks import WebhookSender, callback_url_problem, delivery_problem
from tests.server._receiver import Receiver
from tests.server.conftest import Api, make_keys, make_settings, mel_chunk

REFUSED = [
    "http://127.0.0.1:8000/hook",
    "http://127.8.9.10/",
    "http://localhost:8000/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://10.1.2.3/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0:80/",
    "http://[::1]:8000/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f.0.0.1/hook",
    "http://0177.0.0.1/hook",
    "http://224.0.0.1/hook",
]
MALFORMED = [
    "",
    "example.com/hook",
    "ftp://example.com/hook",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "http:///hook",
    "http://user:secret@example.com/hook",
    "http://exa mple.com/hook",
    "http://example.com/\nhook",
    "http://example.com:99999/hook",
    "http://[::1/hook",
    "https://example.com/" + "a" * 2100,
]
ACCEPTED = ["https://example.com/hook", "http://93.184.216.34:8080/x?y=1", "https://[2606:4700:4700::1111]/hook"]


@pytest.mark.parametrize("url", REFUSED)
def test_private_targets_refused_unless_allowed(url: str) -> None:
    problem = callback_url_problem(url, allow_private=False)
    assert problem is not None and "SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS" in problem
    assert callback_url_problem(url, allow_private=True) is None


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_refused_even_when_private_allowed(url: str) -> None:
    assert callback_url_problem(url, allow_private=True) is not None
    assert callback_url_problem(url, allow_private=False) is not None


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_targets_accepted(url: str) -> None:
    assert callback_url_problem(url, allow_private=False) is None


def test_delivery_resolves_names_and_refuses_private_answers() -> None:
    """A name that is not 'localhost' but resolves to a non-public address is refused when delivering."""
    candidates = ["ip6-localhost", "ip6-loopback", socket.gethostname()]
    name = None
    for candidate in candidates:
        try:
            socket.getaddrinfo(candidate, 80)
        except OSError:
            continue
        name = candidate
        break
    if name is None:
        pytest.skip("no local host name resolves on this machine")
    url = f"http://{name}:9/hook"
    assert callback_url_problem(url, allow_private=False) is None  # names are not resolved on acceptance
    problem = delivery_problem(url, allow_private=False)
    assert problem is not None and "resolves to" in problem
    assert delivery_problem(url, allow_private=True) is None
    assert delivery_problem("http://127.0.0.1:9/", allow_private=False) is not None
    assert delivery_problem("http://no-such-host.invalid/hook", allow_private=False) is not None


# --------------------------------------------------------------------------------- through the API
@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server with the default policy: private callback targets refused."""
    settings = make_settings(tmp_path_factory.mktemp("strict"), allow_private_callbacks=False)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield Api(client, keys, settings.data_dir)


def test_api_refuses_private_callbacks(strict_api: Api) -> None:
    api = strict_api
    user = api.new_user()
    for url in ["http://127.0.0.1:8080/hook", "http://169.254.169.254/", "http://[::1]/x", "http://localhost/"]:
        r = api.client.post("/ai/v1/sessions", headers=api.h(user=user), json={"callback_url": url})
        assert (r.status_code, r.json()) == (400, {"detail": "Invalid callback url", "result": None}), url
    sid = api.new_session(user, callback_url="https://example.com/hook")
    assert api.upload(sid, user, 0).status_code == 200
    r = api.upload(sid, user, 1, callback_url="http://10.0.0.7/hook")
    assert (r.status_code, r.json()["detail"]) == (400, "Invalid callback url")
    r = api.close(sid, user, callback_url="http://192.168.0.1/hook")
    assert (r.status_code, r.json()["detail"]) == (400, "Invalid callback url")
    with api.ctx.stores.db.read() as db:
        s = db.get(SleepSession, sid)
        assert s is not None and s.callback_url == "https://example.com/hook" and s.state == "OPEN"
        assert s.received_count == 1  # the refused upload stored nothing
    assert api.close(sid, user).status_code == 200


def test_sender_refuses_a_private_target_that_got_into_the_outbox(strict_api: Api, receiver: Receiver) -> None:
    """Defence in depth: a row pointing at loopback (e.g. stored before the policy) is never sent."""
    api = strict_api
    user = api.new_user()
    sid = api.new_session(user, callback_url="https://example.com/hook")
    with api.ctx.stores.db.write() as db:
        db.execute(update(SleepSession).where(SleepSession.id == sid).values(callback_url=receiver.url))
    for seq in range(10):
        assert api.upload(sid, user, seq, mel_chunk(seq)).status_code == 200
    api.wait()
    with api.ctx.stores.db.read() as db:
        row = db.scalars(select(Webhook).where(Webhook.session_id == sid)).one()
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith("refused: 127.0.0.1 is a loopback address")
    assert receiver.attempts == 0


# ------------------------------------------------------------------------ bounded time and size
class _Misbehaving:
    """A loopback HTTP server that answers slowly (one byte a second) or endlessly (an unending body)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    if outer.mode == "drip-headers":
                        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-slow: " + b"a" * 100:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.3)
                        return
                    self.send_response(200)
                    self.send_header("content-type", "application/octet-stream")
                    self.end_headers()  # no length: the body runs until the connection closes
                    block = b"x" * 65536
                    for _ in range(2000 if outer.mode == "huge" else 200):
                        self.wfile.write(block if outer.mode == "huge" else b"y")
                        self.wfile.flush()
                        outer.sent += len(block) if outer.mode == "huge" else 1
                        if outer.mode == "drip-body":
                            time.sleep(0.3)
                except OSError:
                    pass  # the sender hung up, as it should
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("mode", ["drip-headers", "drip-body"])
def test_a_dribbling_receiver_is_cut_at_the_timeout(mode: str, api: Api) -> None:
    server = _Misbehaving(mode)
    sender = WebhookSender(api.ctx.stores, timeout=1.5, allow_private=True)
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match=r"within 1.5 s"):
            sender._post(server.url, b"{}", {"content-type": "application/json"})
        assert time.monotonic() - started < 4.0
    finally:
        sender.stop()
        server.stop()


def test_a_huge_answer_is_not_read(api: Api, tmp_path: Path) -> None:
    server = _Misbehaving("huge")
    sender = WebhookSender(api.ctx.stores, timeout=10.0, allow_private=True, max_response_bytes=64 * 1024)
    try:
        assert sender._post(server.url, b"{}", {"content-type": "application/json"}) == 200
        time.sleep(0.2)
        assert server.sent < 32 * 1024 * 1024  # of the 131 MB it would send, a few socket buffers at most
    finally:
        sender.stop()
        server.stop()


def test_each_app_applies_its_own_policy(strict_api: Api, api: Api, receiver: Receiver) -> None:
    """Two apps in one process (strict and permissive) alive at once: each request gets its app's policy."""
    for _ in range(2):
        for app, expected in ((strict_api, 400), (api, 201)):
            user = app.new_user()
            r = app.client.post("/ai/v1/sessions", headers=app.h(user=user), json={"callback_url": receiver.url})
            assert r.status_code == expected, r.text
            if expected == 201:
                assert app.close(r.json()["result"]["session_id"], user).status_code == 200

"""A 1 GB upload streamed to a real server (uvicorn on loopback) is cut at the limit, never read whole."""

from __future__ import annotations

import json
import resource
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from sleeptrack.server import create_app
from tests.server._live import free_port
from tests.server.conftest import make_keys, make_settings

GIB = 1 << 30
LIMIT = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, dict[str, str], Path]]:
    settings = make_settings(tmp_path_factory.mktemp("bigbody"))
    keys = make_keys(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    h = {"x-api-key": keys["adv"]}
    user = httpx.post(f"{base}/ai/v1/users", headers=h).json()["result"]["user_id"]
    sid = httpx.post(f"{base}/ai/v1/sessions", headers={**h, "x-user-id": user}).json()["result"]["session_id"]
    yield sid, port, {**h, "x-user-id": user}, settings.data_dir
    server.should_exit = True
    thread.join(timeout=30)


def _stream(port: int, path: str, headers: dict[str, str], declared: int | None) -> tuple[int, bytes]:
    """Send up to 1 GiB of multipart body in 1 MiB pieces until the server answers; (bytes sent, answer)."""
    boundary = "sleeptrackboundary"
    head = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", f"content-type: multipart/form-data; boundary={boundary}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"content-length: {declared}" if declared is not None else "transfer-encoding: chunked")
    preamble = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="seq_num"\r\n\r\n0\r\n'
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n'
        "content-type: application/octet-stream\r\n\r\n"
    ).encode()
    piece = b"\x00" * (1 << 20)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

        def send(data: bytes) -> None:
            if declared is None:
                data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            sock.sendall(data)

        try:
            send(preamble)
            while sent < GIB:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                send(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, answer


@pytest.mark.parametrize("declared", [None, GIB], ids=["chunked", "content-length"])
def test_one_gigabyte_upload_is_refused_at_the_limit(
    live: tuple[str, int, dict[str, str], Path], declared: int | None
) -> None:
    sid, port, headers, data_dir = live
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    sent, answer = _stream(port, f"/ai/v1/sessions/{sid}/upload", headers, declared)
    seconds = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body == {"detail": "HTTP content length exceeded 10485760 bytes.", "result": None}
    # the server stopped taking the body soon after the limit (socket buffers hold a few MB more)
    assert sent < LIMIT + 48 * (1 << 20), f"{sent / 2**20:.0f} MiB sent before the refusal"
    assert seconds < 30
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert peak_after - peak_before < 200 * 1024, "the body was held in memory"
    # nothing was stored, and the session still takes uploads
    assert not list((data_dir / "blobs").rglob("*.mel"))
    r = httpx.get(f"http://127.0.0.1:{port}/ai/v1/sessions/open", headers=headers)
    assert r.json()["result"]["received_seq_nums_count"] == 0

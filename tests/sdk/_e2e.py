"""End-to-end harness: a REAL ``sleeptrack serve`` process (uvicorn on a loopback port, fresh data folder),
API keys made with ``sleeptrack keys create``, and a small HTTP proxy that injects faults (500 answers,
answers slower than the SDK's timeout) between the SDK and the server."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: The tree whose ``sleeptrack serve`` / ``keys`` run: this one, unless SLEEPTRACK_E2E_SERVER_ROOT names another
#: checkout (to try the SDK against a server branch before it is merged).
SERVER_ROOT = Path(os.environ.get("SLEEPTRACK_E2E_SERVER_ROOT") or ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPTRACK_")}
    env["PYTHONPATH"] = str(SERVER_ROOT)
    env["SLEEPTRACK_DATA_DIR"] = str(data_dir)
    return env


def sleeptrack(*args: str, data_dir: Path, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run the ``sleeptrack`` CLI of this tree; returns stdout (raises with stderr on failure)."""
    out = subprocess.run(
        [sys.executable, "-m", "sleeptrack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _env(data_dir),
        cwd=SERVER_ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"sleeptrack {' '.join(args)} failed ({out.returncode}):\n{out.stderr}\n{out.stdout}")
    return out.stdout


def create_key(data_dir: Path, plan: str = "advanced") -> dict[str, Any]:
    text = sleeptrack("keys", "create", "--environment", "test", "--plan", plan, "--json", data_dir=data_dir)
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass
class ServerProcess:
    """``sleeptrack serve`` on 127.0.0.1:``port`` with its data in ``data_dir``; stop / start at will."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        self.log = self.data_dir.parent / f"server-{self.port}.log"
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sleeptrack",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--plain-logs",
                "--no-access-log",
                "--workers",
                "1",
                "--worker-mode",
                "thread",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_env(self.data_dir),
            cwd=SERVER_ROOT,
        )
        handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not come up:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    # ------------------------------------------------------------------------------ what was stored
    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'sleeptrack.db'}?mode=ro", uri=True, timeout=30)

    def stored_seq_nums(self, session_id: str) -> list[int]:
        """Every stored chunk row of the session (a duplicate would show twice)."""
        with self.db() as con:
            rows = con.execute("SELECT seq_num FROM chunks WHERE session_id = ? ORDER BY seq_num", (session_id,))
            return [int(r[0]) for r in rows]


Fault = Callable[[str, str, int], str | None]


class FaultProxy:
    """A threaded HTTP proxy to ``upstream``. ``fault(method, path, n)`` (``n`` = how many requests to that
    path kind came before) returns ``None`` (forward), ``"500"`` (answer 500 without forwarding), or
    ``"slow:S"`` (forward, then hold the answer S seconds — longer than the client waits)."""

    def __init__(self, upstream: str, fault: Fault | None = None) -> None:
        self.upstream = upstream
        self.fault: Fault = fault or (lambda method, path, n: None)
        self.counts: dict[str, int] = {}
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self.lock = threading.Lock()
        self.client = httpx.Client(timeout=60)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = self.path.split("?")[0].rstrip("/").split("/")[-1]
                with proxy.lock:
                    n = proxy.counts.get(kind, 0)
                    proxy.counts[kind] = n + 1
                action = proxy.fault(self.command, self.path, n)
                with proxy.lock:
                    proxy.log.append((self.command, self.path, action or "forward"))
                if action == "500":
                    payload = b'{"detail":"internal server error"}'
                    self._reply(500, {"content-type": "application/json"}, payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = proxy.client.request(
                        self.command, proxy.upstream + self.path, headers=headers, content=body
                    )
                except httpx.HTTPError:
                    self._reply(502, {"content-type": "application/json"}, b'{"detail":"bad gateway"}')
                    return
                if action and action.startswith("slow:"):
                    time.sleep(float(action.split(":")[1]))
                keep = {"content-type": answer.headers.get("content-type", "application/json")}
                if "retry-after" in answer.headers:
                    keep["retry-after"] = answer.headers["retry-after"]
                self._reply(answer.status_code, keep, answer.content)

            def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a "slow" answer): that is the point

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

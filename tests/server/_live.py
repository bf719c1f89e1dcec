"""``sleeptrack serve`` as a real process on a loopback port, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import sleeptrack

REPO = Path(sleeptrack.__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a ``python -m sleeptrack`` child: this checkout first on the path.

    Analysis workers run at normal priority here: the test machine is shared, and at the default
    niceness they would wait behind every other process.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("SLEEPTRACK_WORKER_NICE", "0")
    env.update(extra)
    return env


def create_key(data_dir: Path, environment: str = "test", plan: str = "advanced") -> dict[str, str]:
    """A key in the server's data folder, as ``sleeptrack keys create --json`` prints it."""
    from sleeptrack.store import Settings, create_api_key, hash_api_key, open_stores, webhook_secret

    stores = open_stores(Settings(data_dir=data_dir))
    try:
        with stores.db.write() as db:
            new = create_api_key(db, environment=environment, plan=stores.plans[plan])
        return {"key": new.key, "webhook_secret": webhook_secret(stores.secret, hash_api_key(new.key))}
    finally:
        stores.close()


class LiveServer:
    """``python -m sleeptrack serve`` in its own process group (so a crash can take its workers too)."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None, log: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = args
        self.log_path = log or data_dir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> LiveServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sleeptrack", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--no-access-log", *self.args],
            stdout=log, stderr=log, env=cli_env(), start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not start in {timeout} s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its worker processes (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """A graceful stop (SIGINT, as Ctrl+C)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

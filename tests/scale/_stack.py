"""The scale-out stack as real processes: N ``sleeptrack serve --broker`` and M ``sleeptrack worker`` on loopback.

Used by the end-to-end test and by ``benchmarks/bench_scale.py``. Every process is started in its own
session and stopped by its own pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.server._live import cli_env, free_port


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    data_dir: Path
    database_url: str
    broker_url: str
    env: dict[str, str] = field(default_factory=dict)
    apis: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        return cli_env(
            SLEEPTRACK_DATABASE_URL=self.database_url,
            SLEEPTRACK_BROKER_URL=self.broker_url,
            SLEEPTRACK_DATA_DIR=str(self.data_dir),
            SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS="1",
            SLEEPTRACK_LOG_PLAIN="1",
            **self.env,
        )

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> Proc:
        log = self.data_dir / f"{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sleeptrack", *args], stdout=handle, stderr=handle, env=self._env(),
            start_new_session=True,
        )  # fmt: skip
        return Proc(name, proc, log, port)

    def start_api(self, timeout: float = 120.0) -> Proc:
        port = free_port()
        p = self._spawn(f"api{len(self.apis)}", ["serve", "--port", str(port), "--no-access-log"], port)
        self.apis.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited: {p.log_text()[-3000:]}")
            try:
                if httpx.get(f"{p.url}/healthz", timeout=1.0).status_code == 200:
                    return p
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{p.name} did not start: {p.log_text()[-3000:]}")

    def start_worker(self, timeout: float = 120.0) -> Proc:
        p = self._spawn(f"worker{len(self.workers)}", ["worker"])
        self.workers.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited: {p.log_text()[-3000:]}")
            if " ready." in p.log_text():  # Celery: consuming
                return p
            time.sleep(0.2)
        raise RuntimeError(f"{p.name} did not start: {p.log_text()[-3000:]}")

    def stop(self) -> None:
        for p in [*self.apis, *self.workers]:
            p.stop()

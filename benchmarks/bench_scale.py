"""Load and soak of the scale-out stack (2 ``serve --broker`` + 2 ``worker`` on PostgreSQL and Redis) vs embedded.

* Load: N concurrent simulated sleepers (threads, each its own HTTP client) upload MELSPECTROGRAM chunks
  at accelerated speed (one every ``SLEEPTRACK_BENCH_PERIOD`` s instead of 30 s) for a few epochs each,
  spread over the API processes; N grows along a ladder. Prints uploads/s, p50 / p99 latency and errors
  per N, the largest N whose p99 stays under 500 ms, then verifies that every session holds exactly the
  seq_nums uploaded and reaches COMPLETE after close.
* Throughput ratio: the same unpaced load (every sleeper uploads back to back) against the scale-out
  stack and against one embedded ``sleeptrack serve`` (SQLite, in-process workers).
* Soak: ``SLEEPTRACK_SOAK_SECONDS`` (default 600; 0 skips) of steady paced load with the resident memory
  and open file descriptors of every process sampled every ``SLEEPTRACK_SOAK_SAMPLE`` s (default 30).

Needs the machine's PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import redis
from sqlalchemy import select

from sleeptrack.analysis import encode_mel_chunk
from sleeptrack.store import Chunk, Settings, SleepSession, create_api_key, open_stores
from tests.db_fixtures import postgres_schema_url
from tests.scale._stack import Stack
from tests.server._live import LiveServer, create_key

POSTGRES = os.environ.get("SLEEPTRACK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("SLEEPTRACK_BENCH_REDIS", "redis://127.0.0.1:6379/9")
LADDER = [int(n) for n in os.environ.get("SLEEPTRACK_BENCH_LADDER", "10,25,50,100").split(",")]
EPOCHS = int(os.environ.get("SLEEPTRACK_BENCH_EPOCHS", "10"))
PERIOD = float(os.environ.get("SLEEPTRACK_BENCH_PERIOD", "1.0"))
SOAK_SECONDS = float(os.environ.get("SLEEPTRACK_SOAK_SECONDS", "600"))
SOAK_SAMPLE = float(os.environ.get("SLEEPTRACK_SOAK_SAMPLE", "30"))
SOAK_SLEEPERS = int(os.environ.get("SLEEPTRACK_SOAK_SLEEPERS", "20"))
P99_TARGET = 0.5


def _mel(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_mel_chunk(rng.normal(-70.0, 6.0, (3001, 64)).astype(np.float32))


MELS = [_mel(i) for i in range(8)]


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sessions: list[tuple[str, str, str, int]] = field(default_factory=list)  # base, user, sid, epochs
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uploads(self) -> int:
        return len(self.latencies)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def _sleeper(bases: list[str], key: str, run: Run, epochs: int, period: float, index: int, close: bool) -> None:
    base = bases[index % len(bases)]
    with httpx.Client(base_url=base, timeout=60, headers={"x-api-key": key}) as c:
        try:
            user = c.post("/ai/v1/users").json()["result"]["user_id"]
            sid = c.post("/ai/v1/sessions", headers={"x-user-id": user}).json()["result"]["session_id"]
        except Exception as exc:
            with run.lock:
                run.errors.append(f"setup: {exc}")
            return
        next_at = time.monotonic() + (index % 10) * period / 10  # spread the sleepers over the period
        for seq in range(epochs):
            if period:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += period
            started = time.perf_counter()
            try:
                r = c.post(
                    f"/ai/v1/sessions/{sid}/upload",
                    headers={"x-user-id": user},
                    files={"file": ("c.mel", MELS[seq % len(MELS)], "application/octet-stream")},
                    data={"seq_num": str(seq)},
                )
                ok = r.status_code == 200
                error = None if ok else f"HTTP {r.status_code}: {r.text[:100]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            with run.lock:
                run.latencies.append(elapsed)
                if error:
                    run.errors.append(error)
        if close:
            c.post(f"/ai/v1/sessions/{sid}/close", headers={"x-user-id": user})
        with run.lock:
            run.sessions.append((base, user, sid, epochs))


def load(bases: list[str], key: str, sleepers: int, epochs: int, period: float, close: bool = True) -> Run:
    run = Run()
    threads = [
        threading.Thread(target=_sleeper, args=(bases, key, run, epochs, period, i, close)) for i in range(sleepers)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - started
    return run


def verify(database_url: str, data_dir: Path, runs: list[Run], timeout: float = 900.0) -> tuple[int, int, float]:
    """(sessions stored exactly once, sessions COMPLETE, seconds waited for COMPLETE)."""
    stores = open_stores(Settings(data_dir=data_dir / "verify", database_url=database_url), migrate=False)
    sessions = [s for r in runs for s in r.sessions]
    exact = 0
    started = time.monotonic()
    try:
        with stores.db.read() as db:
            for _, _, sid, epochs in sessions:
                seqs = list(db.scalars(select(Chunk.seq_num).where(Chunk.session_id == sid).order_by(Chunk.seq_num)))
                exact += seqs == list(range(epochs))
        while True:
            with stores.db.read() as db:
                states = [db.get(SleepSession, sid) for _, _, sid, _ in sessions]
                complete = sum(1 for s in states if s is not None and s.state == "COMPLETE")
            if complete == len(sessions) or time.monotonic() - started > timeout:
                return exact, complete, time.monotonic() - started
            time.sleep(1.0)
    finally:
        stores.close()


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                out += _tree(int(child))
    return out


def _sample(pids: dict[str, int]) -> dict[str, tuple[float, int]]:
    """Per process tree: (resident MB, open file descriptors)."""
    out = {}
    for name, pid in pids.items():
        rss, fds = 0.0, 0
        for p in _tree(pid):
            try:
                status = Path(f"/proc/{p}/status").read_text()
                rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
                fds += len(os.listdir(f"/proc/{p}/fd"))
            except (OSError, AttributeError):
                continue
        out[name] = (rss, fds)
    return out


def _row(label: str, run: Run) -> str:
    rate = run.uploads / run.seconds if run.seconds else 0.0
    return (
        f"{label:>22} {run.uploads:>8} {rate:>9.1f} {run.pct(50) * 1000:>8.0f} {run.pct(99) * 1000:>8.0f} "
        f"{len(run.errors):>7}"
    )


def main() -> bool:
    for host, port in (("127.0.0.1", 5432), ("127.0.0.1", 6379)):
        try:
            import socket

            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            print(f"skipped: nothing listens on {host}:{port} (PostgreSQL / Redis needed)")
            return True
    ok = True
    redis.Redis.from_url(BROKER).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="sleeptrack-bench-scale-"))
    for db_url in postgres_schema_url(POSTGRES):
        settings = Settings(data_dir=tmp, database_url=db_url, broker_url=BROKER)
        key = _unlimited_key(settings)  # before the processes start: they read the plans file then
        stack = Stack(tmp, db_url, BROKER)
        try:
            for _ in range(2):
                stack.start_api()
            for _ in range(2):
                stack.start_worker()
            bases = [p.url for p in stack.apis]
            print(f"scale-out stack: 2 API processes, 2 workers, PostgreSQL + Redis; {EPOCHS} epochs per sleeper, "
                  f"one upload every {PERIOD:g} s per sleeper (30 s of night)")  # fmt: skip
            print(f"{'sleepers':>22} {'uploads':>8} {'upl/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            runs = []
            best = 0
            for n in LADDER:
                run = load(bases, key, n, EPOCHS, PERIOD)
                runs.append(run)
                print(_row(f"{n} paced", run), flush=True)
                if run.pct(99) < P99_TARGET and not run.errors:
                    best = n
            print(f"largest N with p99 < {P99_TARGET * 1000:.0f} ms and no error: {best or 'none of the ladder'}")
            exact, complete, waited = verify(db_url, tmp, runs)
            total = sum(len(r.sessions) for r in runs)
            print(f"verification: {exact}/{total} sessions hold exactly seq_nums 0..N-1; "
                  f"{complete}/{total} COMPLETE ({waited:.0f} s after the last close)")  # fmt: skip
            ok &= exact == total and complete == total
            flat = load(bases, key, 20, EPOCHS, 0.0, close=False)
            print(_row("20 unpaced (scale)", flat))
            if SOAK_SECONDS > 0:
                ok &= soak(stack, bases, key)
        finally:
            stack.stop()
    # the embedded server on this machine, same unpaced load
    emb_dir = tmp / "embedded"
    emb_dir.mkdir()
    emb_key = create_key(emb_dir, plan="advanced")["key"]
    server = LiveServer(emb_dir).start()
    try:
        flat_emb = load([server.url], emb_key, 20, EPOCHS, 0.0, close=False)
        print(_row("20 unpaced (embedded)", flat_emb))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # every uploaded chunk of the ladder and the soak
    rate_scale = flat.uploads / flat.seconds
    rate_emb = flat_emb.uploads / flat_emb.seconds
    print(f"throughput ratio scale-out / embedded on this machine: {rate_scale / rate_emb:.2f} "
          f"({rate_scale:.0f} vs {rate_emb:.0f} uploads/s)")  # fmt: skip
    return ok


def _unlimited_key(settings: Settings) -> str:
    """A key on a plan without rate limit or quota (written to the plans file the processes read)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    plans = settings.data_dir / "plans.toml"
    plans.write_text("[plans.bench]\nstages = 4\nsnoring = true\nrealtime = true\n")
    stores = open_stores(settings)
    try:
        with stores.db.write() as s:
            return create_api_key(s, environment="test", plan=stores.plans["bench"]).key
    finally:
        stores.close()


def soak(stack: Stack, bases: list[str], key: str) -> bool:
    pids = {p.name: p.proc.pid for p in [*stack.apis, *stack.workers]}
    samples: list[dict[str, tuple[float, int]]] = []
    stop = threading.Event()
    run = Run()

    def steady() -> None:
        i = 0
        while not stop.is_set():
            batch = [
                threading.Thread(target=_sleeper, args=(bases, key, run, EPOCHS, PERIOD, i + j, True))
                for j in range(SOAK_SLEEPERS)
            ]
            for t in batch:
                t.start()
            for t in batch:
                t.join()
            i += SOAK_SLEEPERS

    loader = threading.Thread(target=steady, daemon=True)
    started = time.monotonic()
    loader.start()
    print(f"soak: {SOAK_SLEEPERS} sleepers at a time for {SOAK_SECONDS:.0f} s, sampled every {SOAK_SAMPLE:g} s")
    print(f"{'t (s)':>6} " + " ".join(f"{n + ' MB':>12} {n + ' fds':>12}" for n in pids))
    while time.monotonic() - started < SOAK_SECONDS:
        time.sleep(min(SOAK_SAMPLE, max(0.0, SOAK_SECONDS - (time.monotonic() - started))))
        s = _sample(pids)
        samples.append(s)
        line = " ".join(f"{s[n][0]:>12.0f} {s[n][1]:>12d}" for n in pids)
        print(f"{time.monotonic() - started:>6.0f} {line}", flush=True)
    stop.set()
    loader.join(timeout=300)
    run.seconds = time.monotonic() - started
    print(_row("soak", run))
    ok = True
    if len(samples) >= 4:
        k = max(1, len(samples) // 4)
        for n in pids:
            first_mb = statistics.median(x[n][0] for x in samples[:k])
            last_mb = statistics.median(x[n][0] for x in samples[-k:])
            first_fd = statistics.median(x[n][1] for x in samples[:k])
            last_fd = statistics.median(x[n][1] for x in samples[-k:])
            grew = last_mb > first_mb * 1.25 + 20 or last_fd > first_fd + 20
            ok &= not grew
            print(f"{n}: memory {first_mb:.0f} → {last_mb:.0f} MB, open files {first_fd:.0f} → {last_fd:.0f}"
                  f"{'  GROWTH' if grew else ''}")  # fmt: skip
    return ok and not run.errors
